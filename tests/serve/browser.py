"""Helpers of the browser tests: a real uvicorn server on 127.0.0.1 and Debian's chromium
driven by Playwright (the tests skip where either is missing)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from lookalike.serve import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(folder: Path) -> Iterator[str]:
    """The app over ``folder`` served by uvicorn in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(folder), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not server.started:
        time.sleep(0.05)
    assert httpx.get(url, timeout=60).status_code == 200
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def watch_errors(page: object) -> list[str]:
    """The console errors and uncaught exceptions ``page`` reports from now on."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)  # type: ignore[attr-defined]
    page.on("pageerror", lambda error: problems.append(str(error)))  # type: ignore[attr-defined]
    return problems
