"""Store: a collection on disk — SQLite catalogue + float16 memory-mapped embeddings.

Layout of a collection directory::

    catalogue.sqlite         files, models, vectors (file -> embedding row), meta  (WAL mode)
    embeddings/<model>.<generation>.f16   raw float16 rows, append-only
    index/                   vector indexes (derived data, rebuilt when stale)

Crash safety (a ``kill -9`` at any point): embedding rows are appended and fsynced
*before* the SQLite transaction that makes them visible commits, and the committed row
count lives in SQLite. On the next write-open, bytes past the committed count are cut
off and files of aborted compactions are removed, so an interrupted run resumes to
exactly the state of an uninterrupted one.

Ownership: the collection directory is lookalike's (a new or empty folder when created; a
non-empty folder without a catalogue is refused), and inside it lookalike removes only
files named the way it names them. One process at a time may write (``writer.lock``,
held for as long as a writable store is open); others read.

Damage: an embeddings file that is shorter than the catalogue says (or missing) is cut
back to what is intact on the next write-open; the files that lost their rows go back to
``pending`` and are embedded again by the next ``index`` run. Rows that are zero or not
finite are never committed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .discover import Candidate, Root, as_root, is_remote

# The catalogue's schema: _SCHEMA is version 1 (run, idempotently, on every connection);
# _MIGRATIONS[n - 1] brings a catalogue from version n to n + 1, and the current version
# is one past the last step, so a version without its step cannot exist.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_hash TEXT,
    width INTEGER,
    height INTEGER,
    format TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ok', 'skipped')),
    reason TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_hash ON files (content_hash);
CREATE TABLE IF NOT EXISTS models (
    key TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    options TEXT NOT NULL,
    identity TEXT NOT NULL,
    dim INTEGER NOT NULL,
    file TEXT NOT NULL,
    rows INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS vectors (
    model TEXT NOT NULL REFERENCES models (key) ON DELETE CASCADE,
    file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    row INTEGER NOT NULL,
    PRIMARY KEY (model, file_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS vectors_row ON vectors (model, row);
-- a file id is never given to another file: marks, journals and caches that name an id
-- must not come to mean a different image once that file is deleted
CREATE TRIGGER IF NOT EXISTS files_retire_id AFTER DELETE ON files BEGIN
    INSERT OR REPLACE INTO meta VALUES ('last_file_id', max(OLD.id, coalesce(
        (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_file_id'), 0)));
END;
-- the rows of files a sort moved out of the folder, under its journal: an undo that brings
-- a file back restores its row from here (same id, same embeddings)
CREATE TABLE IF NOT EXISTS departed (
    journal TEXT NOT NULL,
    path TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (journal, path)
);
"""
_MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []
SCHEMA_VERSION = 1 + len(_MIGRATIONS)

_NEXT_FILE_ID = ("max(coalesce((SELECT max(id) FROM files), 0), coalesce((SELECT CAST(value"
                 " AS INTEGER) FROM meta WHERE key = 'last_file_id'), 0)) + 1")


_FILE_COLUMNS = "id, path, size, mtime_ns, content_hash, width, height, format, status, reason"


log = logging.getLogger(__name__)

# names lookalike gives the files in embeddings/ (model key . generation . f16): the only
# files there it ever deletes
_EMBEDDINGS_NAME = re.compile(r"[a-z0-9-]+\.\d+\.f16")


class StoreError(RuntimeError):
    """A collection that cannot be opened or used as asked; the message says why."""


class CollectionBusy(StoreError):
    """Another process is writing to the collection."""


@dataclass(frozen=True)
class FileRecord:
    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None
    height: int | None
    format: str | None
    status: str
    reason: str | None


@dataclass(frozen=True)
class ModelRecord:
    key: str
    spec: str
    options: dict[str, Any]
    identity: dict[str, Any]
    dim: int
    file: str
    rows: int  # committed embedding rows, live and dead
    version: int  # bumped by every change to this model's vectors


@dataclass(frozen=True)
class CatalogueChanges:
    """What a discover pass changed in the catalogue."""

    added: int
    changed: int
    removed: int
    unchanged: int
    rejected: list[tuple[str, str]]  # (path, reason): new or changed files that are no image
    moved: int = 0  # of the unchanged, found under a new name (row renamed, not re-embedded)


@dataclass(frozen=True)
class FollowedMoves:
    """What :meth:`Store.follow_moves` changed in the catalogue."""

    renamed: int  # rows renamed to the file's new path (same id, same embeddings)
    departed: int  # rows removed: their files left the folder
    restored: int  # rows brought back: their files came back into the folder


@dataclass(frozen=True)
class IndexState:
    """What a model's saved vector index was built from (meta ``index:<model>``)."""

    requested: str | None  # the kind asked for ("ivfpq" may be saved as a flat stand-in)
    kind: str | None  # the kind saved
    file: str | None  # the embeddings file (generation) it indexes
    version: int | None  # the model's version it holds
    transform: str | None  # the learned transform's stamp it was built over, or None


@dataclass(frozen=True)
class TransformState:
    """The learned transform set on a model (meta ``transform:<model>``)."""

    stamp: str  # the saved chain's digest: what projected caches are keyed by
    description: str


@dataclass(frozen=True)
class EmbeddedFile:
    """One decoded and embedded file, ready to be committed."""

    file_id: int
    content_hash: str
    width: int
    height: int
    format: str


class Store:
    """Read/write access to one collection directory. Safe to share between threads."""

    CATALOGUE = "catalogue.sqlite"

    WRITER_LOCK = "writer.lock"

    def __init__(self, directory: Path, connection: sqlite3.Connection,
                 writer: _WriterLock | None = None) -> None:
        self.directory = directory
        self._db = connection
        self._lock = threading.RLock()
        self.writable = writer is not None
        # the writer lock is released on close, or when this store is garbage-collected
        self._commits = writer.commits if writer is not None else threading.Lock()
        self._release = weakref.finalize(self, writer.release) if writer is not None else None

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, directory: str | os.PathLike[str], root: str | os.PathLike[str] | Root
               ) -> Store:
        directory = Path(directory).expanduser().absolute()
        if (directory / cls.CATALOGUE).exists():
            raise StoreError(f"a collection already exists at {directory}")
        if directory.exists() and not directory.is_dir():
            raise StoreError(f"{directory} is a file: choose a new folder for the collection")
        if directory.is_dir() and any(not _is_own_name(path.name)
                                      for path in directory.iterdir()):
            raise StoreError(
                f"{directory} is not empty and holds no collection: choose a new or empty "
                "folder for --db (lookalike never writes into folders of yours)")
        directory.mkdir(parents=True, exist_ok=True)
        writer = _WriterLock.take(directory)
        try:
            store = cls(directory, _connect(directory / cls.CATALOGUE), writer)
        except StoreError:
            writer.release()
            raise
        root = as_root(root)
        # a local root is stored relative to the collection, a remote one as its URL
        stored_root = str(root) if is_remote(root) else os.path.relpath(root, directory)
        with store.transaction() as db:
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            db.execute("INSERT INTO meta VALUES ('root', ?)", (stored_root,))
            db.execute("INSERT INTO meta VALUES ('created_at', ?)", (str(time.time()),))
        return store

    @classmethod
    def open(cls, directory: str | os.PathLike[str], writable: bool = False) -> Store:
        directory = Path(directory).expanduser().absolute()
        if not (directory / cls.CATALOGUE).is_file():
            raise StoreError(
                f"no collection at {directory} (create one with: lookalike index FOLDER)"
            )
        writer = _WriterLock.take(directory) if writable else None
        try:
            store = cls(directory, _connect(directory / cls.CATALOGUE), writer)
            schema = store.meta("schema")
        except (sqlite3.DatabaseError, StoreError) as error:
            if writer is not None:
                writer.release()
            if isinstance(error, StoreError):
                raise
            raise CatalogueDamaged(directory, error) from None
        try:
            store._migrate(schema, writer)
        except BaseException:
            store.close()
            raise
        if writable:
            store._recover()
        return store

    def _migrate(self, schema: str | None, writer: _WriterLock | None) -> None:
        """Bring a catalogue of an older schema to this one, a step at a time in one
        transaction under the writer lock (taken for it when opened read-only); refuse one
        that is newer, or not a version at all."""
        version = int(schema) if schema and schema.isdigit() else None
        if version is None or version < 1:
            raise StoreError(f"collection schema {schema} is not supported by this version")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the collection at {self.directory} has schema {version}, newer than the "
                f"{SCHEMA_VERSION} this version of lookalike reads: upgrade lookalike "
                "(pip install -U lookalike) to open it")
        if version == SCHEMA_VERSION:
            return
        lock = writer or _WriterLock.take(self.directory)  # CollectionBusy if one writes
        try:
            with self.transaction() as db:  # from the version as it is under the lock
                (current,) = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                for step in range(int(current), SCHEMA_VERSION):
                    _MIGRATIONS[step - 1](db)
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema'",
                           (str(SCHEMA_VERSION),))
        finally:
            if writer is None:
                lock.release()
        log.info("the catalogue at %s was migrated from schema %d to %d", self.directory,
                 version, SCHEMA_VERSION)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._release is not None:
                self._release()

    @functools.cached_property
    def root(self) -> Root:
        """The image folder: a local one is stored relative to the collection, so both can
        move together; a remote one (an fsspec URL) as its URL."""
        stored = self.meta("root") or "."
        if "://" in stored:
            return as_root(stored)
        return (self.directory / stored).resolve()

    def meta(self, key: str) -> str | None:
        row = self._query_one("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else None

    def data_version(self) -> tuple[int, int]:
        """Changes whenever a commit changes the catalogue: another connection's (SQLite's
        ``data_version``) or this one's (its ``total_changes``). One cheap check tells a
        reader whether anything it cached from the catalogue may be stale."""
        row = self._query_one("PRAGMA data_version")
        with self._lock:
            return (int(row[0]) if row else 0), self._db.total_changes

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- typed state: the meta key families the collection keeps --------------------------
    def current_model(self) -> str | None:
        """The key of the model whose embeddings the collection searches."""
        return self.meta("model")

    def set_current_model(self, key: str) -> None:
        self.set_meta("model", key)

    def max_memory(self) -> int | None:
        """The remembered ``--max-memory`` budget in bytes, or None."""
        value = self.meta("max_memory")
        return int(value) if value else None

    def set_max_memory(self, budget: int) -> None:
        self.set_meta("max_memory", str(int(budget)))

    def index_kind(self) -> str:
        """The index kind asked for: ``auto`` unless one was chosen."""
        return self.meta("index_kind") or "auto"

    def set_index_kind(self, kind: str) -> None:
        self.set_meta("index_kind", kind)

    def embeds_text(self, key: str) -> bool | None:
        """Whether model ``key`` embeds text queries; None when not recorded."""
        value = self.meta(f"text:{key}")
        return None if value is None else value == "1"

    def set_embeds_text(self, key: str, embeds: bool) -> None:
        self.set_meta(f"text:{key}", "1" if embeds else "0")

    def index_state(self, key: str) -> IndexState | None:
        """What model ``key``'s saved vector index was built from; None before any."""
        state = json.loads(self.meta(f"index:{key}") or "null")
        if not state:
            return None
        return IndexState(*(state.get(name) for name in IndexState.__dataclass_fields__))

    def set_index_state(self, key: str, state: IndexState) -> None:
        self.set_meta(f"index:{key}", json.dumps(dataclasses.asdict(state)))

    def transform_state(self, key: str) -> TransformState | None:
        """The learned transform set on model ``key``, or None."""
        state = json.loads(self.meta(f"transform:{key}") or "null")
        return None if state is None else TransformState(state["stamp"], state["description"])

    def set_transform_state(self, key: str, state: TransformState | None) -> None:
        self.set_meta(f"transform:{key}", json.dumps(
            None if state is None else dataclasses.asdict(state)))

    def drop_model(self, key: str) -> None:
        """Forget model ``key``: its catalogue rows and the state kept for it (its
        embeddings file is the caller's to delete)."""
        with self.transaction() as db:
            db.execute("DELETE FROM models WHERE key = ?", (key,))
            db.execute("DELETE FROM meta WHERE key IN (?, ?)", (f"index:{key}", f"text:{key}"))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _query_one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _recover(self) -> None:
        """Undo the traces of an interrupted writer and cut back a damaged embeddings file
        (see the module docstring); what was repaired is logged."""
        models = self.models()
        referenced = {model.file for model in models}
        embeddings = self.directory / "embeddings"
        embeddings.mkdir(exist_ok=True)
        for path in embeddings.iterdir():  # an aborted compaction's file; nothing else
            if path.name not in referenced and _EMBEDDINGS_NAME.fullmatch(path.name):
                path.unlink()
        for model in models:
            path = embeddings / model.file
            committed = model.rows * model.dim * 2
            size = path.stat().st_size if path.exists() else None
            if size is None:
                path.touch()
            if size is not None and size > committed:
                with open(path, "r+b") as handle:
                    handle.truncate(committed)
                    os.fsync(handle.fileno())
            elif model.rows and (size or 0) < committed:
                self._drop_rows_from(model, (size or 0) // (model.dim * 2))

    def _drop_rows_from(self, model: ModelRecord, intact: int) -> None:
        """Forget a model's embedding rows from ``intact`` on (lost from a damaged file):
        their files go back to ``pending`` so that the next index run embeds them again."""
        with self.transaction() as db:
            lost = [file_id for (file_id,) in db.execute(
                "SELECT file_id FROM vectors WHERE model = ? AND row >= ?", (model.key, intact))]
            db.execute("DELETE FROM vectors WHERE model = ? AND row >= ?", (model.key, intact))
            db.executemany("UPDATE files SET status = 'pending' WHERE id = ?",
                           [(file_id,) for file_id in lost])
            db.execute("UPDATE models SET rows = ?, version = version + 1 WHERE key = ?",
                       (intact, model.key))
        with open(self.directory / "embeddings" / model.file, "r+b") as handle:
            handle.truncate(intact * model.dim * 2)
            os.fsync(handle.fileno())
        log.warning("embeddings file %s was damaged (%d of %d rows intact): %d images will be "
                    "embedded again by the next index run", model.file, intact, model.rows,
                    len(lost))

    @classmethod
    def set_aside_damaged(cls, directory: str | os.PathLike[str]) -> Path:
        """Rename a damaged catalogue (and its WAL) to ``catalogue.sqlite.damaged-<time>``,
        kept for the user, so that a new one can be created; returns the new name. The
        embeddings stay: the next write-open keeps only what the new catalogue names."""
        directory = Path(directory).expanduser().absolute()
        writer = _WriterLock.take(directory)
        try:
            kept = directory / f"{cls.CATALOGUE}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
            for suffix in ("", "-wal", "-shm"):
                part = directory / (cls.CATALOGUE + suffix)
                if part.exists():
                    os.replace(part, kept.with_name(kept.name + suffix))
        finally:
            writer.release()
        log.warning("the damaged catalogue is kept as %s; a new one is being built", kept)
        return kept

    def check(self, repair: bool = False) -> list[Problem]:
        """What is wrong with the catalogue and embeddings, each with the way out;
        ``repair``: forget embeddings that are zero or not finite (their files go back to
        ``pending``), so that the next index run embeds them again."""
        problems: list[Problem] = []
        verdict = [row[0] for row in self._query("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            return [Problem(f"the catalogue is damaged: {'; '.join(verdict[:3])}",
                            "lookalike index FOLDER --db DIR --rebuild", fatal=True)]
        for model in self.models():
            path = self.directory / "embeddings" / model.file
            size = path.stat().st_size if path.exists() else -1
            if size < model.rows * model.dim * 2:
                problems.append(Problem(
                    f"embeddings file {model.file} is {'missing' if size < 0 else 'short'}: "
                    f"{model.rows} rows expected", "lookalike index FOLDER (repairs it)"))
                continue
            file_ids, rows = self.live_rows(model.key)
            matrix = self.embeddings(model.key)
            bad = [file_ids[start:start + 65536][~usable_rows(matrix[rows[start:start + 65536]])]
                   for start in range(0, len(rows), 65536)]
            broken = np.concatenate(bad) if bad else np.zeros(0, np.int64)
            if len(broken) and repair:
                self.forget(model.key, broken)
                problems.append(Problem(f"{len(broken)} embeddings were zero or not finite "
                                        "and are forgotten", "lookalike index FOLDER",
                                        repaired=True))
            elif len(broken):
                problems.append(Problem(f"{len(broken)} embeddings are zero or not finite",
                                        "lookalike check --repair, then lookalike index FOLDER"))
            (unembedded,) = self._query_one(
                "SELECT COUNT(*) FROM files WHERE status = 'ok' AND id NOT IN"
                " (SELECT file_id FROM vectors WHERE model = ?)", (model.key,)) or (0,)
            if unembedded:
                problems.append(Problem(f"{unembedded} images have no embedding yet",
                                        "lookalike index FOLDER"))
        return problems

    def forget(self, key: str, file_ids: Iterable[int]) -> None:
        """Drop these files' embeddings from ``key``: they go back to ``pending``."""
        ids = [int(file_id) for file_id in file_ids]
        with self._commits, self.transaction() as db:
            db.executemany("DELETE FROM vectors WHERE model = ? AND file_id = ?",
                           [(key, file_id) for file_id in ids])
            db.executemany("UPDATE files SET status = 'pending' WHERE id = ?",
                           [(file_id,) for file_id in ids])
            db.execute("UPDATE models SET version = version + 1 WHERE key = ?", (key,))

    # -- files ---------------------------------------------------------------------------
    def sync_files(self, candidates: Iterable[Candidate]) -> CatalogueChanges:
        """Make the catalogue match a discover pass, in one transaction.

        New files are added as ``pending``; files whose size or mtime changed go back to
        ``pending`` and lose their embeddings; files no longer found are removed. A new
        file that is a vanished one under another name (moved: same size, mtime and
        content hash) takes over its row, embeddings included, instead of being embedded
        again. Candidates with a ``reason`` (not an image) are recorded as ``skipped``, and
        reported once (again only when they change). An ``unreadable`` candidate (a
        folder that could not be read) is reported on every pass and keeps the rows at
        and under its path as they are: its files are not known to be gone. Paths are
        stored as :func:`~lookalike.discover.catalogue_path` gives them: a name that is
        not valid UTF-8 is skipped under a printable spelling of its bytes.
        """
        from .discover import NOT_UTF8, catalogue_path

        now = time.time()
        changed = unchanged = 0
        rejected: list[tuple[str, str]] = []
        kept: set[str] = set()  # paths of unreadable folders: rows at or under them stay
        new: list[tuple[str, Candidate, str | None]] = []  # (path, candidate, reason)
        with self.transaction() as db:
            known = {
                path: (file_id, size, mtime_ns, status, digest)
                for file_id, path, size, mtime_ns, status, digest in db.execute(
                    "SELECT id, path, size, mtime_ns, status, content_hash FROM files"
                )
            }
            seen: set[str] = set()
            for candidate in candidates:
                path = catalogue_path(candidate.path)
                if candidate.unreadable:
                    kept.add(path)
                    rejected.append((path, candidate.reason or "cannot be read"))
                    continue
                seen.add(path)
                reason = candidate.reason
                if reason is None and path != candidate.path.as_posix():
                    reason = NOT_UTF8  # the name only: SQLite text must be UTF-8
                previous = known.get(path)
                if reason and (previous is None or previous[1:3] != (
                        candidate.size, candidate.mtime_ns)):
                    rejected.append((path, reason))
                if previous is None:
                    new.append((path, candidate, reason))
                elif previous[1:3] != (candidate.size, candidate.mtime_ns):
                    db.execute("DELETE FROM vectors WHERE file_id = ?", (previous[0],))
                    db.execute(
                        "UPDATE files SET size = ?, mtime_ns = ?, format = ?, status = ?,"
                        " reason = ?, content_hash = NULL, width = NULL, height = NULL,"
                        " updated_at = ? WHERE id = ?",
                        (candidate.size, candidate.mtime_ns, candidate.format,
                         "skipped" if reason else "pending", reason, now, previous[0]),
                    )
                    changed += 1
                else:
                    unchanged += 1
            unseen = known.keys() - seen
            under = tuple(path + "/" for path in kept)
            missing = {path: known[path] for path in unseen
                       if not path.startswith(under) and path not in kept}
            unchanged += len(unseen) - len(missing)  # kept under unreadable folders
            moved = self._take_over_moved(db, new, missing)
            for path, candidate, reason in new:
                if path in moved:
                    continue
                db.execute(
                    "INSERT INTO files (id, path, size, mtime_ns, format, status, reason,"
                    f" updated_at) VALUES ({_NEXT_FILE_ID}, ?, ?, ?, ?, ?, ?, ?)",
                    (path, candidate.size, candidate.mtime_ns, candidate.format,
                     "skipped" if reason else "pending", reason, now),
                )
            gone = [row[0] for row in missing.values()]
            db.executemany("DELETE FROM vectors WHERE file_id = ?", [(i,) for i in gone])
            db.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in gone])
            added = len(new) - len(moved)
            if added or changed or gone:
                db.execute("UPDATE models SET version = version + 1")
        return CatalogueChanges(added, changed, len(gone), unchanged + len(moved), rejected,
                                len(moved))

    def _take_over_moved(self, db: sqlite3.Connection,
                         new: list[tuple[str, Candidate, str | None]],
                         missing: dict[str, tuple[Any, ...]]) -> set[str]:
        """Rename the row of each vanished, embedded file that is found again under a new
        path (a ``sort --move`` killed before its catalogue update, a file moved by hand):
        same size and mtime, then the same content hash, read only for those. Each such
        vanished path leaves ``missing``; returns the new paths that took a row over."""
        if is_remote(self.root):  # hashing would fetch every candidate object
            return set()
        by_signature: dict[tuple[int, int], list[str]] = {}
        for path, (_, size, mtime_ns, status, digest) in missing.items():
            if status == "ok" and digest:
                by_signature.setdefault((size, mtime_ns), []).append(path)
        moved: set[str] = set()
        for path, candidate, reason in new:
            olds = by_signature.get((candidate.size, candidate.mtime_ns))
            if reason or not olds:
                continue
            digest = _file_hash(self.root / path)
            old = next((old for old in olds if missing[old][4] == digest), None)
            if old is None:
                continue
            olds.remove(old)
            db.execute("UPDATE files SET path = ? WHERE id = ?", (path, missing.pop(old)[0]))
            moved.add(path)
        return moved

    def follow_moves(self, moves: Sequence[tuple[str | None, str | None]], journal: str
                     ) -> FollowedMoves:
        """Make the catalogue follow files that a sort (or its undo) moved, in one
        transaction: each ``(old, new)`` is a file's catalogue path before and after,
        None where it lies outside the folder.

        * old and new: the row at ``old`` is renamed to ``new``, same id, same embeddings
          (a stale row at ``new`` goes first: the move found that name free on disk);
        * old only: the file left the folder: its row goes, kept under ``journal`` so that
          an undo can bring it back;
        * new only: the file came back: its row is restored from what ``journal`` kept,
          with its embeddings while the model's file still holds them (a compaction since
          drops them: the file is then ``pending``).

        Idempotent: a path with no row to follow (already followed, or never catalogued)
        is left alone, and the next ``index`` settles it from what is on disk.
        """
        if not self.writable:
            raise StoreError("this collection was opened read-only")
        renamed = departed = restored = dropped = 0
        with self._commits, self.transaction() as db:
            for old, new in moves:
                if old is not None and new is not None:
                    found = db.execute("SELECT id FROM files WHERE path = ?", (old,)).fetchone()
                    if found is not None:
                        dropped += _delete_file(db, "path = ?", new)
                        db.execute("UPDATE files SET path = ? WHERE id = ?", (new, found[0]))
                        renamed += 1
                elif old is not None:
                    departed += _depart(db, old, journal)
                elif new is not None:
                    restored += _restore(db, new, journal)
            if departed or restored or dropped:
                db.execute("UPDATE models SET version = version + 1")
        return FollowedMoves(renamed, departed, restored)

    def files(self, status: str | None = None) -> list[FileRecord]:
        where = " WHERE status = ?" if status else ""
        sql = f"SELECT {_FILE_COLUMNS} FROM files{where} ORDER BY id"
        return [FileRecord(*row) for row in self._query(sql, (status,) if status else ())]

    def file(self, file_id: int) -> FileRecord | None:
        row = self._query_one(f"SELECT {_FILE_COLUMNS} FROM files WHERE id = ?", (file_id,))
        return FileRecord(*row) if row else None

    def file_by_path(self, path: str) -> FileRecord | None:
        row = self._query_one(f"SELECT {_FILE_COLUMNS} FROM files WHERE path = ?", (path,))
        return FileRecord(*row) if row else None

    def files_to_embed(self, model: str) -> list[FileRecord]:
        """Files not skipped that have no embedding from ``model`` yet, in id order."""
        rows = self._query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE status != 'skipped' AND id NOT IN"
            " (SELECT file_id FROM vectors WHERE model = ?) ORDER BY id",
            (model,),
        )
        return [FileRecord(*row) for row in rows]

    def status_counts(self) -> dict[str, int]:
        return dict(self._query("SELECT status, COUNT(*) FROM files GROUP BY status"))

    # -- models and embeddings -----------------------------------------------------------
    def add_model(
        self, key: str, spec: str, options: dict[str, Any], identity: dict[str, Any], dim: int
    ) -> ModelRecord:
        file = f"{key}.0.f16"
        (self.directory / "embeddings").mkdir(exist_ok=True)
        (self.directory / "embeddings" / file).write_bytes(b"")
        with self.transaction() as db:
            db.execute(
                "INSERT INTO models (key, spec, options, identity, dim, file, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, spec, json.dumps(options, sort_keys=True),
                 json.dumps(identity, sort_keys=True), dim, file, time.time()),
            )
        return self.model(key)

    def models(self) -> list[ModelRecord]:
        rows = self._query(
            "SELECT key, spec, options, identity, dim, file, rows, version FROM models"
            " ORDER BY created_at"
        )
        return [_model_record(row) for row in rows]

    def model(self, key: str) -> ModelRecord:
        row = self._query_one(
            "SELECT key, spec, options, identity, dim, file, rows, version FROM models"
            " WHERE key = ?", (key,),
        )
        if row is None:
            raise StoreError(f"the collection has no embeddings from model {key!r}")
        return _model_record(row)

    def embeddings(self, key: str) -> np.ndarray:
        """All committed rows of a model (live and dead) as a read-only float16 memmap."""
        model = self.model(key)
        if model.rows == 0:
            return np.zeros((0, model.dim), dtype=np.float16)
        path = self.directory / "embeddings" / model.file
        if not path.is_file() or path.stat().st_size < model.rows * model.dim * 2:
            raise StoreError(f"embeddings file {path} is damaged (shorter than the catalogue "
                             "says): run lookalike index FOLDER to repair the collection")
        return np.memmap(path, dtype=np.float16, mode="r", shape=(model.rows, model.dim))

    def live_rows(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``(file_ids, rows)`` of every current embedding of a model, in file-id order."""
        pairs = self._query(
            "SELECT file_id, row FROM vectors WHERE model = ? ORDER BY file_id", (key,)
        )
        array = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        return array[:, 0].copy(), array[:, 1].copy()

    def files_for_rows(self, key: str, rows: Iterable[int]) -> dict[int, FileRecord]:
        """Map embedding rows -> their file records (rows that are dead are left out)."""
        wanted = sorted({int(row) for row in rows if row >= 0})
        found: dict[int, FileRecord] = {}
        for start in range(0, len(wanted), 900):
            chunk = wanted[start:start + 900]
            marks = ",".join("?" * len(chunk))
            for row, *record in self._query(
                f"SELECT v.row, {_FILE_COLUMNS} FROM vectors v JOIN files ON files.id = v.file_id"
                f" WHERE v.model = ? AND v.row IN ({marks})", (key, *chunk),
            ):
                found[row] = FileRecord(*record)
        return found

    def row_for_file(self, key: str, file_id: int) -> int | None:
        row = self._query_one(
            "SELECT row FROM vectors WHERE model = ? AND file_id = ?", (key, file_id)
        )
        return row[0] if row else None

    def commit_batch(
        self, key: str, embedded: Sequence[EmbeddedFile], vectors: np.ndarray,
        skipped: Sequence[tuple[int, str]] = (),
    ) -> None:
        """Append embeddings and record them, plus skip reasons, atomically.

        The rows are written and fsynced first; only then does the transaction that
        references them (and advances the committed row count) commit.
        """
        if not self.writable:
            raise StoreError("this collection was opened read-only")
        dim = self.model(key).dim
        vectors = np.ascontiguousarray(vectors, dtype=np.float16)
        if vectors.shape != (len(embedded), dim):
            raise ValueError(f"expected {len(embedded)} x {dim} vectors, got {vectors.shape}")
        usable = usable_rows(vectors)
        if not usable.all():  # never commit a vector that would match everything or nothing
            reason = "the model gave no usable embedding (zero or not finite)"
            skipped = [*skipped, *((item.file_id, reason)
                                   for item, ok in zip(embedded, usable) if not ok)]
            embedded = [item for item, ok in zip(embedded, usable) if ok]
            vectors = np.ascontiguousarray(vectors[usable])
        with self._commits:  # one append at a time: rows never share an offset
            self._append(key, embedded, vectors, skipped)

    def _append(self, key: str, embedded: Sequence[EmbeddedFile], vectors: np.ndarray,
                skipped: Sequence[tuple[int, str]]) -> None:
        model = self.model(key)
        if len(embedded):
            with open(self.directory / "embeddings" / model.file, "r+b") as handle:
                handle.seek(model.rows * model.dim * 2)
                handle.write(vectors.tobytes())
                handle.flush()
                os.fsync(handle.fileno())
        now = time.time()
        with self.transaction() as db:
            for offset, item in enumerate(embedded):
                db.execute(
                    "UPDATE files SET status = 'ok', reason = NULL, content_hash = ?, width = ?,"
                    " height = ?, format = ?, updated_at = ? WHERE id = ?",
                    (item.content_hash, item.width, item.height, item.format, now, item.file_id),
                )
                db.execute("INSERT INTO vectors VALUES (?, ?, ?)",
                           (key, item.file_id, model.rows + offset))
            db.executemany(
                "UPDATE files SET status = 'skipped', reason = ?, updated_at = ? WHERE id = ?",
                [(reason, now, file_id) for file_id, reason in skipped],
            )
            db.execute(
                "UPDATE models SET rows = rows + ?, version = version + 1 WHERE key = ?",
                (len(embedded), key),
            )

    def compact(self, key: str) -> bool:
        """Rewrite a model's embeddings without dead rows, when they are at least half.

        The new file gets a new generation name and becomes current in one transaction;
        a crash before that leaves an orphan that the next write-open deletes.
        """
        if not self.writable:
            raise StoreError("this collection was opened read-only")
        with self._commits:
            return self._compact(key)

    def _compact(self, key: str) -> bool:
        model = self.model(key)
        file_ids, rows = self.live_rows(key)
        if model.rows - len(rows) < max(1024, len(rows)):
            return False
        generation = int(model.file.split(".")[-2]) + 1
        new_file = f"{key}.{generation}.f16"
        old = self.embeddings(key)
        with open(self.directory / "embeddings" / new_file, "wb") as handle:
            for start in range(0, len(rows), 65536):
                handle.write(np.ascontiguousarray(old[rows[start:start + 65536]]).tobytes())
            handle.flush()
            os.fsync(handle.fileno())
        del old
        with self.transaction() as db:
            db.execute("DELETE FROM vectors WHERE model = ?", (key,))
            db.executemany("INSERT INTO vectors VALUES (?, ?, ?)",
                           [(key, int(f), i) for i, f in enumerate(file_ids)])
            db.execute("UPDATE models SET file = ?, rows = ?, version = version + 1 WHERE key = ?",
                       (new_file, len(rows), key))
        self.delete_embeddings_file(model.file)
        return True

    def delete_embeddings_file(self, name: str) -> None:
        """Delete ``embeddings/<name>``, if it is there and ``name`` has the form lookalike
        gives its own embeddings files: a catalogue that names any other file is not obeyed."""
        if _EMBEDDINGS_NAME.fullmatch(name):
            (self.directory / "embeddings" / name).unlink(missing_ok=True)

    def disk_usage(self) -> dict[str, int]:
        """Bytes on disk per part of the collection."""
        usage: dict[str, int] = {}
        for part in ("catalogue", "embeddings", "index"):
            paths = (
                self.directory.glob(self.CATALOGUE + "*") if part == "catalogue"
                else (self.directory / part).glob("*")
            )
            usage[part] = sum(path.stat().st_size for path in paths if path.is_file())
        return usage


def _connect(path: Path) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                     timeout=30)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.executescript(_SCHEMA)
    except sqlite3.DatabaseError as error:
        raise CatalogueDamaged(path.parent, error) from None
    return connection


def _delete_file(db: sqlite3.Connection, where: str, value: object) -> int:
    """Remove the file row(s) matching ``where`` and their embeddings; how many."""
    ids = [(file_id,) for (file_id,) in db.execute(f"SELECT id FROM files WHERE {where}",
                                                   (value,))]
    db.executemany("DELETE FROM vectors WHERE file_id = ?", ids)
    db.executemany("DELETE FROM files WHERE id = ?", ids)
    return len(ids)


def _depart(db: sqlite3.Connection, path: str, journal: str) -> int:
    """Remove the row at ``path``, kept in ``departed`` with where its embeddings lie."""
    row = db.execute(f"SELECT {_FILE_COLUMNS} FROM files WHERE path = ?", (path,)).fetchone()
    if row is None:
        return 0
    record = dict(zip(FileRecord.__dataclass_fields__, row))
    record["vectors"] = db.execute(
        "SELECT v.model, m.file, v.row FROM vectors v JOIN models m ON m.key = v.model"
        " WHERE v.file_id = ?", (record["id"],)).fetchall()
    db.execute("INSERT OR REPLACE INTO departed VALUES (?, ?, ?)",
               (journal, path, json.dumps(record)))
    return _delete_file(db, "id = ?", record["id"])


def _restore(db: sqlite3.Connection, path: str, journal: str) -> int:
    """Bring back the row ``journal`` kept for ``path``, unless a row is there already.

    Its id is free (ids are never given to another file) and so are its embedding rows
    while the model's file is the same generation: rows are only appended, and only a
    compaction, which starts a new generation, reuses their places.
    """
    kept = db.execute("SELECT record FROM departed WHERE journal = ? AND path = ?",
                      (journal, path)).fetchone()
    db.execute("DELETE FROM departed WHERE journal = ? AND path = ?", (journal, path))
    if kept is None or db.execute("SELECT 1 FROM files WHERE path = ?", (path,)).fetchone():
        return 0
    record = json.loads(kept[0])
    files = dict(db.execute("SELECT key, file FROM models").fetchall())
    intact = [(model, row) for model, file, row in record["vectors"] if files.get(model) == file]
    status = record["status"] if len(intact) == len(record["vectors"]) else "pending"
    db.execute(
        "INSERT INTO files (id, path, size, mtime_ns, content_hash, width, height, format,"
        " status, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (record["id"], path, record["size"], record["mtime_ns"], record["content_hash"],
         record["width"], record["height"], record["format"], status, record["reason"],
         time.time()))
    db.executemany("INSERT INTO vectors VALUES (?, ?, ?)",
                   [(model, record["id"], row) for model, row in intact])
    return 1


def _file_hash(path: Path) -> str | None:
    """The content hash the pipelines record (:func:`lookalike.decode.stream_hash`), or
    None when the file cannot be read or is no longer a regular file (a FIFO is never
    waited on: :func:`lookalike.decode.open_file`)."""
    from .decode import DecodeError, open_file, stream_hash

    try:
        with open_file(path) as handle:
            return stream_hash(handle)
    except (OSError, DecodeError):
        return None


def _model_record(row: tuple[Any, ...]) -> ModelRecord:
    key, spec, options, identity, dim, file, rows, version = row
    return ModelRecord(key, spec, json.loads(options), json.loads(identity), dim, file, rows,
                       version)


@dataclass(frozen=True)
class Problem:
    """Something wrong with a collection, and the command that puts it right."""

    what: str
    fix: str
    repaired: bool = False
    fatal: bool = False  # nothing else can be checked (the catalogue cannot be read)


# what lookalike itself keeps in a collection directory
_OWN_NAMES = ("embeddings", "index", "transforms", Store.WRITER_LOCK, Store.CATALOGUE)


def _is_own_name(name: str) -> bool:
    return name in _OWN_NAMES or name.startswith(Store.CATALOGUE)


class CatalogueDamaged(StoreError):
    """The SQLite catalogue cannot be read."""

    def __init__(self, directory: Path, error: Exception) -> None:
        super().__init__(
            f"the catalogue of the collection at {directory} is damaged ({error}): run "
            f"lookalike check --db {directory} to see what is left, and lookalike index "
            f"FOLDER --db {directory} --rebuild to start it again (the damaged catalogue is "
            "kept beside it)")


def usable_rows(vectors: np.ndarray) -> np.ndarray:
    """Which rows are embeddings one can search with: finite and of (about) unit length."""
    norms = np.linalg.norm(np.asarray(vectors, dtype=np.float32), axis=1)
    return np.isfinite(norms) & (norms > 0.5) & (norms < 1.5)


class _WriterLock:
    """``directory/writer.lock``, held by this process while any of its stores of that
    collection may write (shared between them, with a thread lock around each commit).
    The file lock dies with its process, ``kill -9`` too."""

    _held: dict[Path, _WriterLock] = {}
    _registry = threading.Lock()

    def __init__(self, directory: Path, handle: Any) -> None:
        self.directory, self.handle, self.users = directory, handle, 0
        self.commits = threading.Lock()

    @classmethod
    def take(cls, directory: Path) -> _WriterLock:
        """This process's lock on ``directory``, or :class:`CollectionBusy` naming the
        process that holds it."""
        with cls._registry:
            held = cls._held.get(directory)
            if held is None:
                held = cls._held[directory] = cls(directory, _flock(directory))
            held.users += 1
            return held

    def release(self) -> None:
        with self._registry:
            self.users -= 1
            if self.users == 0:
                del self._held[self.directory]
                if self.handle is not None:
                    self.handle.close()


def _flock(directory: Path) -> Any:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; SQLite still serialises commits
        return None
    handle = open(directory / Store.WRITER_LOCK, "a+")  # noqa: SIM115 (held until release)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise CollectionBusy(
            f"the collection at {directory} is being changed by {holder}: wait for it to "
            "finish, then run this again") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"PID {os.getpid()} ({' '.join(_command_line())})")
    handle.flush()
    return handle


def _command_line() -> list[str]:
    return [Path(sys.argv[0]).name, *sys.argv[1:3]] if sys.argv else ["python"]

