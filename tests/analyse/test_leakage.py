"""Cross-split pairs and the group-aware split, on planted groups."""

from __future__ import annotations

import numpy as np

from lookalike.analyse.duplicates import DuplicateGroup
from lookalike.analyse.leakage import find_leakage, group_aware_splits


def group(members: list[int], kind: str = "near", scores: list[float] | None = None
          ) -> DuplicateGroup:
    return DuplicateGroup(members=members, keeper=members[0], kind=kind,  # type: ignore[arg-type]
                          scores=scores or [1.0] * len(members))


SPLITS: list[str | None] = ["train", "train", "test", "val", "train", "test", None, "test"]


def test_pairs_across_splits_are_listed_once_with_their_strongest_tier() -> None:
    groups = [group([0, 2], "exact"), group([0, 2, 3], scores=[1.0, 1.0, 0.8]),
              group([4, 1]), group([5, 6])]
    found = find_leakage(groups, SPLITS, np.arange(10, 18), [f"p{i}" for i in range(8)])
    assert [(p.first, p.second, p.tier) for p in found.pairs] == [
        (0, 2, "exact"), (0, 3, "edited"), (2, 3, "edited")]
    assert [round(p.score, 2) for p in found.pairs] == [1.0, 0.8, 0.8]
    assert found.straddling == [0, 1]  # [4, 1] is all train; 6 is in no split
    rows = found.rows()
    assert rows[0] == {"tier": "exact", "score": 1.0, "split_a": "train", "id_a": 10,
                       "path_a": "p0", "split_b": "test", "id_b": 12, "path_b": "p2"}


def test_group_aware_split_moves_each_group_whole_and_prefers_the_larger_split() -> None:
    splits = [*SPLITS, "train"]  # train holds the most files
    fixed = group_aware_splits([[0, 2, 3], [5, 7], [1, 5]], splits)
    # 0,2,3: train/test/val tie -> train (most files); 1,5,7 merged: test 2 vs train 1
    assert fixed == ["train", "test", "train", "train", "train", "test", None, "test", "train"]
    for members in ([0, 2, 3], [1, 5, 7]):
        assert len({fixed[m] for m in members}) == 1
    assert group_aware_splits([[2, 3]], SPLITS, priority=("val",))[2:4] == ["val", "val"]


def test_similar_tier_and_manifest() -> None:
    groups = [group([0, 7], "similar")]
    found = find_leakage(groups, SPLITS, np.arange(8), [f"p{i}" for i in range(8)],
                         priority=("train",))
    assert [p.tier for p in found.pairs] == ["similar"]
    manifest = found.manifest()
    assert len(manifest) == 7 and {"path": "p7", "split": "train"} in manifest
    assert found.to_dict()["files_to_move"] == 1
