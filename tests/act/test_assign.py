"""Which folder each file goes to for ``sort --by``: on a collection with planted copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike import Collection
from lookalike.act.assign import by_clusters, by_duplicates, by_groups, folders_by


def names(assignments: dict[Path, str]) -> dict[str, str]:
    return {path.name: folder for path, folder in assignments.items()}


def test_by_clusters_puts_every_image_in_one_cluster_folder(planted_collection: Path) -> None:
    with Collection.open(planted_collection) as collection:
        found = names(by_clusters(collection, 4))
    assert sorted(found) == sorted(p.name for p in planted_collection.glob("*.jpg"))
    assert sorted(set(found.values())) == [f"cluster_{c:03d}" for c in range(4)]
    assert found["a0.jpg"] == found["a0-crop.jpg"] == found["a0-bright.jpg"]
    assert found["a1.jpg"] == found["a1-copy.jpg"] != found["a0.jpg"]


def test_by_groups_moves_group_members_only(planted_collection: Path) -> None:
    with Collection.open(planted_collection) as collection:
        found = names(by_groups(collection, 0.9))
    assert found["a0.jpg"] == found["a0-crop.jpg"]
    assert found["a1.jpg"] == found["a1-copy.jpg"] != found["a0.jpg"]
    assert set(found.values()) == {"group_001", "group_002"}
    assert not {f"a{n}.jpg" for n in range(2, 6)} & set(found)  # in no group: they stay


def test_by_duplicates_moves_the_copies_beside_their_keepers_name(
        planted_collection: Path) -> None:
    with Collection.open(planted_collection) as collection:
        found = names(by_duplicates(collection))
    assert found["a0-crop.jpg"] == found["a0-bright.jpg"] == "duplicates_001_a0"
    assert "a0.jpg" not in found  # the keeper (full size, the largest file) stays
    (moved,) = {"a1.jpg", "a1-copy.jpg"} & set(found)  # exact copies: one stays
    kept = ({"a1.jpg", "a1-copy.jpg"} - {moved}).pop()
    assert found[moved] == f"duplicates_002_{Path(kept).stem}"
    assert len(found) == 3


def test_folders_by_dispatches_and_refuses_an_unknown_kind(planted_collection: Path) -> None:
    with Collection.open(planted_collection) as collection:
        assert folders_by(collection, "groups", threshold=0.9) == by_groups(collection, 0.9)
        assert folders_by(collection, "clusters", k="4") == by_clusters(collection, 4)
        with pytest.raises(ValueError, match="--by must be clusters, groups or duplicates"):
            folders_by(collection, "colour")
