"""The FastAPI application: JSON API, thumbnails, originals and the page, in one process.

:func:`create_app` assembles the pieces: access control and body caps as middlewares,
the errors every route may raise as handlers, and one router per area
(:mod:`.routes`), each given the app's :class:`Service` through :mod:`.deps`.

Routes take catalogue ids (``{id:file_id}``), never paths: a request can only reach files
the catalogue lists, and anything that is not a whole number is a plain 404. Only indexed
images are sent, and only from inside the collection's folder (links are followed to see
where they lead). Every request body is capped as it arrives. Without a token on
loopback, requests must name a loopback host (no DNS rebinding).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from ..decode import DecodeError, FileGone
from ..embed import ModelUnavailable
from ..store import StoreError
from .auth import LocalHostMiddleware, TokenMiddleware, is_loopback
from .limits import BodyLimitMiddleware
from .routes import ROUTERS, review
from .service import MAX_BODY_BYTES, NotServed, Service

STATIC = Path(__file__).parent / "static"
MULTIPART_OVERHEAD = 65536  # an upload's form boundaries and headers, beside the image


def _detail(status: int, prefix: str = ""
            ) -> Callable[[Request, Exception], Coroutine[Any, Any, Response]]:
    """A handler answering an exception with ``status`` and ``{"detail": prefix + it}``."""
    async def handle(_: Request, error: Exception) -> Response:
        return JSONResponse({"detail": f"{prefix}{error}"}, status_code=status)

    return handle


EXCEPTION_HANDLERS: dict[int | type[Exception],
                         Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    NotServed: _detail(404),
    DecodeError: _detail(422, "not a usable image: "),
    FileGone: _detail(404, "no longer in the folder: "),  # e.g. an object deleted since
    ModelUnavailable: _detail(503),
    StoreError: _detail(409),
}


def body_limits(service: Service, max_body_bytes: int
                ) -> Callable[[Scope], tuple[int, str]]:
    """The body cap of a request: an image upload to search by may be larger."""
    def limit(scope: Scope) -> tuple[int, str]:
        kind = next((v for k, v in scope.get("headers", []) if k.lower() == b"content-type"),
                    b"")
        if scope["path"] == "/api/search" and kind.lower().startswith(b"multipart/form-data"):
            return (service.max_upload_bytes + MULTIPART_OVERHEAD,
                    f"upload is larger than {service.max_upload_bytes:,} bytes")
        return max_body_bytes, f"request body is larger than {max_body_bytes:,} bytes"

    return limit


def create_app(directory: str | Path, *, token: str | None = None, host: str = "127.0.0.1",
               max_upload_bytes: int | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, analyse_at_start: bool = True) -> FastAPI:
    """The app over the collection at ``directory`` (a collection dir or its image folder).

    ``host`` is the address the server listens on: on loopback without a ``token``, only
    requests to localhost, 127.0.0.1, [::1] or ``host`` are answered (403 otherwise).
    Request bodies are capped at ``max_body_bytes``, an image upload to search by at
    ``max_upload_bytes`` (413 past either, also for chunked bodies). With
    ``analyse_at_start``, duplicates, clusters and the map are computed in the background
    from startup on (progress at ``/api/jobs``).
    """
    options = {} if max_upload_bytes is None else {"max_upload_bytes": max_upload_bytes}
    service = Service(Path(directory), **options)
    # FastAPI's native OpenTelemetry stays off: checking per request whether a tracer is
    # configured cost ~3 % of the event loop's time, for spans nobody collects
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False},
                  title="lookalike", version="0.1.0",
                  description=f"Images in {service.root}: similarity search, duplicates, "
                  "groups, clusters, outliers, and a duplicate review. The server never "
                  "deletes a file; applying the review moves the copies marked discard to "
                  "a quarantine folder (undoable).",
                  exception_handlers=EXCEPTION_HANDLERS,
                  # Swagger UI and ReDoc load their assets from a CDN: /docs is a local
                  # page instead (routes/page.py)
                  docs_url=None, redoc_url=None)
    app.state.service = service
    if analyse_at_start:
        app.router.add_event_handler("startup", service.start_analyses)
    app.router.add_event_handler("shutdown", service.close)
    # the last added runs first: the host check, the token, then the body cap
    app.add_middleware(BodyLimitMiddleware, limit=body_limits(service, max_body_bytes))
    if token:
        app.add_middleware(TokenMiddleware, token=token)
    elif is_loopback(host):
        app.add_middleware(LocalHostMiddleware, bound=host)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # The areas' routes join the app's own table rather than being include_router'ed:
    # FastAPI 0.165 sends every request through each included router (version checks,
    # context merging), 40 % more Python calls on the event loop per /similar.
    app.router.routes.extend(route for router in [*ROUTERS, review.router]
                             for route in router.routes)
    return app
