"""Which folder each file goes to for ``sort --by``: on a collection with planted copies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from lookalike import Collection
from lookalike.act.assign import (
    by_clusters,
    by_duplicates,
    by_examples,
    by_groups,
    folders_by,
    read_examples,
)
from lookalike.cli import app
from tests.conftest import scene


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


def tinted(seed: int, colour: tuple[int, int, int]) -> Image.Image:
    """A scene washed with one colour: the class is the colour, the shapes vary."""
    return Image.blend(scene(seed, (160, 120)), Image.new("RGB", (160, 120), colour), 0.6)


@pytest.fixture(scope="module")
def two_kinds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Ten reddish and ten bluish pictures, indexed; examples/red and examples/blue hold two
    other pictures of each kind."""
    root = tmp_path_factory.mktemp("two-kinds")
    photos, examples = root / "photos", root / "examples"
    for kind, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (examples / kind).mkdir(parents=True, exist_ok=True)
        photos.mkdir(exist_ok=True)
        offset = 0 if kind == "red" else 100
        for n in range(10):
            tinted(offset + n, colour).save(photos / f"{kind}{n}.jpg")
        for n in range(2):
            tinted(offset + 50 + n, colour).save(examples / kind / f"e{n}.jpg")
    Collection.index_folder(photos, model="classic")[0].close()
    return photos, examples


def test_by_examples_gives_one_folder_per_class_with_scores(two_kinds: tuple[Path, Path]
                                                            ) -> None:
    photos, examples = two_kinds
    with Collection.open(photos) as collection:
        placed = by_examples(collection, examples)
    assert placed.classes == ["blue", "red"] and placed.stayed == 0
    where = {p.path.name: p for p in placed.placements}
    assert sorted(where) == sorted(p.name for p in photos.glob("*.jpg"))
    for name, placement in where.items():
        assert placement.label == placement.folder == name.rstrip("0123456789.jpg"), name
        assert placement.margin > 0.01 and -1 <= placement.score <= 1.0001
        assert placement.example_similarity > 0.5
    assert placed.folders() == {p.path: p.folder for p in placed.placements}


def test_by_examples_unsure_threshold_and_top_k(two_kinds: tuple[Path, Path]) -> None:
    photos, examples = two_kinds
    with Collection.open(photos) as collection:
        unsure = by_examples(collection, examples, min_margin=2.0)  # nothing is that sure
        kept = by_examples(collection, examples, top_k=3)
        strict = by_examples(collection, examples, threshold=1.0)
    assert {p.folder for p in unsure.placements} == {"unsure"}
    assert {p.label for p in unsure.placements} == {"red", "blue"}  # the class is still said
    assert sorted(p.folder for p in kept.placements) == ["blue"] * 3 + ["red"] * 3
    assert kept.stayed == 14
    assert strict.placements == [] and strict.stayed == 20


def test_loose_examples_are_one_folder_each_zero_padded(tmp_path: Path) -> None:
    for n in range(11):
        scene(n, (64, 48)).save(tmp_path / f"ex{n:02d}.jpg")
    files, labels = read_examples(tmp_path)
    assert labels[0] == "folder_01_ex00" and labels[10] == "folder_11_ex10"
    assert [f.name for f in files] == [f"ex{n:02d}.jpg" for n in range(11)]


def test_sort_by_examples_plan_shows_score_and_margin(two_kinds: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    photos, examples = two_kinds
    args = ["sort", "--db", photos, "--by-examples", examples, "--to", tmp_path / "out",
            "--dry-run"]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "red3.jpg" in line)
    assert "red/red3.jpg" in line and "score " in line and "margin " in line
    assert "red: 10 (0 unsure)" in result.output and "blue: 10 (0 unsure)" in result.output
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--json"]])
    plan = json.loads(result.stdout)
    placement = next(p for p in plan["placements"] if p["path"].endswith("blue7.jpg"))
    assert placement["class"] == placement["folder"] == "blue"
    assert set(placement) == {"path", "class", "folder", "score", "margin",
                              "example_similarity"}
    assert not (tmp_path / "out").exists()
