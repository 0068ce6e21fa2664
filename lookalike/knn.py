"""The k-nearest-neighbour graph of a whole collection: batched queries, never N x N.

Every analysis (duplicates, groups, clusters, outliers) reads this graph instead of an
all-pairs matrix, so memory grows as n * k, not n^2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .index import VectorIndex, build_index

BATCH = 4096


@dataclass(frozen=True)
class KnnGraph:
    """``neighbours[i]``: positions (rows of the embedding matrix) of the ``k`` nearest
    other items of item ``i``, by descending cosine ``scores[i]``; -1 where missing."""

    neighbours: np.ndarray  # int64 [n, k]
    scores: np.ndarray  # float32 [n, k]

    @property
    def k(self) -> int:
        return int(self.neighbours.shape[1])

    def __len__(self) -> int:
        return int(self.neighbours.shape[0])

    def pairs(self, min_score: float = -1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unique undirected edges ``(i, j, score)`` with i < j and score >= ``min_score``."""
        rows = np.repeat(np.arange(len(self)), self.k)
        cols = self.neighbours.ravel()
        scores = self.scores.ravel()
        keep = (cols >= 0) & (scores >= min_score)
        low = np.minimum(rows[keep], cols[keep])
        high = np.maximum(rows[keep], cols[keep])
        scores = scores[keep]
        order = np.lexsort((-scores, high, low))
        low, high, scores = low[order], high[order], scores[order]
        first = np.ones(len(low), dtype=bool)
        first[1:] = (low[1:] != low[:-1]) | (high[1:] != high[:-1])
        return low[first], high[first], scores[first]

    def is_mutual(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """For each edge, whether each end is in the other's neighbour list."""
        forward = (self.neighbours[i] == j[:, None]).any(axis=1)
        backward = (self.neighbours[j] == i[:, None]).any(axis=1)
        return forward & backward


def knn_graph(
    vectors: np.ndarray,
    k: int,
    *,
    index: VectorIndex | None = None,
    keys: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> KnnGraph:
    """The ``k`` nearest neighbours of every row of ``vectors`` (itself excluded).

    ``index``: an existing index holding these vectors under ``keys`` (e.g. the
    collection's, keyed by store row); without one, an index is built with the kind
    ``choose_kind`` picks for this size (exact below 50k vectors).
    """
    n = len(vectors)
    if keys is None:
        keys = np.arange(n, dtype=np.int64)
    if index is None:
        index = build_index("auto", vectors, keys)
    position = _position_lookup(keys)
    k_query = min(k + 1, max(len(index), 1))
    neighbours = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    for start in range(0, n, BATCH):
        stop = min(start + BATCH, n)
        found_scores, found_keys = index.search(
            np.asarray(vectors[start:stop], dtype=np.float32), k_query
        )
        found = np.where(found_keys >= 0, position[np.clip(found_keys, 0, None)], -1)
        own = np.arange(start, stop)[:, None]
        found_scores = np.where(found == own, -np.inf, found_scores)
        found = np.where(found == own, -1, found)
        # Drop the self match (wherever it landed) and keep the best k of the rest.
        order = np.argsort(-found_scores, axis=1, kind="stable")[:, :k]
        taken = min(k, order.shape[1])
        neighbours[start:stop, :taken] = np.take_along_axis(found, order, axis=1)
        scores[start:stop, :taken] = np.take_along_axis(found_scores, order, axis=1)
        if progress:
            progress(stop, n)
    return KnnGraph(neighbours, scores)


def _position_lookup(keys: np.ndarray) -> np.ndarray:
    lookup = np.full(int(keys.max(initial=-1)) + 1, -1, dtype=np.int64)
    lookup[keys] = np.arange(len(keys))
    return lookup
