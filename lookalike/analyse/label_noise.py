"""Label-noise suspects: images whose nearest neighbours mostly carry another label.

A curator's class folders (or a manifest) say what each image is; the k-NN graph says what
it looks like. An image filed under the wrong class sits among neighbours of its true
class, so the share of its neighbourhood that agrees with its own label is low and one
other label dominates. Neighbours vote with their cosine similarity, so a near copy counts
more than a distant look-alike.

Pure functions over arrays: the graph's ``neighbours``/``scores`` and one label per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..knn import KnnGraph


@dataclass(frozen=True)
class LabelSuspects:
    """Every labelled image ranked from most to least suspect.

    Per position ``p`` (a row of the graph): ``labels[p]`` the given label (None when the
    image has none: never a suspect), ``agreement[p]`` the similarity-weighted share of its
    neighbours with that label, ``suggested[p]`` the label its neighbours favour most
    among the others and ``support[p]`` that label's share. ``ranking``: labelled
    positions, most suspect first (lowest agreement, then highest support).
    ``confusion[a][b]``: the share of class ``a``'s neighbour votes that go to class ``b``.
    """

    file_ids: np.ndarray
    paths: list[str]
    labels: list[str | None]
    agreement: np.ndarray
    suggested: list[str | None]
    support: np.ndarray
    ranking: np.ndarray
    confusion: dict[str, dict[str, float]]

    def top(self, count: int) -> np.ndarray:
        """The ``count`` most suspect positions."""
        return self.ranking[:max(count, 0)]

    def rows(self, count: int | None = None) -> list[dict[str, Any]]:
        """One row per suspect (the ``count`` most suspect; all ranked when None), for CSV."""
        chosen = self.ranking if count is None else self.top(count)
        return [{
            "rank": rank,
            "id": int(self.file_ids[p]),
            "path": self.paths[p],
            "label": self.labels[p],
            "agreement": round(float(self.agreement[p]), 4),
            "suggested": self.suggested[p],
            "support": round(float(self.support[p]), 4),
        } for rank, p in enumerate(chosen.tolist(), start=1)]

    def to_dict(self, count: int | None = None) -> dict[str, Any]:
        """Plain data for ``--json`` and the web: the suspects and the confusion table."""
        return {"suspects": self.rows(count), "labelled": int(len(self.ranking)),
                "confusion": self.confusion}


def find_label_suspects(
    graph: KnnGraph,
    labels: Sequence[str | None],
    file_ids: np.ndarray,
    paths: Sequence[str],
    *,
    k: int | None = None,
) -> LabelSuspects:
    """Rank the labelled images of ``graph`` by how little their neighbours agree with
    their label.

    ``k``: neighbours that vote (default: all the graph holds). Unlabelled neighbours and
    missing ones (-1) do not vote; an image with no voting neighbour agrees fully (there is
    no evidence against its label).
    """
    n = len(graph)
    if len(labels) != n or len(file_ids) != n or len(paths) != n:
        raise ValueError(f"{n} graph rows but {len(labels)} labels, {len(file_ids)} ids "
                         f"and {len(paths)} paths")
    names = sorted({label for label in labels if label is not None})
    code_of = {name: code for code, name in enumerate(names)}
    codes = np.array([code_of.get(label, -1) if label is not None else -1
                      for label in labels], dtype=np.int64)
    width = graph.k if k is None else min(k, graph.k)
    neighbours = np.asarray(graph.neighbours[:, :width])
    weights = np.clip(np.asarray(graph.scores[:, :width], dtype=np.float64), 0.0, None)
    voter = np.where(neighbours >= 0, codes[np.maximum(neighbours, 0)], -1)
    weights = np.where(voter >= 0, weights, 0.0)

    votes = np.zeros((n, max(len(names), 1)), dtype=np.float64)
    rows = np.repeat(np.arange(n), width)
    counted = voter.ravel() >= 0
    np.add.at(votes, (rows[counted], voter.ravel()[counted]), weights.ravel()[counted])
    total = votes.sum(axis=1)
    share = np.divide(votes, total[:, None], out=np.zeros_like(votes),
                      where=total[:, None] > 0)

    labelled = np.flatnonzero(codes >= 0)
    agreement = np.ones(n, dtype=np.float64)
    agreement[labelled] = np.where(total[labelled] > 0, share[labelled, codes[labelled]], 1.0)
    others = share.copy()
    others[labelled, codes[labelled]] = -1.0
    best_other = others.argmax(axis=1)
    support = np.where(codes >= 0, np.maximum(others[np.arange(n), best_other], 0.0), 0.0)
    suggested: list[str | None] = [
        names[int(best_other[p])] if codes[p] >= 0 and support[p] > 0 else None
        for p in range(n)]
    ranking = labelled[np.lexsort((labelled, -support[labelled], agreement[labelled]))]

    confusion: dict[str, dict[str, float]] = {}
    for code, name in enumerate(names):
        received = votes[codes == code].sum(axis=0)
        whole = received.sum()
        confusion[name] = {other: round(float(received[c] / whole), 4) if whole else 0.0
                           for c, other in enumerate(names)}
    return LabelSuspects(file_ids=np.asarray(file_ids), paths=list(paths),
                         labels=list(labels), agreement=agreement, suggested=suggested,
                         support=support, ranking=ranking, confusion=confusion)
