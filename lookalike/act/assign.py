"""Which folder each file goes to when a collection is sorted by an analysis.

Each function returns ``{absolute file path: folder name}`` for
:func:`lookalike.act.sort.plan_sort`; files absent from the mapping stay where they are.
Sorting by exemplar images is :meth:`lookalike.Collection.folders_by_exemplars`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .sort import duplicate_assignments

if TYPE_CHECKING:
    from ..collection import Collection

def by_clusters(collection: Collection, k: int | str = "auto") -> dict[Path, str]:
    """Every image into the folder of its k-means cluster: ``cluster_000``, ``cluster_001``..."""
    file_ids, result = collection.clusters(k)
    paths = collection.paths(file_ids)
    return {collection.root / path: f"cluster_{label:03d}"
            for path, label in zip(paths, result.labels)}


def by_groups(collection: Collection, threshold: float | None = None) -> dict[Path, str]:
    """The members of each threshold group into ``group_001``, ``group_002``...; images in no
    group stay. ``threshold``: None for the calibrated one (see
    :meth:`~lookalike.Collection.group_threshold`)."""
    file_ids, found = collection.groups(threshold)
    paths = collection.paths(file_ids)
    return {collection.root / paths[m]: f"group_{n:03d}" for n, g in enumerate(found, start=1)
            for m in g.members}


def by_duplicates(collection: Collection, threshold: float | None = None) -> dict[Path, str]:
    """The copies of each duplicate group into ``duplicates_001_<keeper's name>``...; the
    suggested keeper stays. A near group already holds the exact copies it overlaps, so an
    exact group is used only where no near group covers it."""
    report = collection.duplicates(threshold=threshold)
    in_near = {m for g in report.near for m in g.members}
    chosen = report.near + [g for g in report.exact if not in_near.intersection(g.members)]
    root = collection.root
    # Links and hard links are one file under several names, not copies: the planner
    # compares files, never moves a link, and never moves a file a link points to.
    return duplicate_assignments(
        (f"duplicates_{n:03d}_{Path(report.paths[g.keeper]).stem}",
         [root / report.paths[m] for m in [g.keeper, *(m for m in g.members if m != g.keeper)]])
        for n, g in enumerate(chosen, start=1))


def folders_by(collection: Collection, by: str, *, k: int | str = "auto",
               threshold: float | None = None) -> dict[Path, str]:
    """File -> folder name for ``by`` clusters (with ``k``), groups or duplicates (with
    ``threshold``): ``sort --by``."""
    if by == "clusters":
        return by_clusters(collection, k)
    if by == "groups":
        return by_groups(collection, threshold)
    if by == "duplicates":
        return by_duplicates(collection, threshold)
    raise ValueError(f"--by must be clusters, groups or duplicates, not {by!r}")
