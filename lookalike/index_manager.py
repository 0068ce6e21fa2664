"""The vector index's lifecycle, behind :meth:`lookalike.Collection.vector_index`.

Which kind (``auto`` by size and memory), reused from disk or updated in place when the
embeddings change, rebuilt when it cannot be, on disk (IVF-PQ under a memory budget),
saved under a file lock with the temporary files of killed saves cleaned up, and what it
was built from recorded in the store (:class:`lookalike.store.IndexState`).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .index import (
    HNSWIndex,
    IVFPQIndex,
    VectorIndex,
    build_index,
    choose_kind,
    default_ef_search,
    index_memory,
    ivfpq_trainable,
    load_index,
)
from .index_disk import BUCKET_BYTES, write_ivfpq
from .pipeline import Progress
from .store import IndexState, ModelRecord, Problem, Store

log = logging.getLogger(__name__)
Matrix = Callable[[], np.ndarray]  # the rows an index searches, computed when first needed


class IndexManager:
    """One collection's vector index: kept in memory while the embeddings it was built
    from are current, else reloaded, updated or rebuilt (and saved) on the next ``get``.

    ``matrix()``, given to each call: the rows the index searches (the store's
    embeddings, or their learned projection), by store row; asked for only when needed.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._index: VectorIndex | None = None
        self._version: tuple[int, str, str | None] | None = None
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Drop the index held in memory (a new model or transform): rebuilt on next use."""
        with self._lock:
            self._index = None

    def get(self, record: ModelRecord, transform: str | None, matrix: Matrix,
            progress: Progress | None = None) -> VectorIndex:
        """The index of ``record``'s live rows (projected by the ``transform`` stamped so,
        or not), synced with the catalogue; see :meth:`lookalike.Collection.vector_index`."""
        with self._lock:
            version = (record.version, record.file, transform)
            if self._index is not None and self._version == version:
                return self._index
            kind_setting = self.store.index_kind()
            _, rows = self.store.live_rows(record.key)
            budget = self.store.max_memory()
            kind = (choose_kind(len(rows), record.dim, budget)
                    if kind_setting == "auto" else kind_setting)
            path = self._path(record, kind)
            state = self.store.index_state(record.key)
            index = None
            # a flat stand-in for an IVF-PQ too small to train is rebuilt once it can be
            outgrown = (state is None or state.kind != kind) and kind == "ivfpq" and \
                ivfpq_trainable(len(rows))
            reusable = (state is not None and state.requested == kind
                        and state.file == record.file and state.transform == transform
                        and not outgrown)
            # Under a memory budget, or when its codes would take over an eighth of this
            # machine's RAM, an IVF-PQ index is built, changed and searched on disk: its
            # codes never sit in RAM (index_disk), its lists stay in the page cache.
            mapped = kind == "ivfpq" and (budget is not None or index_memory(
                "ivfpq", len(rows), record.dim) > physical_memory() // 8)
            if reusable and path.exists():
                index = self._load_saved(path, mapped)
            if index is not None:
                _attach_rerank(index, matrix)
                if state is None or state.version != record.version:
                    index = self._update(index, path, record, kind, transform, rows, matrix,
                                         progress)
            if index is None:
                index = self._build(path, record, kind, transform, rows, mapped, matrix,
                                    progress)
            self._index, self._version = index, version
            return index

    def check(self, record: ModelRecord, transform: str | None, matrix: Matrix,
              repair: bool = False) -> list[Problem]:
        """Whether the saved index can be read; ``repair``: rebuild (and save) it if not."""
        state = self.store.index_state(record.key)
        if state is None:
            return []
        path = self._path(record, state.kind)
        if not path.exists():
            return []
        try:
            load_index(path, mmap=True)
        except Exception as error:  # what get() would rebuild from
            if repair:
                self.get(record, transform, matrix)  # rebuilds and saves it
            return [Problem(f"the vector index is damaged ({error})",
                            "lookalike check --repair (or any search rebuilds it)",
                            repaired=repair)]
        return []

    def _path(self, record: ModelRecord, kind: str | None) -> Path:
        return self.store.directory / "index" / f"{record.key}.{kind}"

    def _load_saved(self, path: Path, mapped: bool) -> VectorIndex | None:
        """The index saved at ``path``; None (to be rebuilt, with a warning) when it is
        damaged: the index is derived data, the store holds everything to remake it."""
        try:
            with index_files_lock(path.parent, shared=True):
                return load_index(path, mmap=mapped)
        except Exception as error:  # faiss and annoy raise RuntimeError, a sidecar ValueError
            log.warning("the saved index could not be read (%s): rebuilding it", error)
            return None

    def _build(self, path: Path, record: ModelRecord, kind: str, transform: str | None,
               rows: np.ndarray, mapped: bool, matrix: Matrix,
               progress: Progress | None) -> VectorIndex:
        if mapped and ivfpq_trainable(len(rows)):
            trained = IVFPQIndex.train(live(matrix(), rows),
                                       rerank_source="external")
            self._save(path, record, kind, "ivfpq", transform, lambda: write_ivfpq(
                path, trained, matrix(), rows,
                bucket_bytes=self._bucket_bytes(), progress=progress))
            return _open_mapped(path, matrix)
        params = {"rerank_source": "external"} if kind == "ivfpq" else {}
        index = build_index(kind, live(matrix(), rows), rows, progress=progress, **params)
        _attach_rerank(index, matrix)
        self._save(path, record, kind, index.kind, transform, lambda: index.save(path))
        return index

    def _update(self, index: VectorIndex, path: Path, record: ModelRecord, kind: str,
                transform: str | None, rows: np.ndarray, current: Matrix,
                progress: Progress | None) -> VectorIndex | None:
        """``index`` brought to hold ``rows``; None when it must be rebuilt."""
        matrix = current()
        if isinstance(index, IVFPQIndex) and index.memory_mapped:
            def rewrite() -> None:  # from the file as it is under the lock
                base = load_index(path, mmap=True)
                assert isinstance(base, IVFPQIndex)
                held = base.keys()
                add, remove = np.setdiff1d(rows, held), np.setdiff1d(held, rows)
                if len(add) or len(remove):
                    write_ivfpq(path, base, matrix, add, remove=remove,
                                bucket_bytes=self._bucket_bytes(), progress=progress)

            self._save(path, record, kind, "ivfpq", transform, rewrite)
            return _open_mapped(path, current)
        updated = _sync(index, matrix, rows, progress)
        if isinstance(updated, HNSWIndex):  # grown: keep the recall up
            updated.ef_search = max(updated.ef_search, default_ef_search(len(updated)))
        if updated is not None:
            self._save(path, record, kind, updated.kind, transform,
                       lambda: updated.save(path))
        return updated

    def _bucket_bytes(self) -> int:
        """Entries an on-disk IVF-PQ build sorts in RAM at a time (held twice while
        sorting): an eighth of the budget, between 1 MiB and ``index_disk.BUCKET_BYTES``."""
        budget = self.store.max_memory() or BUCKET_BYTES * 8
        return int(np.clip(budget // 8, 1 << 20, BUCKET_BYTES))

    def _save(self, path: Path, record: ModelRecord, requested: str, saved: str,
              transform: str | None, write: Callable[[], object]) -> None:
        """Run ``write()``, which saves a ``saved`` index at ``path``, under the index
        files' lock, then record what it was built from. Temporary files of ``path`` that
        a killed save left behind (as large as the index) are removed first: under the
        lock, no save is running."""
        path.parent.mkdir(exist_ok=True)
        with index_files_lock(path.parent, shared=False):
            for leftover in path.parent.glob(f".{path.name}.*"):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
            write()
        self.store.set_index_state(record.key, IndexState(requested, saved, record.file,
                                                          record.version, transform))


def _open_mapped(path: Path, matrix: Matrix) -> VectorIndex:
    with index_files_lock(path.parent, shared=True):
        index = load_index(path, mmap=True)
    _attach_rerank(index, matrix)
    return index


def _attach_rerank(index: VectorIndex, matrix: Matrix) -> None:
    """IVF-PQ re-ranks from the store's memory-mapped embeddings, not a copy in RAM."""
    if isinstance(index, IVFPQIndex) and index.params["rerank_source"] == "external":
        index.attach(matrix())


def live(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The ``rows`` of ``matrix``: the matrix itself when every row is live (the usual
    case after a compaction), so a memmap is never gathered into one big copy."""
    return matrix if np.array_equal(rows, np.arange(len(matrix))) else matrix[rows]


def _sync(index: VectorIndex, matrix: np.ndarray, rows: np.ndarray,
          progress: Progress | None = None) -> VectorIndex | None:
    """Bring a loaded index to hold exactly ``rows``; None when it must be rebuilt."""
    held = index.keys()
    to_remove = np.setdiff1d(held, rows)
    to_add = np.setdiff1d(rows, held)
    if (len(to_remove) and not index.supports_remove) or (len(to_add) and not index.supports_add):
        return None
    if len(to_remove):
        index.remove(to_remove)
    if len(to_add):
        index.add(np.asarray(matrix[to_add], dtype=np.float32), to_add, progress=progress)
    return index


def physical_memory() -> int:
    """Bytes of RAM on this machine (a large number where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return 1 << 62


@contextmanager
def index_files_lock(directory: Path, *, shared: bool) -> Iterator[None]:
    """Hold ``directory/.lock`` while an index and its sidecar are read or replaced.

    A save is two atomic renames (data file, then sidecar). Without the lock two processes
    saving at once (an ``index`` run and a server) can leave one's data with the other's
    sidecar, and a reader between the renames sees a mismatched pair.
    """
    try:
        import fcntl
    except ImportError:  # Windows: saves are rare and the mismatch is reported on load
        yield
        return
    directory.mkdir(exist_ok=True)
    with open(directory / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
