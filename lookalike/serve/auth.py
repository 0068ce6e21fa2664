"""Optional shared-secret access control for every route (API, images, page, docs).

A pure ASGI middleware (no per-request task overhead). The token is accepted from an
``Authorization: Bearer`` or ``X-Lookalike-Token`` header, a ``lookalike_token`` cookie, or a
``?token=`` query parameter; a page opened with ``?token=`` sets the cookie, so the
page's own requests (fetch, <img>) carry it without putting it in every URL.
"""

from __future__ import annotations

import hmac
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "lookalike_token"


class TokenMiddleware:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _matches(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        bearer = headers.get("authorization", "")
        from_query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header is just no cookie
            cookie = SimpleCookie()
        candidates = [
            bearer[7:] if bearer.lower().startswith("bearer ") else None,
            headers.get("x-lookalike-token"),
            cookie[COOKIE].value if COOKIE in cookie else None,
            from_query[0] if from_query else None,
        ]
        if not any(self._matches(c) for c in candidates):
            body = json.dumps({"detail": "a token is required: open the page as "
                               "/?token=TOKEN, or send Authorization: Bearer TOKEN"}).encode()
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", b"Bearer"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        if not self._matches(candidates[3]):
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                value = (f"{COOKIE}={self.token.decode()}; Path=/; HttpOnly; SameSite=Strict")
                message["headers"] = [*message.get("headers", []),
                                      (b"set-cookie", value.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_cookie)
