"""A collection's learned transform (``lookalike learn --db``), behind
:attr:`lookalike.Collection.transform`.

The fitted :class:`~lookalike.embed.transform.TransformChain` is saved as
``transforms/<model>`` and stamped in the store (:class:`~lookalike.store.TransformState`);
it projects every stored embedding and every query. The projected embeddings are computed
once per embeddings version and kept in memory.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

from .embed.transform import TransformChain
from .index_manager import live
from .records import ModelMismatch
from .store import ModelRecord, Store, TransformState

TRANSFORMS_DIRNAME = "transforms"
_BLOCK_ROWS = 65_536  # rows projected at a time


class Projection:
    """One collection's learned transform and its projected embeddings, reloaded when the
    stamp recorded in the store changes. Safe to share between threads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._chain: tuple[str, TransformChain] | None = None
        self._projected: tuple[tuple[int, str, str], np.ndarray] | None = None
        self._lock = threading.Lock()

    def stamp(self, record: ModelRecord) -> str | None:
        """The stamp of ``record``'s transform (a digest of its file), or None."""
        state = self.store.transform_state(record.key)
        return None if state is None else state.stamp

    def chain(self, record: ModelRecord) -> TransformChain | None:
        """``record``'s fitted transform, or None."""
        stamp = self.stamp(record)
        if stamp is None:
            return None
        with self._lock:
            if self._chain is None or self._chain[0] != stamp:
                path = self.store.directory / TRANSFORMS_DIRNAME / record.key
                self._chain = (stamp, TransformChain.load(path))
            return self._chain[1]

    def set(self, record: ModelRecord, chain: TransformChain | None) -> None:
        """Project ``record``'s embeddings and queries through ``chain`` (None: stop)."""
        if chain is None:
            self.store.set_transform_state(record.key, None)
        else:
            fitted_for = chain.info.get("input_dim")
            if fitted_for not in (None, record.dim):
                raise ModelMismatch(
                    f"the transform was fitted on {fitted_for}-d embeddings "
                    f"({chain.info.get('model')}); this collection's model "
                    f"{record.spec!r} gives {record.dim}-d ones"
                )
            saved = chain.save(self.store.directory / TRANSFORMS_DIRNAME / record.key)
            stamp = hashlib.sha1(saved.read_bytes()).hexdigest()[:12]
            self.store.set_transform_state(record.key, TransformState(stamp, chain.description))
        with self._lock:
            self._chain = self._projected = None

    def project(self, record: ModelRecord, vectors: np.ndarray) -> np.ndarray:
        """Backbone embeddings [n, dim] -> the searched space (as given without a transform)."""
        chain = self.chain(record)
        vectors = np.asarray(vectors, dtype=np.float32)
        return vectors if chain is None else chain.transform(vectors)

    def matrix(self, record: ModelRecord) -> np.ndarray:
        """The store's embeddings of ``record`` (memory-mapped), or their projection when a
        transform is set; rows are store rows, live or not."""
        matrix = self.store.embeddings(record.key)
        stamp = self.stamp(record)
        if stamp is None:
            return matrix
        version = (record.version, record.file, stamp)
        projected = self._projected
        if projected is None or projected[0] != version:
            chunks = [self.project(record, matrix[start:start + _BLOCK_ROWS])
                      for start in range(0, len(matrix), _BLOCK_ROWS)]
            projected = (version, np.concatenate(chunks) if chunks else
                         self.project(record, np.zeros((0, record.dim), np.float32)))
            with self._lock:
                self._projected = projected
        return projected[1]

    def rows(self, record: ModelRecord, rows: np.ndarray, *, raw: bool = False) -> np.ndarray:
        """The embeddings of store ``rows`` (``raw``: never projected, else as searched)."""
        return live(self.store.embeddings(record.key) if raw else self.matrix(record), rows)
