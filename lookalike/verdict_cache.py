"""Verification verdicts kept per pair of files, beside the collection's index.

A verdict depends only on the two files' pixels and on the verification method, so a
pair is keyed by both file ids and both content hashes (an edited file gets a new hash,
and so a new verdict) plus :data:`VERIFY_VERSION`; it holds whatever the model, and a
re-embedded or re-calibrated collection keeps its verdicts. The hashes of decoded pixels
that the exact stage computes are kept the same way, per file id and content hash. One
SQLite file, ``index/verdicts.sqlite``; a collection that cannot be written simply
verifies again.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from .verify import Verdict

# Raise when verification changes what it decides or measures: older verdicts are ignored.
VERIFY_VERSION = 4

PairKey = tuple[int, int, str, str]  # (id_a, id_b, hash_a, hash_b), id_a < id_b

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    a INTEGER NOT NULL, b INTEGER NOT NULL, hash_a TEXT NOT NULL, hash_b TEXT NOT NULL,
    version INTEGER NOT NULL, inliers INTEGER NOT NULL, matches INTEGER NOT NULL,
    flipped INTEGER NOT NULL, scale REAL NOT NULL, same INTEGER NOT NULL,
    agreement REAL, coverage REAL NOT NULL,
    PRIMARY KEY (a, b)
);
CREATE TABLE IF NOT EXISTS pixels (
    id INTEGER PRIMARY KEY, hash TEXT NOT NULL, pixel_hash TEXT
)
"""


def pair_key(id_a: int, id_b: int, hash_a: str, hash_b: str) -> PairKey:
    """The key of a pair in either order: the smaller file id first."""
    return (id_a, id_b, hash_a, hash_b) if id_a < id_b else (id_b, id_a, hash_b, hash_a)


class VerdictCache:
    """Verdicts by :func:`pair_key`, read all at once (tens of bytes a pair)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, keys: Sequence[PairKey]) -> list[Verdict | None]:
        """The stored verdict of each key (None: not stored, stale or unreadable)."""
        if not keys or not self.path.exists():
            return [None] * len(keys)
        try:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
                rows = db.execute(
                    "SELECT a, b, hash_a, hash_b, inliers, matches, flipped, scale, same, "
                    "agreement, coverage FROM verdicts WHERE version = ?",
                    (VERIFY_VERSION,)).fetchall()
        except sqlite3.Error:
            return [None] * len(keys)
        stored = {
            (a, b, hash_a, hash_b): Verdict(
                int(inliers), int(matches), bool(flipped), float(scale), bool(same),
                math.nan if agreement is None else float(agreement), float(coverage))
            for a, b, hash_a, hash_b, inliers, matches, flipped, scale, same, agreement,
            coverage in rows}
        return [stored.get(key) for key in keys]

    def save(self, items: Iterable[tuple[PairKey, Verdict]]) -> bool:
        """Store verdicts (replacing older ones of the same pairs); False when the
        collection cannot be written."""
        rows = [(*key, VERIFY_VERSION, v.inliers, v.matches, int(v.flipped), v.scale,
                 int(v.same), None if math.isnan(v.agreement) else v.agreement, v.coverage)
                for key, v in items]
        if not rows:
            return True
        try:
            with sqlite3.connect(self.path) as db:
                db.executescript(_SCHEMA)
                db.executemany("INSERT OR REPLACE INTO verdicts VALUES "
                               "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            return True
        except (sqlite3.Error, OSError):
            return False

    def load_pixel_hashes(self) -> dict[tuple[int, str], str | None]:
        """Stored pixel hashes by (file id, content hash); None: the file did not decode."""
        if not self.path.exists():
            return {}
        try:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
                rows = db.execute("SELECT id, hash, pixel_hash FROM pixels").fetchall()
        except sqlite3.Error:
            return {}
        return {(int(i), str(h)): p for i, h, p in rows}

    def save_pixel_hashes(self, items: Iterable[tuple[int, str, str | None]]) -> None:
        """Store ``(file id, content hash, pixel hash)`` rows; silently not on a
        collection that cannot be written."""
        rows = list(items)
        if not rows:
            return
        try:
            with sqlite3.connect(self.path) as db:
                db.executescript(_SCHEMA)
                db.executemany("INSERT OR REPLACE INTO pixels VALUES (?, ?, ?)", rows)
        except (sqlite3.Error, OSError):
            pass
