"""Ownership: lookalike deletes or overwrites only what it can prove it created.

The rules, enforced here:

- Every write is atomic: a temporary file beside the target, fsynced, then renamed over
  it (:func:`atomic_write`). A reader never sees half a file; a crash leaves the old one.
- A folder that lookalike writes several files into (a report, a folder of contact
  sheets) carries a marker file, ``.lookalike-owned``, listing every file lookalike wrote
  there (:class:`OwnedFolder`). lookalike claims a folder only when it is new, empty or
  already carries the marker; a non-empty folder without it is refused with one line.
- Inside an owned folder only the files the marker lists are ever replaced or removed. A
  name is listed *before* its file is written, so a run killed half-way leaves nothing
  the next run cannot tidy; a user's file saved into the folder survives every re-run.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

MARKER = ".lookalike-owned"


class NotOwnedError(RuntimeError):
    """lookalike was asked to write over, or delete, something it did not create."""


def atomic_write(path: str | os.PathLike[str], data: bytes | str | Callable[[Path], object]
                 ) -> Path:
    """Write ``data`` to ``path`` atomically and durably.

    ``data`` is bytes, text (UTF-8), or a function that writes the temporary file whose
    path it is given (``lambda tmp: image.save(tmp, "PNG")``; what it returns is ignored).
    The temporary file has a unique name beside the target, so concurrent writers never
    share one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as stream:
            if isinstance(data, str):
                stream.write(data.encode("utf-8"))
            elif isinstance(data, bytes):
                stream.write(data)
        if callable(data):
            data(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if os.name == "posix":  # the rename itself survives a power cut
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return path


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask. Read from /proc where it can be, because setting it to read it
    back (the only portable way) briefly clears it for every thread: with sheets written
    from a pool, a concurrent caller could read the cleared 0 and restore that, leaving
    files world-writable."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


class OwnedFolder:
    """A folder lookalike created (or found empty) and may therefore write into.

    >>> folder = OwnedFolder.claim("report", purpose="report")   # doctest: +SKIP
    >>> folder.write("index.html", page)                           # doctest: +SKIP
    >>> folder.remove_stale(keep={"index.html"})                   # doctest: +SKIP
    """

    def __init__(self, path: Path, purpose: str, files: Iterable[str]) -> None:
        self.path = path
        self.purpose = purpose
        self.files: set[str] = set(files)

    @classmethod
    def claim(cls, path: str | os.PathLike[str], purpose: str) -> OwnedFolder:
        """Take ``path`` as lookalike's: create it, or accept it when empty or marked.

        Raises :class:`NotOwnedError` for a non-empty folder lookalike did not create, or
        for a path that is a file."""
        path = Path(path).expanduser().absolute()
        marker = path / MARKER
        if path.exists() and not path.is_dir():
            raise NotOwnedError(f"{path} is a file, not a folder: choose a folder to write into")
        if marker.is_file():
            try:
                state = json.loads(marker.read_text(encoding="utf-8"))
                files = [str(name) for name in state.get("files", [])]
            except (OSError, ValueError, AttributeError):
                raise NotOwnedError(
                    f"{marker} is damaged, so lookalike cannot tell its files from yours: "
                    "choose a new folder, or delete that folder yourself") from None
            return cls(path, str(state.get("purpose", purpose)), files)
        if path.is_dir() and any(path.iterdir()):
            raise NotOwnedError(
                f"{path} is not empty and was not created by lookalike: choose a new or "
                "empty folder (lookalike never writes over files it did not create)")
        path.mkdir(parents=True, exist_ok=True)
        folder = cls(path, purpose, ())
        folder._save()
        return folder

    def reserve(self, names: Iterable[str]) -> None:
        """Record ``names`` (relative, ``/``-separated) as lookalike's before writing them.

        A name that already exists on disk but is not listed is a user's file: refused."""
        new = [name for name in names if name not in self.files]
        for name in new:
            target = self._target(name)
            if target.exists() or target.is_symlink():
                raise NotOwnedError(
                    f"{target} was not written by lookalike: move it out of {self.path} "
                    "or choose another folder")
        if new:
            self.files.update(new)
            self._save()

    def write(self, name: str, data: bytes | str | Callable[[Path], None]) -> Path:
        """Write one file into the folder atomically (reserving its name first)."""
        self.reserve([name])
        return atomic_write(self._target(name), data)

    def target(self, name: str) -> Path:
        """Where ``name`` lives, once reserved (for writers that write the file themselves,
        such as thumbnail makers running in threads: reserve every name first)."""
        if name not in self.files:
            raise NotOwnedError(f"{name} is not reserved in {self.path}")
        return self._target(name)

    def remove_stale(self, keep: Iterable[str]) -> int:
        """Delete the listed files that are not in ``keep`` (what this run did not write);
        never anything unlisted. Returns how many were removed."""
        keep = set(keep)
        stale = sorted(self.files - keep)
        reachable = []
        for name in stale:
            try:
                target = self._target(name)
            except NotOwnedError:  # under a link someone put there: not followed, forgotten
                continue
            target.unlink(missing_ok=True)
            reachable.append(target)
        for target in reachable:  # folders lookalike made for them, once empty
            parent = target.parent
            while parent != self.path:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent
        if stale:
            self.files -= set(stale)
            self._save()
        return len(stale)

    def _target(self, name: str) -> Path:
        """The path of ``name``; refused when a folder on the way is a link (it may lead
        into the user's files: lookalike never writes or deletes through one)."""
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or name in ("", MARKER):
            raise ValueError(f"not a name inside the folder: {name!r}")
        parent = self.path
        for part in relative.parts[:-1]:
            parent = parent / part
            if parent.is_symlink():
                raise NotOwnedError(
                    f"{parent} is a link, and lookalike never writes through a link: remove "
                    f"it from {self.path} or choose another folder")
        return self.path / relative

    def _save(self) -> None:
        state = {"created_by": "lookalike", "purpose": self.purpose,
                 "files": sorted(self.files)}
        atomic_write(self.path / MARKER, json.dumps(state, indent=0))


def refuse_foreign_csv(path: str | os.PathLike[str], header: Sequence[str],
                       command: str) -> None:
    """A CSV export may replace a file only when it is a regular file starting with
    ``header`` (an earlier export of ``command``); anything else is a
    :class:`NotOwnedError`. Call it before the work, so a refusal costs nothing."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if stat.S_ISREG(os.lstat(path).st_mode):
        with path.open("rb") as stream:
            if stream.readline() == (",".join(header) + "\n").encode():
                return
    raise NotOwnedError(
        f"{path} exists and was not written by {command}: choose another name for the "
        "CSV, or move that file away first (lookalike never overwrites a file it did not "
        "create)")


def checksum(path: str | os.PathLike[str]) -> str:
    """``"<size>:<crc32>"`` of a file, read in 1 MiB blocks: how derived files (indexes,
    graph caches) vouch for their bytes, so damage is found and they are rebuilt."""
    crc, size = 0, 0
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            crc, size = zlib.crc32(block, crc), size + len(block)
    return f"{size}:{crc:08x}"
