"""Threshold groups default to the near-duplicate threshold calibrated for the collection's
model (the one ``duplicates`` measures and stores), on the default model itself."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lookalike import Collection
from lookalike.cli import app
from lookalike.demo import make_sample_photos
from lookalike.duplicates_job import find_duplicates, load_calibration
from lookalike.embed import resolve_auto
from tests.conftest import crop, scene

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def default_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's photos (scikit-image's sample pictures: chelsea, coffee and rocket with a
    crop and a mirror copy each, two broken files) indexed with no --model: auto, the
    bundled mobilenetv2 offline. Real photos: the generated scenes of conftest all look
    alike to an ImageNet network (cosine .8 between distinct scenes)."""
    photos, _ = make_sample_photos(tmp_path_factory.mktemp("default-model"))
    result = invoke("index", photos)
    assert result.exit_code == 0, result.output
    return photos


@pytest.mark.slow
def test_groups_on_the_default_model_use_its_calibration(default_model: Path) -> None:
    result = invoke("groups", "--db", default_model, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    with Collection.open(default_model) as collection:
        assert collection.model.spec == resolve_auto()  # type: ignore[union-attr]
        calibration = load_calibration(collection)  # measured and stored by groups
    assert calibration is not None and calibration["model"] == resolve_auto()
    assert found["threshold"] == calibration["near_threshold"]
    assert found["threshold_source"] == "calibrated" and found["model"] == resolve_auto()
    members = sorted(sorted(m["path"] for m in g["members"]) for g in found["groups"])
    # the planted copies are grouped, and none of the other pictures joins any group
    assert members == [[f"{name}-crop.jpg", f"{name}-flip.jpg", f"{name}.jpg"]
                       for name in ("chelsea", "coffee", "rocket")]


def test_collection_groups_default_is_the_duplicates_calibration(default_model: Path) -> None:
    with Collection.open(default_model) as collection:
        used = collection.group_threshold()
        stored = load_calibration(collection)
        assert stored is not None  # the test above stored it; nothing measured again
        assert used.calibrated and used.value == stored["near_threshold"]
        assert used.model == resolve_auto()
        assert collection.calibration() == stored
        # duplicates finds the same stored calibration and applies it (verify=False:
        # decided on the embedding alone, at the near threshold)
        quick = find_duplicates(collection, verify=False)
        assert quick.calibration == stored and quick.threshold == used.value
        default, explicit = collection.groups(), collection.groups(used.value)
        assert [g.members.tolist() for g in default.groups] == [
            g.members.tolist() for g in explicit.groups]
        given = collection.group_threshold(0.5)
        assert given.value == 0.5 and not given.calibrated
        assert len(default.file_ids) == 26  # 28 files, two broken


def test_a_new_collection_is_calibrated_by_groups_first(tmp_path: Path) -> None:
    """Before any duplicates run, groups measure the calibration, store it where
    duplicates reads it, and a one-image collection has nothing to group."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(4):
        scene(seed).save(folder / f"s{seed}.jpg", quality=90)
    crop(scene(0)).save(folder / "s0-crop.jpg", quality=90)
    collection, _ = Collection.index_folder(folder, model="classic")
    with collection:
        assert load_calibration(collection) is None
        found = collection.groups()
        stored = load_calibration(collection)
        assert stored is not None and stored["model"] == "classic"
        assert collection.group_threshold().value == stored["near_threshold"]
        assert any({"s0.jpg", "s0-crop.jpg"} <= {found.paths[m] for m in g.members}
                   for g in found.groups)
        assert find_duplicates(collection, verify=False).calibration == stored
    lone = tmp_path / "lone"
    lone.mkdir()
    scene(9).save(lone / "only.jpg")
    single, _ = Collection.index_folder(lone, model="classic")
    with single:
        used = single.group_threshold()
        assert math.isnan(used.value) and single.groups().groups == []
    result = invoke("groups", "--db", lone, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["threshold"] is None
