"""What the collection-wide analyses return: one convention for every analysis.

A result names its items by *position*: ``file_ids[p]`` and ``paths[p]`` (relative to the
collection's folder) are the file at position ``p``, and everything else (group members,
cluster labels, scores) is per position. ``rows()`` flattens it for CSV (one row per file,
with the columns in ``COLUMNS``); ``to_dict()`` is the JSON, with ids and paths instead of
positions. :class:`lookalike.duplicates_job.DuplicateReport` follows the same convention.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .clusters import Clustering
from .groups import Group
from .outliers import top_outliers

if TYPE_CHECKING:
    from ..records import GroupThreshold

LOW_CONFIDENCE = 0.02  # a member that won its cluster by less is listed as low-confidence


@dataclass(frozen=True)
class Positions:
    """The files of an analysis, by position: the base of each result, which adds its
    per-position data, ``COLUMNS``, ``rows()`` and ``to_dict()``."""

    file_ids: np.ndarray  # int64 [n]
    paths: list[str]  # [n], relative to the collection's folder

    def file_id(self, position: int) -> int:
        return int(self.file_ids[position])

    def ids(self, positions: Iterable[int]) -> list[int]:
        """The file ids at ``positions``."""
        return [int(self.file_ids[p]) for p in positions]

    def item(self, position: int) -> dict[str, Any]:
        """``{"id", "path"}`` of the file at ``position``."""
        return {"id": self.file_id(position), "path": self.paths[position]}


@dataclass(frozen=True)
class GroupReport(Positions):
    """Threshold groups (:func:`~lookalike.analyse.groups.threshold_groups`), largest first;
    ``threshold``: the cosine they were cut at and where it came from; ``model``: the
    collection's model."""

    groups: list[Group]
    threshold: GroupThreshold
    model: str | None

    COLUMNS: ClassVar[tuple[str, ...]] = ("group", "medoid", "id", "path")

    def rows(self) -> list[dict[str, Any]]:
        """One row per grouped file (files in no group have none), medoid first."""
        return [{"group": number, "medoid": int(m == g.medoid), **self.item(m)}
                for number, g in enumerate(self.groups, start=1) for m in g.members]

    def to_dict(self) -> dict[str, Any]:
        value = self.threshold.value
        return {
            "threshold": None if math.isnan(value) else value,
            "threshold_source": "calibrated" if self.threshold.calibrated else "given",
            "model": self.model,
            "groups": [{"size": g.size, "mean_similarity": g.mean_similarity,
                        "medoid": self.item(g.medoid),
                        "members": [self.item(m) for m in g.members]} for g in self.groups],
        }


@dataclass(frozen=True)
class ClusterReport(Positions):
    """A k-means partition (:class:`~lookalike.analyse.clusters.Clustering`: labels,
    medoids, confidence... per position)."""

    clustering: Clustering

    COLUMNS: ClassVar[tuple[str, ...]] = ("id", "path", "cluster", "confidence")

    @property
    def k(self) -> int:
        return self.clustering.k

    def medoid_path(self, cluster: int) -> str | None:
        """The path of ``cluster``'s medoid; None for an empty cluster."""
        medoid = int(self.clustering.medoids[cluster])
        return self.paths[medoid] if medoid >= 0 else None

    def low_confidence(self, cluster: int) -> int:
        """How many of ``cluster``'s members won it by a margin under ``LOW_CONFIDENCE``."""
        members = self.clustering.members(cluster)
        return int((self.clustering.confidence[members] < LOW_CONFIDENCE).sum())

    def rows(self) -> list[dict[str, Any]]:
        """One row per file: its cluster and the margin it won it by."""
        return [{**self.item(p), "cluster": int(label), "confidence": round(float(margin), 4)}
                for p, (label, margin) in enumerate(zip(self.clustering.labels,
                                                        self.clustering.confidence))]

    def to_dict(self) -> dict[str, Any]:
        chosen = self.clustering.chosen
        return {
            "k": self.k,
            "k_chosen": chosen.describe() if chosen else None,
            "low_confidence_margin": LOW_CONFIDENCE,
            "clusters": [{"cluster": c, "size": int(self.clustering.sizes[c]),
                          "medoid": self.medoid_path(c)} for c in range(self.k)],
            "images": self.rows(),
        }


@dataclass(frozen=True)
class OutlierReport(Positions):
    """Local outlier factors (:func:`~lookalike.analyse.outliers.outlier_scores`) per
    position, from ``k`` neighbours: ~1 is typical, higher lies farther from its
    neighbourhood."""

    scores: np.ndarray  # float32 [n]
    k: int

    COLUMNS: ClassVar[tuple[str, ...]] = ("rank", "id", "path", "score")

    def top(self, fraction: float = 1.0) -> np.ndarray:
        """Positions of the top ``fraction`` of scores, most unusual first."""
        return top_outliers(self.scores, fraction)

    def rows(self, fraction: float = 1.0) -> list[dict[str, Any]]:
        """One row per file of the top ``fraction``, most unusual first."""
        return [{"rank": rank, **self.item(p), "score": float(self.scores[p])}
                for rank, p in enumerate(self.top(fraction).tolist(), start=1)]

    def to_dict(self, fraction: float = 1.0) -> dict[str, Any]:
        return {"k": self.k, "fraction": fraction, "total": len(self.file_ids),
                "outliers": self.rows(fraction)}
