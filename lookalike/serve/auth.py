"""Access control for every route (API, images, page, docs): pure ASGI middlewares (no
per-request task overhead).

:class:`TokenMiddleware`: an optional shared secret. The token is accepted from an
``Authorization: Bearer`` or ``X-Lookalike-Token`` header, a ``lookalike_token`` cookie, or a
``?token=`` query parameter; a page opened with ``?token=`` sets the cookie, so the
page's own requests (fetch, <img>) carry it without putting it in every URL.

:class:`LocalHostMiddleware`: a server on loopback without a token answers only requests
that name a loopback host. Otherwise any web page could read it through DNS rebinding
(its own name, re-pointed at 127.0.0.1, makes the browser treat the server as same-origin).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import socket
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "lookalike_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None))
        except OSError:
            return False


def host_name(header: str) -> str:
    """The host of a ``Host`` header, lower-case, without port, brackets or a final dot:
    ``[::1]:8765`` -> ``::1``, ``LocalHost.:80`` -> ``localhost``."""
    value = header.strip().lower()
    if value.startswith("["):  # an IPv6 literal, maybe with a port after the bracket
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        value = value.split(":")[0]
    return value.rstrip(".")


async def refuse(send: Send, status: int, detail: str,
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """Answer ``status`` with ``{"detail": detail}`` (and ``headers``), from a middleware."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class LocalHostMiddleware:
    """Refuses (403) a request whose ``Host`` header names anything but localhost,
    127.0.0.1, [::1] or the address the server is bound to (any port). A request without
    a ``Host`` header (HTTP/1.0) passes: browsers always send one."""

    def __init__(self, app: ASGIApp, bound: str) -> None:
        self.app = app
        self.bound = host_name(bound)
        self.allowed = {*LOOPBACK_NAMES, self.bound}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope.get("headers", [])
                       if k.lower() == b"host"), None)
        if header is None or host_name(header) in self.allowed:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # refused before it is accepted: a 403 to the client
            await send({"type": "websocket.close", "code": 1008})
            return
        shown = header if len(header) <= 100 else header[:100] + "..."
        await refuse(send, 403, (
            f"host {shown!r} is not served: this server listens on {self.bound} without a "
            "token and answers only requests to localhost, 127.0.0.1 or [::1] (a guard "
            "against DNS rebinding). Open it under one of those names, or start it with "
            "--token to serve other names."))


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
            await refuse(send, 401, "a token is required: open the page as /?token=TOKEN, "
                         "or send Authorization: Bearer TOKEN",
                         ((b"www-authenticate", b"Bearer"),))
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
