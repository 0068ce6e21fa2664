"""Discover: walk folders and find image files by their content, not their extension.

A root is a local folder or an fsspec URL (``s3://bucket/photos``, ``gs://…``): see
:func:`as_root`. Remote roots are :class:`upath.UPath` objects, so ``root / relative``
and ``.read_bytes()`` work the same on both.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeAlias

from upath import UPath

if TYPE_CHECKING:  # annotations only: no runtime dependency on typing_extensions
    from typing_extensions import TypeIs

# Magic numbers of the formats we decode. HEIC/HEIF/AVIF live in an ISO-BMFF box.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis", b"avif"}
_FORMAT_BY_EXTENSION = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".png": "PNG",
    ".gif": "GIF", ".bmp": "BMP", ".dib": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
    ".webp": "WEBP", ".heic": "HEIF", ".heif": "HEIF", ".avif": "HEIF",
}
# Camera RAW files: told by name (most are TIFF inside, so their first bytes say TIFF),
# decoded by libraw (rawpy), not Pillow.
RAW_EXTENSIONS = frozenset({
    ".3fr", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".iiq", ".k25",
    ".kdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".pef", ".raf", ".rw2",
    ".rwl", ".sr2", ".srf", ".srw", ".x3f",
})
_FORMAT_BY_EXTENSION.update(dict.fromkeys(RAW_EXTENSIONS, "RAW"))
IMAGE_EXTENSIONS = set(_FORMAT_BY_EXTENSION)


def is_raw(path: str | os.PathLike[str] | UPath) -> bool:
    """Whether ``path`` names a camera RAW file."""
    return PurePosixPath(str(path)).suffix.lower() in RAW_EXTENSIONS

Root: TypeAlias = Path | UPath


def as_root(location: str | os.PathLike[str] | UPath) -> Root:
    """A local folder as an absolute :class:`Path`; an fsspec URL as a :class:`UPath`.

    ``file://`` URLs become local paths. Credentials and endpoints for remote stores come
    from the backend's usual configuration (``~/.aws``, ``GOOGLE_APPLICATION_CREDENTIALS``)
    or fsspec's ``FSSPEC_<PROTOCOL>_<OPTION>`` variables, e.g. ``FSSPEC_S3_ENDPOINT_URL``.
    """
    if is_remote(location):
        return location
    text = os.fspath(location)
    if "://" in text:
        remote = UPath(text)
        if remote.protocol not in ("file", "local"):
            return remote
        text = remote.path
    return Path(text).expanduser().absolute()


def is_remote(path: object) -> TypeIs[UPath]:
    """Whether ``path`` lives on an fsspec filesystem rather than the local disk.

    For the type checker a :class:`UPath` is remote and a ``str``, ``os.PathLike`` or
    :class:`Path` is local: a check narrows a :data:`Root` either way.
    """
    return isinstance(path, UPath) and not isinstance(path, Path)


def sniff_format(head: bytes) -> str | None:
    """Image format from the first 32 bytes of a file, or None when it is not an image."""
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return None


@dataclass(frozen=True)
class Candidate:
    """A file found under the root: either an image (``format`` set) or a rejected file.

    An ``unreadable`` candidate is a folder (or an entry) that could not be read: nothing
    can be said about the files at or under its path, so a catalogue keeps what it holds
    there as it is, and ``reason`` tells the user what to fix.
    """

    path: Path  # relative to the root
    size: int
    mtime_ns: int
    format: str | None
    reason: str | None = None  # why a file that looks like an image cannot be used
    unreadable: bool = False


class UnreadableRoot(OSError):
    """The folder to index cannot be listed: nothing can be said about its files."""


NOT_UTF8 = "file name is not valid UTF-8: rename it"
NOT_UTF8_FOLDER = "a folder name in its path is not valid UTF-8: rename the folder"


def catalogue_path(path: PurePosixPath | Path) -> str:
    """``path`` as the text a catalogue stores (SQLite text is UTF-8).

    A name that is not valid UTF-8 (bytes from another encoding on Linux, which Python
    holds as lone surrogates) gets its undecodable bytes written as ``\\xe9``: printable,
    the same on every run, and the original bytes can be read back from it.
    """
    text = path.as_posix()
    return text if _utf8(text) else os.fsencode(text).decode("utf-8", "backslashreplace")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _name_reason(relative: Path) -> str | None:
    """Why a path cannot be catalogued under its own name, or None when it can."""
    if _utf8(relative.as_posix()):
        return None
    return NOT_UTF8 if _utf8(relative.parent.as_posix()) else NOT_UTF8_FOLDER


EXCLUDED = (".lookalike",)  # names never walked into: a collection's own folder


def discover(root: Root, exclude: tuple[str, ...] = EXCLUDED) -> Iterator[Candidate]:
    """Yield every file under ``root`` that is an image by content, in sorted path order.

    Files whose extension promises an image but whose content does not (a text file named
    ``.jpg``, a zero-byte file, an unreadable file, a named pipe) are yielded with a
    ``reason`` so they can be reported instead of silently dropped; so are images whose
    name is not valid UTF-8 (a catalogue cannot store it: see :func:`catalogue_path`).
    A folder that cannot be read is yielded as an ``unreadable`` candidate, not skipped
    as if it were empty; a root that cannot be read raises :class:`UnreadableRoot`.
    Symlinked directories are followed once: a loop, or a link back to a folder already
    walked, is not entered twice. Nothing is ever opened that is not a regular file.

    On a remote root one listing call returns every object with its size and time, and
    images are recognised by extension: reading each object's header would cost one
    request per object on every run. An object whose content is not an image is then
    reported when it is decoded, with the same reason as a local one.
    """
    if is_remote(root):
        yield from _discover_remote(root, exclude)
        return
    root = Path(root)
    seen_dirs: set[tuple[int, int]] = set()
    yield from _walk(root, root, exclude, seen_dirs)


def _walk(
    root: Path, folder: Path, exclude: tuple[str, ...], seen: set[tuple[int, int]]
) -> Iterator[Candidate]:
    try:
        info = folder.stat()
        if (info.st_dev, info.st_ino) in seen:
            return
        seen.add((info.st_dev, info.st_ino))
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        if not _searchable(folder):  # names listed, but no file in it can be opened
            raise PermissionError(13, "Permission denied (the folder is not searchable)")
    except FileNotFoundError:
        if folder == root:
            raise UnreadableRoot(f"{root} does not exist (any more): nothing was changed") \
                from None
        return  # removed while we walked: its files are gone
    except OSError as error:
        problem = error.strerror or str(error)
        if folder == root:
            raise UnreadableRoot(f"cannot read the folder {root}: {problem}; nothing was "
                                 "changed (fix its permissions and index again)") from None
        yield _unreadable(root, folder, f"cannot read folder: {problem}; what the collection "
                          "holds under it is kept as it was (fix its permissions and index "
                          "again)")
        return
    for entry in entries:
        if entry.name in exclude:
            continue
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(root, path, exclude, seen)
        else:
            candidate = _inspect(root, path)
            if candidate is not None:
                yield candidate


_EFFECTIVE_IDS = os.access in os.supports_effective_ids


def _searchable(folder: Path) -> bool:
    """Whether the files of a listed folder can be opened (its execute bit)."""
    if os.name != "posix":
        return True
    return os.access(folder, os.X_OK, effective_ids=_EFFECTIVE_IDS)


def _unreadable(root: Path, path: Path, reason: str) -> Candidate:
    return Candidate(path.relative_to(root), 0, 0, None, reason, unreadable=True)


_SPECIAL_FILES = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def special_file(mode: int) -> str | None:
    """What a file that is not a regular file is (a FIFO, a device...), from its mode."""
    if stat.S_ISREG(mode):
        return None
    for test, name in _SPECIAL_FILES:
        if test(mode):
            return name
    return "not a regular file"


def _inspect(root: Path, path: Path) -> Candidate | None:
    relative = path.relative_to(root)
    looks_like_image = path.suffix.lower() in IMAGE_EXTENSIONS
    try:
        info = path.stat()
    except PermissionError as error:  # a link into a folder we may not enter
        return _unreadable(root, path, f"cannot read: {error.strerror}; what the collection "
                           "holds there is kept as it was")
    except OSError as error:  # dangling symlink, vanished file, symlink loop
        if not looks_like_image:
            return None
        return _named(Candidate(relative, 0, 0, None, f"cannot stat file: {error.strerror}"))
    head = b""
    kind = special_file(info.st_mode)  # a FIFO is never opened: a read would wait forever
    if kind is None:
        try:
            # O_NONBLOCK: should the file have become a FIFO since the stat, opening it
            # returns at once, and fstat says what was opened
            descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                                 | getattr(os, "O_BINARY", 0))
            try:
                info = os.fstat(descriptor)
                kind = special_file(info.st_mode)
                if kind is None:
                    head = os.read(descriptor, 32)
            finally:
                os.close(descriptor)
        except OSError as error:
            return _named(Candidate(relative, info.st_size, info.st_mtime_ns, None,
                                    f"cannot read file: {error.strerror}"))
    image_format = None if kind else sniff_format(head)
    if kind is None and info.st_size > 0 and path.suffix.lower() in RAW_EXTENSIONS:
        image_format = "RAW"
    if image_format is not None:
        return _named(Candidate(relative, info.st_size, info.st_mtime_ns, image_format))
    if not looks_like_image:
        return None
    if kind is not None:
        reason = f"{kind}, not a file: not read"
    elif info.st_size == 0:
        reason = "empty file"
    else:
        reason = "not an image (content is not a known format)"
    return _named(Candidate(relative, info.st_size, info.st_mtime_ns, None, reason))


def _named(candidate: Candidate) -> Candidate:
    """``candidate``, skipped with the reason when its name cannot be catalogued."""
    reason = _name_reason(candidate.path)
    if reason is None:
        return candidate
    return Candidate(candidate.path, candidate.size, candidate.mtime_ns, None, reason)


def _discover_remote(root: UPath, exclude: tuple[str, ...]) -> Iterator[Candidate]:
    base = root.path.rstrip("/")
    root.fs.invalidate_cache(base)  # a long-lived process must see other writers' changes
    listing = root.fs.find(base, detail=True)
    for name in sorted(listing):
        info = listing[name]
        relative = PurePosixPath(name.lstrip("/")).relative_to(base.lstrip("/"))
        if info.get("type") == "directory" or set(relative.parts) & set(exclude):
            continue
        image_format = _FORMAT_BY_EXTENSION.get(relative.suffix.lower())
        if image_format is None:
            continue
        size = int(info.get("size") or 0)
        if size == 0:
            yield Candidate(Path(relative), 0, _modified_ns(info), None, "empty file")
        else:
            yield Candidate(Path(relative), size, _modified_ns(info), image_format)


def _modified_ns(info: dict[str, Any]) -> int:
    """An object's modification time in ns from whichever key its filesystem reports."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
        if isinstance(value, datetime):
            return int(value.timestamp() * 1e9)
        if isinstance(value, (int, float)):
            return int(value * 1e9)
    return 0
