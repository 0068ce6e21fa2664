"""``lookalike serve``: a web page and HTTP API over a collection (FastAPI + uvicorn)."""

from __future__ import annotations

from .app import create_app
from .server import is_loopback, run

__all__ = ["create_app", "is_loopback", "run"]
