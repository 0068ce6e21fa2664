"""Thumbnails: WebP, made on first request and cached on disk in the collection directory.

The cache file name carries the source's content hash (or size and mtime), so an edited
image gets a new thumbnail instead of a stale one; writes are atomic (temp + rename), so
concurrent requests for the same thumbnail never read a torn file.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from PIL import Image

from ..decode import decode_file
from ..discover import Root
from ..store import FileRecord

SIZES = (96, 160, 256, 384, 640)
DEFAULT_SIZE = 256


def nearest_size(size: int) -> int:
    """Snap a requested size to a fixed set, so the cache cannot be grown without bound."""
    return min(SIZES, key=lambda s: (abs(s - size), s))


def thumb_path(cache: Path, record: FileRecord, size: int) -> Path:
    stamp = (record.content_hash or f"{record.size:x}-{record.mtime_ns:x}")[:16]
    return cache / str(size) / f"{record.id % 256:02x}" / f"{record.id}-{stamp}.webp"


def thumbnail(cache: Path, original: Root, record: FileRecord, size: int) -> Path:
    """The cached thumbnail of ``record`` (whose file is ``original``) at ``size`` px
    (longest side), made if needed.

    Raises :class:`~lookalike.decode.DecodeError` when the original cannot be decoded.
    """
    path = thumb_path(cache, record, size)
    if path.exists():
        return path
    decoded = decode_file(original, min_side=size)
    image = decoded.image
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        image.save(temporary, "WEBP", quality=80, method=4)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
