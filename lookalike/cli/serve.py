"""``serve``: the web page and HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import DbOption, console, errors, find_collection, friendly_errors


@friendly_errors
def serve(
    folder: Annotated[Path | None, typer.Argument(help="Image folder or collection.")] = None,
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to bind; other than loopback, anyone "
                                      "on the network can reach it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8765,
    token: Annotated[str | None, typer.Option(
        help="Require this token on every request (header, cookie, or ?token= for the page).",
        envvar="LOOKALIKE_TOKEN")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Server processes sharing the port: more requests per second on a "
        "busy server, one vector index in RAM per process.")] = 1,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Index new, changed and removed files of the folder as they "
        "appear, while serving.")] = False,
) -> None:
    """A web page and HTTP API over a collection (OpenAPI docs at /docs); never deletes a
    file, and moves one only when a duplicate review is applied (undoable)."""
    from ..extras import require

    require("serve", "lookalike serve")
    from ..serve import is_loopback
    from ..serve import run as run_server

    directory = find_collection(db or folder)
    if not is_loopback(host) and not token:
        errors.print(f"[bold yellow]warning:[/] serving on {host} without --token: anyone "
                     "who can reach this address can browse and download your images",
                     highlight=False)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"serving {directory} at http://{shown}:{port}/"
                  + ("?token=..." if token else "") + "  (API docs: /docs)  Ctrl+C stops")
    if not watch:
        run_server(directory, host=host, port=port, token=token, workers=workers)
        return
    from ..collection import Collection
    from ..watch import FolderWatcher

    def report_error(error: Exception) -> None:
        errors.print(f"[yellow]warning:[/] index run failed, trying again: {error}",
                     highlight=False)

    with Collection.open(directory, writable=True) as collection:
        watcher = FolderWatcher(collection, on_error=report_error).start()
        console.print(f"watching {collection.root} for changes")
        try:
            run_server(directory, host=host, port=port, token=token, workers=workers)
        finally:
            watcher.stop()
