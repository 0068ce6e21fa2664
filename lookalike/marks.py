"""Duplicate-review decisions (keep / discard / not-duplicate), kept beside the collection.

They live in their own SQLite file (``marks.sqlite`` in the collection directory) rather
than in the catalogue: an ``index`` run never touches them, and they survive a
``--rebuild``. Marks are only records of intent: nothing here deletes or moves a file
(:mod:`lookalike.act.quarantine` acts on them). Beside the marks: which duplicate groups
were reviewed, and the quarantine runs applied from them (tables added to older files
when they are opened).

Each mark records the path (and content hash) of the file it was made on. A mark is read
back only while its id still names that file: if the file is gone, or the id now names
another path (an id reused after a deletion) or other content, the mark is left out
rather than attached to an image nobody marked.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .discover import Root
from .store import FileRecord

DECISIONS = ("keep", "discard", "not-duplicate")
# A spreadsheet reads a cell starting with one of these as a formula (or, for tab and
# carriage return, strips them and reads what follows): OWASP's CSV injection list.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS marks (
    file_id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    content_hash TEXT,
    decision TEXT NOT NULL CHECK (decision IN ('keep', 'discard', 'not-duplicate')),
    group_key TEXT,
    note TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reviewed_groups (
    group_key TEXT PRIMARY KEY,
    decision TEXT CHECK (decision IN ('keep-all', 'not-duplicates')),
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS review_runs (
    journal TEXT PRIMARY KEY,
    folder TEXT NOT NULL,
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    applied_at REAL NOT NULL
);
"""
GROUP_DECISIONS = ("keep-all", "not-duplicates")  # what the whole group is, once reviewed


@dataclass(frozen=True)
class ReviewRun:
    """One application of the review: ``files`` moved to ``folder`` under ``journal``."""

    journal: str
    folder: str
    files: int
    bytes: int
    applied_at: float


@dataclass(frozen=True)
class MarkRecord:
    file_id: int
    path: str
    content_hash: str | None
    decision: str
    group: str | None
    note: str | None
    updated_at: float

    def is_about(self, record: FileRecord | None) -> bool:
        """Whether ``record`` (the catalogue's file of this id now) is the file this mark
        was made on: the same path, and the same content where both hashes are known."""
        return (record is not None and record.path == self.path
                and (self.content_hash is None or record.content_hash is None
                     or record.content_hash == self.content_hash))


def spreadsheet_safe(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs as a formula: prefixed with ``'`` when it
    starts like one (OWASP's advice; the quote shows as nothing in the cell)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class MarkStore:
    """One decision per file; a later mark for the same file replaces the earlier one."""

    FILENAME = "marks.sqlite"

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / self.FILENAME
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def save(self, marks: Iterable[MarkRecord]) -> int:
        rows = [(m.file_id, m.path, m.content_hash, m.decision, m.group, m.note,
                 m.updated_at or time.time()) for m in marks]
        for row in rows:
            if row[3] not in DECISIONS:
                raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO marks VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return len(rows)

    def delete(self, file_id: int) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM marks WHERE file_id = ?",
                                    (file_id,)).rowcount > 0

    def all(self, files: Mapping[int, FileRecord] | None = None) -> list[MarkRecord]:
        """Every mark; with ``files`` (the catalogue's files by id), only the marks still
        about the file they were made on (:meth:`MarkRecord.is_about`)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT file_id, path, content_hash, decision, group_key, note, updated_at"
                " FROM marks ORDER BY group_key, file_id").fetchall()
        marks = [MarkRecord(*row) for row in rows]
        if files is None:
            return marks
        return [mark for mark in marks if mark.is_about(files.get(mark.file_id))]

    def decisions(self, files: Mapping[int, FileRecord]) -> dict[int, str]:
        """``file id -> decision`` of the marks still about their file."""
        return {mark.file_id: mark.decision for mark in self.all(files)}

    def to_csv(self, root: Root, files: Mapping[int, FileRecord]) -> str:
        """``file_id,path,absolute_path,decision,group,note,updated_at`` (ISO time, UTC) of
        the marks still about their file. Text cells that a spreadsheet would run as a
        formula are prefixed with ``'`` (:func:`spreadsheet_safe`)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["file_id", "path", "absolute_path", "decision", "group", "note",
                         "updated_at"])
        for mark in self.all(files):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mark.updated_at))
            writer.writerow([mark.file_id, *(spreadsheet_safe(text) for text in (
                mark.path, str(root / mark.path), mark.decision, mark.group or "",
                mark.note or "")), stamp])
        return out.getvalue()

    # -- reviewed groups and review runs ------------------------------------------------------
    def reviewed(self) -> dict[str, str | None]:
        """``group key -> decision`` (None: reviewed without a whole-group decision)."""
        with self._lock:
            return dict(self._db.execute(
                "SELECT group_key, decision FROM reviewed_groups").fetchall())

    def set_reviewed(self, keys: Iterable[str], reviewed: bool = True,
                     decision: str | None = None) -> None:
        if decision is not None and decision not in GROUP_DECISIONS:
            raise ValueError(f"a group decision must be one of {', '.join(GROUP_DECISIONS)}")
        rows = [(key, decision, time.time()) for key in keys]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if reviewed:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO reviewed_groups VALUES (?, ?, ?)", rows)
                else:
                    self._db.executemany("DELETE FROM reviewed_groups WHERE group_key = ?",
                                         [row[:1] for row in rows])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def record_run(self, journal: str, folder: str, files: int, size: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO review_runs VALUES (?, ?, ?, ?, ?)",
                             (journal, folder, files, size, time.time()))

    def runs(self) -> list[ReviewRun]:
        """The reviews applied, newest first (whether each was undone since, its journal
        says)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT journal, folder, files, bytes, applied_at FROM review_runs"
                " ORDER BY applied_at DESC").fetchall()
        return [ReviewRun(*row) for row in rows]
