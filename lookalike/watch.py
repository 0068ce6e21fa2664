"""Watch a collection's folder and keep the collection up to date as files come and go.

A watcher polls the folder: one walk of its directory entries (names, sizes and
modification times; no file is opened), compared with the last one. When something
changed, the collection is indexed again, which embeds only the new and changed files
and drops the removed ones. Polling needs nothing from the operating system and works
on network drives, where change notifications often do not arrive; the pause between
walks grows with the time a walk takes, so a large folder is not walked back to back.
The folder of the collection itself (``.lookalike``) is never part of the walk.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .collection import DEFAULT_DIRNAME, Collection
from .discover import IMAGE_EXTENSIONS
from .records import IndexReport

# (size, modification time) of every image-named file, by path relative to the root
Snapshot = dict[str, tuple[int, int]]
# at most this share of the time goes to walking the folder
WALK_SHARE = 0.1


def snapshot(root: Path, skip: Path | None = None) -> Snapshot:
    """What a walk of ``root`` sees: size and mtime of each file named like an image.
    Folders that cannot be read are left out (the index run reports them)."""
    found: Snapshot = {}
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != DEFAULT_DIRNAME and Path(entry.path) != skip:
                        pending.append(Path(entry.path))
                elif Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS:
                    info = entry.stat()
                    found[os.path.relpath(entry.path, root)] = (info.st_size,
                                                                info.st_mtime_ns)
            except OSError:
                continue
    return found


class FolderWatcher:
    """Keeps ``collection`` (opened writable) up to date with its local folder.

    ``on_update(report)`` is called after each index run that a change caused;
    ``index_options`` go to :meth:`Collection.index` (model choice is the collection's
    own). :meth:`run` polls until :meth:`stop`; :meth:`start` runs it in a thread.
    """

    def __init__(self, collection: Collection, *, interval: float = 1.0,
                 on_update: Callable[[IndexReport], None] | None = None,
                 on_error: Callable[[Exception], None] | None = None,
                 **index_options: Any) -> None:
        if not isinstance(collection.root, Path):
            raise ValueError("only a local folder can be watched; index object storage "
                             "again to pick up its changes")
        self.root: Path = collection.root
        self.collection = collection
        self.interval = interval
        self.on_update = on_update
        self.on_error = on_error
        self.index_options = index_options
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._walk_seconds = 0.0
        self._seen = self._walk()

    def _walk(self) -> Snapshot:
        started = time.monotonic()
        found = snapshot(self.root, self.collection.directory)
        self._walk_seconds = time.monotonic() - started
        return found

    def check(self) -> IndexReport | None:
        """One poll: index again if the folder changed since the last one."""
        now = self._walk()
        if now == self._seen:
            return None
        report = self.collection.index(**self.index_options)
        self._seen = now
        if self.on_update is not None:
            self.on_update(report)
        return report

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as error:  # noqa: BLE001 - reported; the watch goes on
                if self.on_error is None:
                    raise
                self.on_error(error)
            self._stop.wait(max(self.interval, self._walk_seconds / WALK_SHARE))

    def start(self) -> FolderWatcher:
        self._thread = threading.Thread(target=self.run, name="lookalike-watch", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Stop after the current poll (safe from a signal handler)."""
        self._stop.set()

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
