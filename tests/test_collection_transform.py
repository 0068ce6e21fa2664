"""A learned transform set on a collection: applied to stored embeddings, the index and
every query, persisted, removable; duplicates keep using the model's own space."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from lookalike import Collection
from lookalike.cli import app
from tests.conftest import flip, scene

runner = CliRunner()
BACKGROUNDS = 8


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def marked(seed: int, colour: tuple[int, int, int]) -> Image.Image:
    """Scene ``seed`` with a small square of ``colour``: the scene dominates the embedding,
    the square is the class."""
    image = scene(seed)
    ImageDraw.Draw(image).rectangle((10, 10, 70, 70), fill=colour)
    return image


@pytest.fixture
def two_marks(tmp_path: Path) -> Path:
    """Class folders red/ and blue/, each with the same eight scenes: raw nearest neighbours
    share the scene (the other class); only the mark tells the classes apart."""
    root = tmp_path / "marks"
    for label, colour in (("red", (230, 20, 20)), ("blue", (20, 20, 230))):
        (root / label).mkdir(parents=True)
        for seed in range(BACKGROUNDS):
            marked(seed, colour).save(root / label / f"{seed}.png")
    assert invoke("index", root, "--model", "classic").exit_code == 0
    return root


def top_classes(collection: Collection, root: Path) -> list[bool]:
    """For every image, whether its best match has its class."""
    same = []
    for path in sorted(root.glob("*/*.png")):
        best = collection.search(path, k=1)[0]
        same.append(Path(best.path).parent.name == path.parent.name)
    return same


def test_learned_transform_changes_search_and_persists(two_marks: Path) -> None:
    before = Collection.open(two_marks)
    assert sum(top_classes(before, two_marks)) <= BACKGROUNDS // 2  # scenes win
    raw_ids, raw = before.vectors()

    result = invoke("learn", two_marks, "--method", "lda", "--db", two_marks, "--json")
    assert result.exit_code == 0, result.output
    assert "applied to the collection" in json.loads(result.stdout)["saved"]

    after = Collection.open(two_marks, writable=True)
    assert all(top_classes(after, two_marks))  # the mark wins everywhere
    ids, projected = after.vectors()
    assert np.array_equal(ids, raw_ids) and projected.shape[1] == 1  # LDA: classes - 1
    np.testing.assert_array_equal(after.vectors(raw=True)[1], raw)  # store untouched
    info = json.loads(invoke("info", two_marks, "--json").stdout)
    assert info["transform"] == "lda" and info["index_fresh"]
    # analyses use the learned space; duplicates the model's own, each graph cached apart
    scenes = {i: p.rsplit("/", 1)[-1] for i, p in zip(ids, after.paths(ids), strict=True)}
    learned, own = after.knn_graph(1)[1], after.knn_graph(1, raw=True)[1]
    assert all(scenes[ids[n]] != scenes[ids[i]] for i, n in enumerate(learned.neighbours[:, 0]))
    assert all(scenes[ids[n]] == scenes[ids[i]] for i, n in enumerate(own.neighbours[:, 0]))
    index_folder, key = after.directory / "index", after.model.key
    assert (index_folder / f"{key}.knn1").is_dir() and (index_folder / f"{key}.raw.knn1").is_dir()
    for model_space, built in ((False, learned), (True, own)):  # each from its cache
        cached = after.knn_graph(1, raw=model_space)[1]
        assert isinstance(cached.neighbours, np.memmap)
        assert cached.neighbours.tolist() == built.neighbours.tolist()

    # a new image is indexed into the learned space without refitting anything
    marked(40, (230, 20, 20)).save(two_marks / "red" / "new.png")
    after.index()
    assert Path(after.search(two_marks / "red" / "new.png", k=1)[0].path).parent.name == "red"

    evaluation = json.loads(invoke("eval", two_marks, "--db", two_marks, "-k", "3",
                                   "--json").stdout)
    scored = evaluation["results"][0]
    assert scored["label"] == "collection: classic [lda]"
    assert scored["summary"]["top-1"] == 1.0 and scored["summary"]["mAP@3"] == 1.0
    # images the collection does not hold are embedded with its model and projected too
    outside = two_marks.parent / "outside"
    shutil.copytree(two_marks, outside, ignore=shutil.ignore_patterns(".lookalike"))
    evaluation = json.loads(invoke("eval", outside, "--db", two_marks, "-k", "3",
                                   "--json").stdout)
    assert evaluation["results"][0]["summary"]["top-1"] == 1.0
    assert evaluation["results"][0]["cached"] is False  # embedded, not the stored rows

    assert invoke("learn", two_marks, "--db", two_marks, "--clear").exit_code == 0
    cleared = Collection.open(two_marks)
    assert cleared.transform is None and cleared.vectors()[1].shape[1] == raw.shape[1]
    assert sum(top_classes(cleared, two_marks)) <= BACKGROUNDS // 2 + 1


def test_transform_for_other_dimensions_is_refused(two_marks: Path, tmp_path: Path) -> None:
    from lookalike.collection import ModelMismatch
    from lookalike.embed.transform import PCA, TransformChain

    chain = TransformChain([PCA(dim=2)]).fit(np.random.default_rng(0).normal(size=(20, 7)))
    chain.info["input_dim"] = 7
    with pytest.raises(ModelMismatch, match="7-d"):
        Collection.open(two_marks).set_transform(chain)


def test_flip_tta_is_recorded_and_makes_mirrors_identical(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(4):
        scene(seed).save(folder / f"s{seed}.png")
    result = invoke("index", folder, "--model", "classic", "--flip", "--crop-borders")
    assert result.exit_code == 0, result.output
    collection = Collection.open(folder)
    assert collection.model.options == {"border_crop": True, "flip": True}
    mirror = tmp_path / "mirror.png"
    flip(scene(2)).save(mirror)
    best = collection.search(mirror, k=1)[0]
    assert best.path == "s2.png" and best.score > 0.999
    refused = invoke("index", folder, "--model", "classic", "--flip")
    assert refused.exit_code != 0 and "--rebuild" in refused.output
    assert "preprocessing" in invoke("info", folder).stdout


def test_pca_fitted_on_the_collection_itself(two_marks: Path) -> None:
    result = invoke("learn", "--method", "pca", "--dim", "8", "--db", two_marks)
    assert result.exit_code == 0, result.output
    assert "-> 8 dimensions" in result.stdout
    collection = Collection.open(two_marks)
    assert collection.vectors()[1].shape == (2 * BACKGROUNDS, 8)
    query = two_marks / "red" / "3.png"
    assert collection.search(query, k=1)[0].path == "blue/3.png"  # scenes still win
    refused = invoke("learn", "--method", "lda", "--db", two_marks)
    assert refused.exit_code == 1 and "labelled DATASET" in refused.output
