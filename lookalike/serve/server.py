"""Run the app with uvicorn: one process serves the API, thumbnails and the page; or
several, sharing the port, for more throughput than one Python interpreter gives."""

from __future__ import annotations

import json
import os
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from .app import create_app
from .auth import is_loopback

__all__ = ["app_from_settings", "is_loopback", "run"]

# How worker processes learn what to serve: uvicorn starts them from an import string.
_SETTINGS = "LOOKALIKE_SERVE_SETTINGS"


def run(directory: str | Path, *, host: str = "127.0.0.1", port: int = 8765,
        token: str | None = None, workers: int = 1, log_level: str = "warning") -> None:
    """Serve until interrupted. The collection is opened lazily: the vector index is
    loaded by the first search, thumbnails are made on first request.

    ``workers`` > 1 runs that many processes on one port. Each holds its own copy of the
    vector index; embeddings are memory-mapped, so they are shared. Marks and
    thumbnails are written atomically, so processes can share them.
    """
    if workers <= 1:
        uvicorn.run(create_app(directory, token=token, host=host), host=host, port=port,
                    log_level=log_level, access_log=False, timeout_graceful_shutdown=5)
        return
    os.environ[_SETTINGS] = json.dumps({"directory": str(directory), "token": token,
                                        "host": host})
    uvicorn.run(f"{__name__}:app_from_settings", factory=True, workers=workers, host=host,
                port=port, log_level=log_level, access_log=False, timeout_graceful_shutdown=5)


def app_from_settings() -> FastAPI:
    """The app of one worker process, from the settings :func:`run` left for it."""
    settings = json.loads(os.environ[_SETTINGS])
    return create_app(settings["directory"], token=settings["token"], host=settings["host"])
