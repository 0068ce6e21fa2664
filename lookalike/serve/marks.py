"""Duplicate-review decisions (keep / discard / not-duplicate), kept beside the collection.

They live in their own SQLite file (``marks.sqlite`` in the collection directory) rather
than in the catalogue: an ``index`` run never touches them, and they survive a
``--rebuild``. Marks are only records of intent: nothing here deletes or moves a file.

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

from ..discover import Root
from ..store import FileRecord

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
"""


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
