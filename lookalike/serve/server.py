"""Run the app with uvicorn: one process serves the API, thumbnails and the page."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import uvicorn

from .app import create_app


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


def run(directory: str | Path, *, host: str = "127.0.0.1", port: int = 8765,
        token: str | None = None, log_level: str = "warning") -> None:
    """Serve until interrupted. The collection is opened lazily: the vector index is
    loaded by the first search, thumbnails are made on first request."""
    app = create_app(directory, token=token)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=5)
