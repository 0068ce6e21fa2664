"""Outliers: items unlike their surroundings, scored from the k-NN graph alone (O(n k)).

The default score is the Local Outlier Factor (Breunig et al. 2000) over cosine distance
``1 - cos``: an item's mean *reachability distance* to its k neighbours divided by the same
quantity averaged over those neighbours. Normalising by the neighbours' own spread is what
makes it *local*: an item at the edge of a loose cluster of landscapes scores ~1 like its
neighbours, while a screenshot among tight product shots scores far above 1, although their
raw distances may be alike. ``method="distance"`` gives the plain global score
``1 - mean cosine to the k neighbours`` instead.
"""

from __future__ import annotations

import math

import numpy as np

from ..knn import KnnGraph

# Floor on distances: exact duplicates (distance 0) would make a density infinite.
_EPSILON = 1e-6


def outlier_scores(graph: KnnGraph, *, k: int | None = None, method: str = "lof") -> np.ndarray:
    """Per item outlier score (float32 [n]), higher = more of an outlier.

    ``k``: use the first ``k`` neighbours of the graph (default: all). ``method``: ``"lof"``
    (scores ~1 inside clusters, > 1.5 clearly apart) or ``"distance"`` (in [0, 2]). Items
    with no neighbour at all get +inf.
    """
    if method not in ("lof", "distance"):
        raise ValueError(f"method must be 'lof' or 'distance', not {method!r}")
    k = graph.k if k is None else k
    if not 1 <= k <= graph.k:
        raise ValueError(f"k must be between 1 and the graph's k ({graph.k}), not {k}")
    neighbours = graph.neighbours[:, :k]
    found = neighbours >= 0
    distance = np.where(found, 1.0 - graph.scores[:, :k], np.nan).astype(np.float32)
    distance = np.maximum(distance, _EPSILON)  # NaN (missing) stays NaN
    count = found.sum(axis=1)
    lonely = count == 0
    if method == "distance":
        return _rowmean(distance, count, lonely)
    # k-distance: the distance to the farthest listed neighbour (the k-th when all exist).
    k_distance = np.where(lonely, np.inf, np.nanmax(np.where(found, distance, -np.inf), axis=1))
    safe = np.where(found, neighbours, 0)
    reach = np.where(found, np.maximum(k_distance[safe], distance), np.nan)
    density = 1.0 / _rowmean(reach, count, lonely)  # local reachability density; 0 if lonely
    neighbour_density = _rowmean(np.where(found, density[safe], np.nan), count, lonely)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = neighbour_density / density
    scores[lonely | ~np.isfinite(scores)] = np.inf
    return scores.astype(np.float32)


def _rowmean(values: np.ndarray, count: np.ndarray, lonely: np.ndarray) -> np.ndarray:
    total = np.nansum(values, axis=1, dtype=np.float64)
    mean = np.divide(total, count, out=np.full(len(count), np.inf), where=~lonely)
    return mean.astype(np.float32)


def top_outliers(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Positions of the ``ceil(fraction * n)`` highest scores, most outlying first.

    O(n) selection then a sort of the selected few (by descending score, then position).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be between 0 and 1, not {fraction}")
    scores = np.asarray(scores)
    count = min(len(scores), math.ceil(fraction * len(scores)))
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.argpartition(-scores, count - 1)[:count]
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order].astype(np.int64)
