"""Per-image measurements beyond the embedding: exposure, detail and capture metadata.

One pass over a collection's files reads each file's header (EXIF: capture time, camera,
lens, GPS position, orientation) and a small decode of its pixels (brightness, clipped
shadows and highlights, contrast, information, sharpness). Results are cached in the
collection's folder by content hash (``image-stats.sqlite``), so a second pass costs
nothing and a changed file is measured again. Quality flags
(:mod:`lookalike.analyse.quality`), time-aware groups and metadata exports read them.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .decode import FilePath, decode_bytes, parallel_ordered, read_file
from .discover import is_raw
from .image_facts import capture_metadata, sharpness

# Pixels are measured on a decode with about this short side (JPEGs decode at a reduced
# DCT scale, so this is cheap); sharpness is measured at a fixed size in image_facts.
MEASURE_SIDE = 256
CONTRAST_GAIN_CAP = 4.0
STATS_FILE = "image-stats.sqlite"
VERSION = 2  # bump when a measure changes: cached rows of another version are redone


@dataclass(frozen=True)
class ImageStats:
    """What one file's pixels and header say, beyond what it looks like.

    Levels are 0-1 on the grey (luma) channel: ``brightness`` its mean, ``contrast`` its
    standard deviation, ``shadows``/``highlights`` the shares of pixels at the ends of
    the scale (<= 2/255, >= 253/255), ``lower``/``upper`` the 2nd and 98th percentile
    levels (what the darkest and lightest parts of the picture reach), ``information``
    the entropy (bits, 0-8) of its 64-level histogram, ``sharpness`` the log10 variance
    of the Laplacian at a fixed size and a typical contrast (see
    :func:`lookalike.image_facts.sharpness`).
    ``width``/``height``: upright pixels.
    ``captured``: EXIF DateTimeOriginal (ISO, camera's local time), ``camera``, ``lens``,
    ``latitude``/``longitude`` (degrees, from GPS), ``orientation`` (EXIF 1-8).
    """

    width: int
    height: int
    brightness: float
    contrast: float
    shadows: float
    highlights: float
    lower: float
    upper: float
    information: float
    sharpness: float
    captured: str | None = None
    camera: str | None = None
    lens: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    orientation: int | None = None

    @property
    def capture_time(self) -> datetime | None:
        return datetime.fromisoformat(self.captured) if self.captured else None


def measure_pixels(grey: np.ndarray) -> dict[str, float]:
    """Exposure and detail of a grey image (float, 0-255)."""
    levels = np.clip(grey, 0, 255) / 255.0
    histogram = np.bincount(np.minimum((levels * 64).astype(np.int64), 63).ravel(),
                            minlength=64) / max(levels.size, 1)
    present = histogram[histogram > 0]
    return {
        "brightness": round(float(levels.mean()), 4),
        "contrast": round(float(levels.std()), 4),
        "shadows": round(float((levels <= 2 / 255).mean()), 4),
        "highlights": round(float((levels >= 253 / 255).mean()), 4),
        "lower": round(float(np.percentile(levels, 2)), 4),
        "upper": round(float(np.percentile(levels, 98)), 4),
        "information": round(float(-(present * np.log2(present)).sum()), 4),
        "sharpness": round(float(np.log10(1.0 + sharpness(grey * _unit_contrast(levels)))),
                           4),
    }


def _unit_contrast(levels: np.ndarray) -> float:
    """The gain that brings an image's contrast to a typical photo's (0.2): the Laplacian
    grows with contrast, so a dark or flat image would otherwise read as a blurred one.
    Capped, so that the noise of a near-uniform image is not blown up into detail."""
    return float(min(CONTRAST_GAIN_CAP, 0.2 / max(float(levels.std()), 1e-6)))


def image_stats(path: FilePath) -> ImageStats:
    """The :class:`ImageStats` of one file; a bad file raises
    :class:`~lookalike.decode.DecodeError`."""
    data = read_file(path)
    raw = is_raw(path)
    decoded = decode_bytes(data, min_side=MEASURE_SIDE, raw=raw)
    metadata: dict[str, Any] = {}
    if not raw:  # libraw gives no EXIF here; the pixels are still measured
        with Image.open(io.BytesIO(data)) as header:  # its pixels are never loaded
            metadata = capture_metadata(header)
    image = decoded.image
    scale = MEASURE_SIDE / min(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)),
                              max(1, round(image.height * scale))), Image.Resampling.BOX)
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    values: dict[str, Any] = {**measure_pixels(grey), **metadata}
    return ImageStats(width=decoded.width, height=decoded.height, **values)


Progress = Callable[[int, int], None]


def stats_of(
    paths: Sequence[FilePath], hashes: Sequence[str | None], cache_folder: Path | None,
    *, workers: int | None = None, progress: Progress | None = None,
) -> tuple[list[ImageStats | None], dict[int, str]]:
    """``(stats, errors)``: the stats of each path (None where it failed; ``errors``:
    position -> reason), from the cache in ``cache_folder`` where the content hash is
    known there, measured (in parallel) and cached otherwise. ``cache_folder`` None, or
    one that cannot be written: measured every time."""
    cache = _StatsCache(cache_folder / STATS_FILE) if cache_folder is not None else None
    found: list[ImageStats | None] = [None] * len(paths)
    if cache is not None:
        for position, stats in cache.get(hashes).items():
            found[position] = stats
    todo = [p for p in range(len(paths)) if found[p] is None]
    errors: dict[int, str] = {}
    fresh: dict[str, ImageStats] = {}
    for done, outcome in enumerate(parallel_ordered(image_stats, [paths[p] for p in todo],
                                                    workers=workers), start=1):
        position = todo[done - 1]
        if outcome.error is not None:
            errors[position] = outcome.error
        else:
            found[position] = outcome.value
            if (digest := hashes[position]) is not None:
                fresh[digest] = outcome.value
        if progress is not None:
            progress(done, len(todo))
    if cache is not None and fresh:
        cache.put(fresh)
    return found, errors


class _StatsCache:
    """Measured stats by content hash, in a small SQLite file of the collection's own."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30)
        connection.execute("CREATE TABLE IF NOT EXISTS stats (hash TEXT PRIMARY KEY, "
                           "version INTEGER NOT NULL, data TEXT NOT NULL)")
        return connection

    def get(self, hashes: Sequence[str | None]) -> dict[int, ImageStats]:
        if not self.path.exists():
            return {}
        names = {f.name for f in fields(ImageStats)}
        wanted: dict[str, list[int]] = {}
        for position, digest in enumerate(hashes):
            if digest is not None:
                wanted.setdefault(digest, []).append(position)
        try:
            with closing(self._connect()) as connection:
                rows = connection.execute(
                    "SELECT hash, data FROM stats WHERE version = ?", (VERSION,)).fetchall()
        except sqlite3.Error:
            return {}
        found: dict[int, ImageStats] = {}
        for digest, data in rows:
            for position in wanted.get(digest, []):
                values = {k: v for k, v in json.loads(data).items() if k in names}
                found[position] = ImageStats(**values)
        return found

    def put(self, stats: dict[str, ImageStats]) -> None:
        try:
            with closing(self._connect()) as connection, connection:
                connection.executemany(
                    "INSERT OR REPLACE INTO stats VALUES (?, ?, ?)",
                    [(digest, VERSION, json.dumps(asdict(value)))
                     for digest, value in stats.items()])
        except sqlite3.Error:
            pass  # a read-only collection: measured again next time
