"""Leakage between dataset splits: the same photo (or an edited copy of it) in train and
test inflates every metric measured on test.

Pure functions over a duplicate report's groups and one split name per position: the
cross-split pairs with their tier and score, and a group-aware reassignment in which no
duplicate group straddles two splits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .duplicates import DuplicateGroup

# weakest evidence last: a pair is as strong as the weaker of its two links to the keeper
TIER_ORDER = ("exact", "edited", "similar")


@dataclass(frozen=True)
class CrossSplitPair:
    """Two files of one duplicate group that sit in different splits."""

    first: int  # positions
    second: int
    tier: str  # exact | edited | similar
    score: float  # the weaker of the two members' scores against the group's keeper


@dataclass(frozen=True)
class Leakage:
    """Cross-split pairs of a collection, and the splits that would remove them.

    ``splits[p]``: the split of position ``p`` (None: in no split, never a leak);
    ``groups``: the duplicate groups considered, as position lists; ``straddling``: the
    indices of those groups that span more than one split; ``fixed[p]``: the split of a
    group-aware assignment (each straddling group moved whole into one split).
    """

    file_ids: np.ndarray
    paths: list[str]
    splits: list[str | None]
    pairs: list[CrossSplitPair]
    groups: list[list[int]]
    straddling: list[int]
    fixed: list[str | None]

    def rows(self) -> list[dict[str, Any]]:
        """One row per cross-split pair, for CSV."""
        return [{
            "tier": pair.tier, "score": round(pair.score, 4),
            "split_a": self.splits[pair.first], "id_a": int(self.file_ids[pair.first]),
            "path_a": self.paths[pair.first],
            "split_b": self.splits[pair.second], "id_b": int(self.file_ids[pair.second]),
            "path_b": self.paths[pair.second],
        } for pair in self.pairs]

    def manifest(self) -> list[dict[str, Any]]:
        """``path,split`` rows of the group-aware assignment (files in no split left out)."""
        return [{"path": path, "split": split}
                for path, split in zip(self.paths, self.fixed) if split is not None]

    def to_dict(self) -> dict[str, Any]:
        moved = sum(a != b for a, b in zip(self.splits, self.fixed))
        return {"pairs": self.rows(), "by_tier": dict(Counter(p.tier for p in self.pairs)),
                "straddling_groups": len(self.straddling), "files_to_move": moved}


def _member_tier(group: DuplicateGroup, index: int) -> str:
    """How ``group.members[index]`` relates to its keeper; the group's own tier when the
    members carry none."""
    if group.tiers:
        return str(group.tiers[index])
    return str(group.tier)


def cross_split_pairs(groups: Sequence[DuplicateGroup], splits: Sequence[str | None]
                      ) -> list[CrossSplitPair]:
    """Every pair of one group's members in two different splits, strongest tier first,
    then by descending score; a pair found in several groups is listed once, with its
    strongest tier."""
    found = []
    for group in groups:
        tiers = [_member_tier(group, x) for x in range(len(group.members))]
        for x, a in enumerate(group.members):
            for y in range(x + 1, len(group.members)):
                b = group.members[y]
                if splits[a] is None or splits[b] is None or splits[a] == splits[b]:
                    continue
                tier = max(tiers[x], tiers[y], key=TIER_ORDER.index)
                found.append(CrossSplitPair(min(a, b), max(a, b), tier,
                                            float(min(group.scores[x], group.scores[y]))))
    found.sort(key=lambda p: (TIER_ORDER.index(p.tier), -p.score, p.first, p.second))
    seen: set[tuple[int, int]] = set()  # a pair in two groups (exact and near): its best
    return [p for p in found if (p.first, p.second) not in seen
            and not seen.add((p.first, p.second))]  # type: ignore[func-returns-value]


def group_aware_splits(groups: Sequence[Sequence[int]], splits: Sequence[str | None],
                       priority: Sequence[str] = ()) -> list[str | None]:
    """``splits`` with each group that spans several splits moved whole into one: the
    split holding most of its members; a tie goes to the split first in ``priority``,
    else to the split holding most files overall (the training set, usually), so that a
    held-out split only ever loses files. Overlapping groups are merged first."""
    n = len(splits)
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for group in groups:
        for member in group[1:]:
            parent[root(member)] = root(group[0])
    sizes = Counter(s for s in splits if s is not None)
    rank = {name: (priority.index(name) if name in priority else len(priority),
                   -sizes[name], name) for name in sizes}
    merged: dict[int, list[int]] = {}
    for group in groups:
        for member in group:
            merged.setdefault(root(member), []).append(member)
    fixed = list(splits)
    for members in merged.values():
        present = Counter(split for m in set(members) if (split := splits[m]) is not None)
        if len(present) < 2:
            continue
        most = max(present.values())
        target = min((s for s, c in present.items() if c == most), key=lambda s: rank[s])
        for member in set(members):
            if fixed[member] is not None:
                fixed[member] = target
    return fixed


def find_leakage(groups: Sequence[DuplicateGroup], splits: Sequence[str | None],
                 file_ids: np.ndarray, paths: Sequence[str], *,
                 priority: Sequence[str] = ()) -> Leakage:
    """Cross-split pairs of ``groups`` and a group-aware assignment of ``splits``."""
    if len(splits) != len(paths) or len(file_ids) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(splits)} splits and "
                         f"{len(file_ids)} ids")
    members = [list(g.members) for g in groups]
    straddling = [number for number, group in enumerate(members)
                  if len({splits[m] for m in group if splits[m] is not None}) > 1]
    return Leakage(file_ids=np.asarray(file_ids), paths=list(paths), splits=list(splits),
                   pairs=cross_split_pairs(groups, splits), groups=members,
                   straddling=straddling,
                   fixed=group_aware_splits(members, splits, priority))
