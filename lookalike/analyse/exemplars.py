"""Assign images to hand-picked exemplars (seed 000's ``find_and_move``).

The user drops one exemplar per group they care about into a folder; every collection
image goes to its most similar exemplar when it is close enough, otherwise it stays put.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 65_536


@dataclass(frozen=True)
class ExemplarAssignment:
    labels: np.ndarray  # int64 [n]: exemplar index, or -1 (stays where it is)
    scores: np.ndarray  # float32 [n]: cosine to the nearest exemplar

    def members(self, exemplar: int) -> np.ndarray:
        return np.flatnonzero(self.labels == exemplar)


def assign_to_exemplars(
    vectors: np.ndarray,
    exemplars: np.ndarray,
    *,
    threshold: float | None = None,
    top_k: int | None = None,
) -> ExemplarAssignment:
    """Nearest exemplar of each row of ``vectors`` (both L2-normalised).

    An image is assigned when its cosine to that exemplar is at least ``threshold`` and,
    with ``top_k``, when it is among the exemplar's ``top_k`` most similar images (the
    seed's "N nearest neighbours of each exemplar"). With neither, every image is assigned.
    Memory is n x (number of exemplars), computed in chunks.
    """
    exemplars = np.asarray(exemplars, dtype=np.float32)
    n = len(vectors)
    labels = np.full(n, -1, dtype=np.int64)
    scores = np.full(n, -np.inf, dtype=np.float32)
    if n == 0 or len(exemplars) == 0:
        return ExemplarAssignment(labels, scores)
    for start in range(0, n, CHUNK):
        similarity = np.asarray(vectors[start : start + CHUNK], dtype=np.float32) @ exemplars.T
        labels[start : start + CHUNK] = similarity.argmax(axis=1)
        scores[start : start + CHUNK] = similarity.max(axis=1)
    keep = np.ones(n, dtype=bool)
    if threshold is not None:
        keep &= scores >= threshold
    if top_k is not None:
        for exemplar in range(len(exemplars)):
            mine = np.flatnonzero(labels == exemplar)
            if len(mine) > top_k:
                ranked = mine[np.argsort(-scores[mine], kind="stable")]
                keep[ranked[top_k:]] = False
    labels[~keep] = -1
    return ExemplarAssignment(labels, scores)
