"""The k-nearest-neighbour graph of a whole collection: blocks of exact products, never
N x N.

Every analysis (duplicates, groups, clusters, outliers) reads this graph instead of an
all-pairs matrix, so memory grows as n * k, not n^2. Below ``CELL_MIN`` items the graph is
exact (a flat index, queried in batches); from there on :func:`cell_knn_graph` cuts the
items into cells and searches each cell exactly against its neighbouring cells.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .faiss_util import faiss_gpus, sample_rows
from .index import VectorIndex, build_index

BATCH = 4096
PAIRS_BLOCK = 1 << 20  # graph rows per block when listing edges
# From here on the cell builder: at 100k x 384 it takes 3.4 s against 48 s for exact
# batched search, with recall@10 0.989; at 1M 84 s against 456 s for HNSW (recall 1.000
# against 0.987). Figures: BENCHMARKS.md, "Analyses at scale".
CELL_MIN = 50_000


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
        """Unique undirected edges ``(i, j, score)`` with i < j and score >= ``min_score``.

        Read in blocks of rows, so a graph on disk (a memmap) is never loaded whole: memory
        is that of the edges kept.
        """
        lows, highs, kept = [], [], []
        for start in range(0, len(self), PAIRS_BLOCK):
            cols = np.asarray(self.neighbours[start:start + PAIRS_BLOCK]).ravel()
            scores = np.asarray(self.scores[start:start + PAIRS_BLOCK]).ravel()
            rows = np.repeat(np.arange(start, start + len(cols) // max(self.k, 1)), self.k)
            keep = (cols >= 0) & (scores >= min_score)
            lows.append(np.minimum(rows[keep], cols[keep]))
            highs.append(np.maximum(rows[keep], cols[keep]))
            kept.append(scores[keep])
        if not lows:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy(), np.zeros(0, dtype=np.float32)
        low, high, scores = np.concatenate(lows), np.concatenate(highs), np.concatenate(kept)
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
    out: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> KnnGraph:
    """The ``k`` nearest neighbours of every row of ``vectors`` (itself excluded).

    ``index``: an existing index holding these vectors under ``keys`` to query; without
    one, the graph is exact below ``CELL_MIN`` items and built by :func:`cell_knn_graph`
    from there on. ``out``: a folder to build the graph in, as memory-mapped
    ``neighbours.npy`` and ``scores.npy`` (12 bytes per neighbour on disk, not in RAM).
    """
    n = len(vectors)
    if keys is None:
        keys = np.arange(n, dtype=np.int64)
    if index is None:
        if n >= CELL_MIN:
            return cell_knn_graph(vectors, k, out=out, progress=progress)
        index = build_index("flat", vectors, keys)
    position = _position_lookup(keys)
    k_query = min(k + 1, max(len(index), 1))
    neighbours, scores = _empty_graph(n, k, out)
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
        neighbours[start:stop] = _padded(np.take_along_axis(found, order, axis=1), k, -1)
        scores[start:stop] = _padded(np.take_along_axis(found_scores, order, axis=1), k,
                                     -np.inf)
        if progress:
            progress(stop, n)
    return KnnGraph(neighbours, scores)


def cell_knn_graph(
    vectors: np.ndarray,
    k: int,
    *,
    nlist: int | None = None,
    probe: int = 4,
    seed: int = 0,
    out: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> KnnGraph:
    """The k-NN graph of all ``vectors`` by blocks of exact matrix products (BLAS).

    The rows are cut into ``nlist`` spherical k-means cells (default 2 sqrt(n)). Every
    item is held in its two nearest cells ("spill"), and the items whose nearest cell is
    c are searched exactly, in one ``faiss.knn`` call, against everything held in the
    ``probe`` cells nearest to c's centroid. Compared with one IVF search per item this
    reads each candidate block once per cell instead of once per query (memory-bound ->
    BLAS-bound: 2.2x faster than IVF-flat, 5.4x than HNSW at 1M), and the spill catches
    pairs split by a cell border (a near-duplicate pair is found as long as one end's two
    cells include a probed one).
    """
    n, dim = vectors.shape
    nlist = nlist or max(1, min(int(2 * math.sqrt(n)), n // 39))
    coarse = faiss.Kmeans(
        dim, nlist, niter=10, spherical=True, seed=seed, max_points_per_centroid=64,
        **({"gpu": True} if faiss_gpus() else {}),
    )
    coarse.train(sample_rows(vectors, 64 * nlist, seed))
    centroids = faiss.IndexFlatIP(dim)
    centroids.add(coarse.centroids)
    cells = np.empty((n, min(2, nlist)), dtype=np.int32)
    for start in range(0, n, BATCH):
        block = np.ascontiguousarray(vectors[start : start + BATCH], dtype=np.float32)
        cells[start : start + len(block)] = centroids.search(block, cells.shape[1])[1]
    nearest_cells = centroids.search(coarse.centroids, min(probe, nlist))[1]
    queries, query_starts = _by_cell(cells[:, 0], nlist)
    held, held_starts = _by_cell(cells.ravel(), nlist)
    held //= cells.shape[1]  # flat index in ``cells`` -> item position
    del cells
    neighbours, scores = _empty_graph(n, k, out)
    done = 0
    for cell in range(nlist):
        rows = queries[query_starts[cell] : query_starts[cell + 1]]
        if not len(rows):
            continue
        parts = [held[held_starts[c] : held_starts[c + 1]] for c in nearest_cells[cell]]
        candidates = np.unique(np.concatenate(parts))
        found_scores, found = _exact_knn(
            np.ascontiguousarray(vectors[rows], dtype=np.float32),
            np.ascontiguousarray(vectors[candidates], dtype=np.float32),
            min(k + 1, len(candidates)),
        )
        found = np.where(found >= 0, candidates[np.clip(found, 0, None)], -1)
        own = found == rows[:, None]
        found_scores = np.where(own, -np.inf, found_scores)
        order = np.argsort(-found_scores, axis=1, kind="stable")[:, :k]
        neighbours[rows] = _padded(np.take_along_axis(np.where(own, -1, found), order, 1), k,
                                   -1)
        scores[rows] = _padded(np.take_along_axis(found_scores, order, 1), k, -np.inf)
        done += len(rows)
        if progress:
            progress(done, n)
    return KnnGraph(neighbours, scores)


def _empty_graph(n: int, k: int, out: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour ids and scores to fill, every row exactly once (with :func:`_padded`): in
    RAM, or as .npy memmaps in ``out`` (sparse files until written, so each page of the
    graph is written once)."""
    if out is None:
        return np.empty((n, k), dtype=np.int64), np.empty((n, k), dtype=np.float32)
    out.mkdir(parents=True, exist_ok=True)
    neighbours = np.lib.format.open_memmap(out / "neighbours.npy", mode="w+",
                                           dtype=np.int64, shape=(n, k))
    scores = np.lib.format.open_memmap(out / "scores.npy", mode="w+", dtype=np.float32,
                                       shape=(n, k))
    return neighbours, scores


def _padded(found: np.ndarray, k: int, missing: float) -> np.ndarray:
    """``found`` [rows, <= k] widened to k columns with ``missing`` (-1 or -inf)."""
    if found.shape[1] == k:
        return found
    padded = np.full((len(found), k), missing, dtype=found.dtype)
    padded[:, :found.shape[1]] = found
    return padded


def _by_cell(cell: np.ndarray, nlist: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``cell`` grouped by cell, and the start offset of every cell."""
    order = np.argsort(cell, kind="stable")
    return order, np.searchsorted(cell[order], np.arange(nlist + 1))


def _exact_knn(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Inner-product top ``k`` of every query in ``base``: one matrix product, on a GPU
    when FAISS has one."""
    if faiss_gpus():
        return faiss.knn_gpu(_gpu_resources(), queries, base, k,
                             metric=faiss.METRIC_INNER_PRODUCT)
    return faiss.knn(queries, base, k, metric=faiss.METRIC_INNER_PRODUCT)


@functools.cache
def _gpu_resources() -> Any:
    """FAISS's GPU scratch memory, made once and shared by every graph block."""
    return faiss.StandardGpuResources()


def _position_lookup(keys: np.ndarray) -> np.ndarray:
    lookup = np.full(int(keys.max(initial=-1)) + 1, -1, dtype=np.int64)
    lookup[keys] = np.arange(len(keys))
    return lookup
