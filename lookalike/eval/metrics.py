"""Retrieval quality against class labels: pure functions over embeddings and labels.

Definitions (printed with every report, see :data:`DEFINITIONS`):

* the query itself is never among its results; with a separate gallery (held-out split,
  ``--queries``) the query is not in the gallery at all;
* ``AP@k`` of one query = (1 / min(R, k)) * sum over ranks i <= k of P@i * rel(i), where R
  is the number of gallery items of the query's class and rel(i) is 1 when the item at rank
  i has the query's class; ``mAP@k`` is its mean over queries;
* ``P@k`` = relevant items in the top k / k; ``R@k`` = relevant items in the top k / R;
* ``top-1`` = the best match has the query's class; ``top-k`` = the majority class of the
  top k is the query's (ties go to the class whose best match ranks higher);
* queries whose class has no gallery item (R = 0) are left out of every mean.

Clustering scores (ACC, NMI, ARI, purity) are :mod:`lookalike.analyse.clusters`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFINITIONS = (
    "mAP@k: AP over the top k with normaliser min(#relevant, k), query excluded; "
    "P@k / R@k: relevant in top k over k / over #relevant; top-1: best match's class; "
    "top-k acc: majority class of the top k (ties: better-ranked class)"
)

_QUERY_CHUNK = 1024


# -- ranking --------------------------------------------------------------------------------


def rank(
    queries: np.ndarray, gallery: np.ndarray, k: int, *, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(positions, scores)`` [n_queries, k]: the ``k`` gallery rows with the largest inner
    product (cosine for normalised rows) per query, best first. ``exclude[q]``: a gallery
    position never returned for query q (itself, in leave-one-out), -1 for none."""
    queries = np.asarray(queries, dtype=np.float32)
    gallery = np.asarray(gallery, dtype=np.float32)
    k = min(k, len(gallery) - (0 if exclude is None else 1))
    positions = np.zeros((len(queries), max(k, 0)), dtype=np.int64)
    scores = np.zeros((len(queries), max(k, 0)), dtype=np.float32)
    if k <= 0:
        return positions, scores
    for start in range(0, len(queries), _QUERY_CHUNK):
        stop = min(start + _QUERY_CHUNK, len(queries))
        block = queries[start:stop] @ gallery.T
        if exclude is not None:
            own = np.asarray(exclude[start:stop])
            hit = own >= 0
            block[np.flatnonzero(hit), own[hit]] = -np.inf
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        positions[start:stop] = np.take_along_axis(top, order, axis=1)
        scores[start:stop] = np.take_along_axis(top_scores, order, axis=1)
    return positions, scores


def reciprocal_rank_fusion(
    rankings: Sequence[np.ndarray], k: int, *, weights: Sequence[float] | None = None,
    constant: float = 60.0,
) -> np.ndarray:
    """Fuse several rankings ([n_queries, depth] gallery positions, best first) into one
    top ``k``: each item scores sum_i w_i / (constant + rank_i), rank from 1; items a
    ranking does not list get nothing from it (Cormack et al. 2009)."""
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    n = len(rankings[0])
    fused = np.full((n, k), -1, dtype=np.int64)
    for q in range(n):
        totals: dict[int, float] = {}
        for ranking, weight in zip(rankings, weights):
            for r, position in enumerate(ranking[q].tolist(), start=1):
                totals[position] = totals.get(position, 0.0) + weight / (constant + r)
        best = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:k]
        fused[q, : len(best)] = [position for position, _ in best]
    return fused


# -- retrieval metrics ----------------------------------------------------------------------


def average_precision_at_k(relevant: np.ndarray, total_relevant: int, k: int) -> float:
    """AP@k of one ranked list: ``relevant`` flags by rank (best first; only the first k
    count); normaliser min(total_relevant, k). 0.0 when nothing is relevant."""
    flags = np.asarray(relevant, dtype=bool)[:k]
    denominator = min(int(total_relevant), k)
    if denominator == 0:
        return 0.0
    hits = np.cumsum(flags)
    precision = hits / np.arange(1, len(flags) + 1)
    return float((precision * flags).sum() / denominator)


@dataclass(frozen=True)
class RetrievalScores:
    """Per-query metric arrays (queries with no relevant gallery item are dropped) and
    their means. ``classes``: the query classes, aligned with the arrays."""

    k: int
    classes: np.ndarray  # [n_queries] query labels
    ap: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    top1: np.ndarray
    topk: np.ndarray
    skipped: int  # queries left out: no gallery item of their class

    @property
    def queries(self) -> int:
        return len(self.ap)

    def summary(self) -> dict[str, float]:
        k = self.k
        return {f"mAP@{k}": _mean(self.ap), f"P@{k}": _mean(self.precision),
                f"R@{k}": _mean(self.recall), "top-1": _mean(self.top1),
                f"top-{k} acc": _mean(self.topk)}

    def per_class(self) -> dict[str, dict[str, float]]:
        """Each query class's mean metrics, plus its query count as ``queries``."""
        out = {}
        for label in np.unique(self.classes):
            mask = self.classes == label
            k = self.k
            out[str(label)] = {
                "queries": float(mask.sum()), f"mAP@{k}": _mean(self.ap[mask]),
                f"P@{k}": _mean(self.precision[mask]), f"R@{k}": _mean(self.recall[mask]),
                "top-1": _mean(self.top1[mask]), f"top-{k} acc": _mean(self.topk[mask]),
            }
        return out


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def retrieval_scores(
    neighbours: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray, k: int,
    *, leave_one_out: bool = False,
) -> RetrievalScores:
    """Metrics of ranked results ``neighbours`` ([n_queries, >= k] gallery positions, best
    first, -1 = no result) against labels; see the module docstring. ``leave_one_out``: the
    queries are the gallery (row q is gallery item q), so each query's own item does not
    count towards its relevant total."""
    query_labels = np.asarray(query_labels)
    gallery_labels = np.asarray(gallery_labels)
    top = np.asarray(neighbours)[:, :k]
    found = np.where(top >= 0, gallery_labels[np.clip(top, 0, None)], None)
    relevant = (found == query_labels[:, None]) & (top >= 0)
    classes, counts = np.unique(gallery_labels, return_counts=True)
    per_class = dict(zip(classes.tolist(), counts.tolist()))
    totals = np.array([per_class.get(label, 0) for label in query_labels.tolist()])
    if leave_one_out:
        totals = totals - 1
    keep = totals > 0
    ap = np.array([average_precision_at_k(r, t, k) for r, t in zip(relevant, totals)])
    hits = relevant.sum(axis=1)
    majority = np.asarray([_majority(row) for row in np.asarray(found).tolist()], dtype=object)
    topk = majority == query_labels
    return RetrievalScores(
        k=k, classes=query_labels[keep], ap=ap[keep],
        precision=(hits / k)[keep], recall=(hits / np.maximum(totals, 1))[keep],
        top1=relevant[:, 0][keep].astype(float) if k else np.zeros(keep.sum()),
        topk=topk[keep].astype(float), skipped=int((~keep).sum()),
    )


def _majority(labels: list[object]) -> object:
    """The most frequent label; ties go to the one that appears first (the better rank)."""
    counts: dict[object, int] = {}
    for label in labels:
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    return next(label for label in labels if counts.get(label) == best)


def retrieval_confusion(
    neighbours: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray,
    classes: Sequence[str], k: int,
) -> np.ndarray:
    """[n_classes, n_classes]: row c = the share of the top-k results of class-c queries
    that belong to each class (rows sum to 1; the diagonal is the class's P@k)."""
    index = {label: i for i, label in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.float64)
    top = np.asarray(neighbours)[:, :k]
    for label, row in zip(np.asarray(query_labels).tolist(), top.tolist()):
        for position in row:
            if position >= 0:
                matrix[index[label], index[str(gallery_labels[position])]] += 1
    sums = matrix.sum(axis=1, keepdims=True)
    return matrix / np.where(sums > 0, sums, 1)
