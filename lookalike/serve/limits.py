"""A cap on every request body, counted as the bytes arrive.

A ``Content-Length`` over the cap is refused before anything is read; a body without one
(``Transfer-Encoding: chunked``) is cut off with the same 413 once the bytes received pass
the cap, so no route ever holds more than the cap in memory. The 413 asks the server to
close the connection (``Connection: close``): the rest of the body is not read.

A pure ASGI middleware wrapping ``receive``: it sees every body, whatever reads it
(FastAPI's JSON parsing, ``Request.body()``, the multipart parser).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import refuse

CLOSE = ((b"connection", b"close"),)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes its cap. An HTTPException, so that the
    app's own handlers (and FastAPI's body parsing, which re-raises HTTPExceptions) turn
    it into the same 413 as the middleware does."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail, headers={"connection": "close"})


def _too_large(error: BaseException) -> BodyTooLarge | None:
    """The BodyTooLarge in ``error`` (maybe inside an exception group of task groups)."""
    if isinstance(error, BodyTooLarge):
        return error
    for inner in getattr(error, "exceptions", None) or ():  # an ExceptionGroup (3.11+)
        if isinstance(inner, BaseException) and (found := _too_large(inner)):
            return found
    return None


class BodyLimitMiddleware:
    """Caps request bodies at ``limit(scope) -> (bytes, message)`` (the message says what
    was too large, for the 413's ``detail``)."""

    def __init__(self, app: ASGIApp, limit: Callable[[Scope], tuple[int, str]]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap, message = self.limit(scope)
        declared = next((v for k, v in scope.get("headers", []) if k.lower() == b"content-length"),
                        None)
        if declared is not None and declared.strip().isdigit() and int(declared) > cap:
            await refuse(send, 413, message, CLOSE)  # nothing read
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            if received > cap:  # asked again after the refusal: still refused, nothing read
                raise BodyTooLarge(message)
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > cap:
                    raise BodyTooLarge(message)
            return event

        async def watched_send(event: Message) -> None:
            nonlocal started
            if event["type"] == "http.response.start":
                started = True
            await send(event)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BaseException as error:
            if started or received <= cap or _too_large(error) is None:
                raise
            await refuse(send, 413, message, CLOSE)

