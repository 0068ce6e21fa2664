"""Threshold groups: "same place, same moment" sets of images, without single-linkage chains.

The connected components of the k-NN graph cut at a cosine ``threshold`` are what the seeds
called groups, but a component is a single-linkage cluster: a slow pan, a morph or a run of
look-alikes links a ~ b ~ c ~ d although a and d share nothing. Two guards stop that:

1. **Mutual edges only** (``mutual=True``): an edge survives only when each end is among the
   other's k nearest neighbours, so a hub close to many items cannot glue them together.
2. **Medoid cohesion**: every member of a final group is within ``threshold`` of the
   group's medoid. A component that violates it is split in two by spherical 2-means seeded
   at its medoid and its least similar member, each side is cut back into its connected
   pieces (edges across the split are dropped) and the pieces are checked again, until every
   group passes. Groups are thus graph-connected *and* compact.

Everything is O(n k + n dim) per round: no member x member matrices, even for a component
of a million items (the medoid is found through the group sum, see ``_group_stats``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..knn import KnnGraph

# Rows gathered from ``vectors`` at a time (it may be a float16 memmap of the store).
_CHUNK_ROWS = 65_536
# 2-means iterations when splitting a component; it converges in a handful.
_SPLIT_ITERATIONS = 10


@dataclass(frozen=True)
class Group:
    """A set of look-alike items.

    ``members``: positions (rows of the embedding matrix), medoid first, then by descending
    similarity to the medoid. ``medoid``: the member with the largest total cosine
    similarity to the others. ``mean_similarity``: mean pairwise cosine over the members.
    """

    members: np.ndarray  # int64 [size]
    medoid: int
    size: int
    mean_similarity: float


def threshold_groups(
    vectors: np.ndarray,
    graph: KnnGraph,
    threshold: float,
    *,
    mutual: bool = True,
    medoid_threshold: float | None = None,
    min_size: int = 2,
) -> list[Group]:
    """Groups of items linked by k-NN edges of cosine >= ``threshold``, chain-free.

    ``vectors``: the L2-normalised embeddings [n, dim] the graph was built from (graph
    positions are its rows). ``mutual``: keep only mutual k-NN edges. ``medoid_threshold``
    (default ``threshold``): the least cosine any member may have to its group's medoid;
    components that violate it are split (see the module docstring). Groups smaller than
    ``min_size`` (by default singletons) are left out. Sorted by descending size, then by
    medoid position.
    """
    n = len(graph)
    if len(vectors) != n:
        raise ValueError(f"{len(vectors)} vectors but the graph has {n} items")
    if min_size < 1:
        raise ValueError(f"min_size must be at least 1, not {min_size}")
    cohesion = threshold if medoid_threshold is None else medoid_threshold
    low, high, _ = graph.pairs(threshold)
    if mutual and len(low):
        keep = graph.is_mutual(low, high)
        low, high = low[keep], high[keep]
    labels = _components(n, low, high)
    while True:
        members, starts = _grouped(labels, min_size=2)
        stats = _group_stats(vectors, members, starts)
        bad = np.flatnonzero(stats.min_medoid_similarity < cohesion)
        if not len(bad):
            break
        labels = labels.copy()
        next_label = int(labels.max()) + 1
        for group in bad:
            part = members[starts[group] : starts[group + 1]]
            block = _rows(vectors, part)
            second = _bisect(block, int(stats.medoid_index[group]), cohesion)
            labels[part[second]] = next_label
            next_label += 1
        crossing = labels[low] != labels[high]
        low, high = low[~crossing], high[~crossing]
        labels = _components(n, low, high)
    return _build_groups(vectors, labels, min_size)


@dataclass(frozen=True)
class _GroupStats:
    medoid_index: np.ndarray  # int64 [groups]: index of the medoid within the group
    min_medoid_similarity: np.ndarray  # float32 [groups]
    similarity_to_medoid: np.ndarray  # float32 [members], in ``members`` order
    sums: np.ndarray  # float32 [groups, dim]: the sum of the members' vectors
    squared_norms: np.ndarray  # float64 [groups]: the sum of the members' squared norms


def _components(n: int, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` nodes under the undirected edges."""
    ones = np.ones(len(low), dtype=np.int8)
    adjacency = coo_matrix((ones, (low, high)), shape=(n, n)).tocsr()
    _, labels = connected_components(adjacency, directed=False)
    return labels.astype(np.int64)


def _grouped(labels: np.ndarray, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Members of every label with at least ``min_size`` items, concatenated label by
    label (ascending positions within each), and the start offsets (length groups + 1)."""
    counts = np.bincount(labels)
    positions = np.flatnonzero(counts[labels] >= min_size)
    members = positions[np.argsort(labels[positions], kind="stable")]
    sizes = counts[counts >= min_size]
    starts = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    return members.astype(np.int64), starts


def _rows(vectors: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``vectors[positions]`` as float32 (``vectors`` may be a float16 memmap)."""
    return np.asarray(vectors[positions], dtype=np.float32)


def _chunks(count: int) -> list[slice]:
    return [slice(start, start + _CHUNK_ROWS) for start in range(0, count, _CHUNK_ROWS)]


def _group_stats(vectors: np.ndarray, members: np.ndarray, starts: np.ndarray) -> _GroupStats:
    """Medoid and cohesion of every group, in O(members x dim).

    The total cosine similarity of member i to its group is ``v_i . s`` where ``s`` is the
    sum of the group's vectors, so the exact medoid (largest total similarity) is the
    member with the largest dot product with ``s``: no pairwise matrix is needed.
    """
    groups = len(starts) - 1
    group_of = np.repeat(np.arange(groups), np.diff(starts))
    sums = np.zeros((groups, vectors.shape[1]), dtype=np.float32)
    squared_norms = np.zeros(groups, dtype=np.float64)
    toward_sum = np.empty(len(members), dtype=np.float32)
    # Members are sorted by group, so each chunk holds runs of whole (or cut) groups.
    for chunk in _chunks(len(members)):
        block, owner = _rows(vectors, members[chunk]), group_of[chunk]
        run_starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        sums[owner[run_starts]] += np.add.reduceat(block, run_starts, axis=0)
        norms = np.einsum("ij,ij->i", block, block, dtype=np.float64)
        squared_norms[owner[run_starts]] += np.add.reduceat(norms, run_starts)
    for chunk in _chunks(len(members)):
        block = _rows(vectors, members[chunk])
        toward_sum[chunk] = np.einsum("ij,ij->i", block, sums[group_of[chunk]])
    medoid_index = np.zeros(groups, dtype=np.int64)
    if groups:
        order = np.lexsort((-toward_sum, group_of))
        medoid_index = order[starts[:-1]] - starts[:-1]
    medoids = _rows(vectors, members[starts[:-1] + medoid_index])
    similarity = np.empty(len(members), dtype=np.float32)
    for chunk in _chunks(len(members)):
        block = _rows(vectors, members[chunk])
        similarity[chunk] = np.einsum("ij,ij->i", block, medoids[group_of[chunk]])
    lowest = np.zeros(0, dtype=np.float32)
    if groups:
        lowest = np.minimum.reduceat(similarity, starts[:-1])
    return _GroupStats(medoid_index, lowest, similarity, sums, squared_norms)


def _bisect(block: np.ndarray, medoid: int, cohesion: float) -> np.ndarray:
    """Boolean mask of the rows of ``block`` (one failing component) that form the second
    half of a spherical 2-means split seeded at the medoid and its least similar member."""
    to_medoid = block @ block[medoid]
    centres = block[[medoid, int(np.argmin(to_medoid))]]
    second = np.zeros(len(block), dtype=bool)
    for _ in range(_SPLIT_ITERATIONS):
        similarity = block @ centres.T
        assigned = similarity[:, 1] > similarity[:, 0]
        if not assigned.any() or assigned.all() or np.array_equal(assigned, second):
            break
        second = assigned
        for side, mask in enumerate((~second, second)):
            centre = block[mask].sum(axis=0)
            centres[side] = centre / max(float(np.linalg.norm(centre)), 1e-12)
    if not second.any() or second.all():
        # Degenerate split (e.g. near-identical members): peel off those too far from the
        # medoid; there is at least one, or the group would have passed.
        second = to_medoid < cohesion
        if not second.any() or second.all():
            second = to_medoid <= to_medoid.min()
    return second


def _build_groups(vectors: np.ndarray, labels: np.ndarray, min_size: int) -> list[Group]:
    members, starts = _grouped(labels, min_size=min_size)
    stats = _group_stats(vectors, members, starts)
    sizes = np.diff(starts)
    # Mean pairwise cosine from the sums: sum_{i != j} v_i . v_j = |s|^2 - sum_i |v_i|^2.
    pairwise = np.einsum("ij,ij->i", stats.sums, stats.sums, dtype=np.float64)
    pairs = sizes * (sizes - 1.0)
    mean = np.divide(
        pairwise - stats.squared_norms, pairs, out=np.ones(len(sizes)), where=pairs > 0
    )
    medoids = members[starts[:-1] + stats.medoid_index]
    groups = []
    for g in np.lexsort((medoids, -sizes)):
        part = members[starts[g] : starts[g + 1]]
        similarity = stats.similarity_to_medoid[starts[g] : starts[g + 1]]
        # Medoid first, then by descending similarity to it; ties by position.
        order = np.lexsort((part, -similarity, part != medoids[g]))
        groups.append(Group(part[order], int(medoids[g]), int(sizes[g]), float(mean[g])))
    return groups
