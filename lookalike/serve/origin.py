"""Cross-site requests are refused on the routes that change files or decisions.

A page on another site can make the browser send a POST here (a form, or ``fetch`` in
``no-cors`` mode) without reading the answer: the host check (:mod:`.auth`) lets it
through, since it names this server's own host, and on loopback without a token nothing
else stops it. Browsers say where such a request comes from (``Sec-Fetch-Site``,
``Origin``): one from another origin gets a 403. Clients other than browsers (curl,
scripts) send neither header and pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import HTTPException, Request

CROSS_SITE = "a request from another site or origin may not change files or review decisions"


async def same_origin(request: Request) -> None:
    """Dependency: a 403 unless the request comes from this server's own pages (or from
    outside a browser)."""
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        raise HTTPException(403, CROSS_SITE)
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "").lower()
    if origin == "null" or urlsplit(origin).netloc.lower() != host:
        raise HTTPException(403, CROSS_SITE)
