"""Geometric verification, pixel hashes and find_duplicates end to end, on generated images."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from lookalike import Collection
from lookalike.duplicates_job import find_duplicates, load_calibration
from lookalike.verify import extract_features, pixel_hash, verify_features, verify_pairs
from tests.conftest import crop, flip, scene


def photo(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A generated scene with fine texture (short random strokes), as real photos have:
    the flat shapes of ``scene`` alone give local features too little to hold on to."""
    image = scene(seed, size)
    rng = np.random.default_rng(1000 + seed)
    draw = ImageDraw.Draw(image)
    width, height = size
    for _ in range(250):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        dx, dy = (int(v) for v in rng.integers(-12, 13, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.line((x, y, x + dx, y + dy), fill=colour, width=int(rng.integers(1, 4)))
    return image


def jpeg(image: Image.Image, quality: int = 40) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def edited(image: Image.Image) -> Image.Image:
    """Cropped to 80 %, rotated 8 degrees, re-encoded at JPEG quality 40."""
    return jpeg(crop(image, 0.8).rotate(8, resample=Image.Resampling.BILINEAR))


def tinted(image: Image.Image) -> Image.Image:
    return ImageOps.colorize(ImageOps.grayscale(image), black="#202040", white="#f0d080")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_edited_copy_verifies_as_the_same_photo(seed: int) -> None:
    original = extract_features(photo(seed))
    verdict = verify_features(original, extract_features(edited(photo(seed))))
    assert verdict.same and not verdict.flipped
    assert verdict.scale == pytest.approx(1 / 0.8, rel=0.05)  # the crop was enlarged back
    assert 0.5 < verdict.weight < 1.0


def test_a_mirrored_copy_verifies_as_flipped() -> None:
    verdict = verify_features(extract_features(photo(3)), extract_features(flip(photo(3))))
    assert verdict.same and verdict.flipped


def test_different_scenes_in_the_same_colours_do_not_verify() -> None:
    # Same palette (one tint over grey), different content: look-alikes, not copies.
    for a, b in [(0, 1), (2, 3), (4, 5)]:
        verdict = verify_features(extract_features(tinted(photo(a))),
                                  extract_features(tinted(photo(b))))
        assert not verdict.same
        assert verdict.weight == 0.0


def test_verify_pairs_reads_files_in_order(tmp_path: Path) -> None:
    paths = []
    for name, image in [("a", photo(0)), ("a-copy", edited(photo(0))), ("b", photo(1))]:
        paths.append(tmp_path / f"{name}.jpg")
        image.save(paths[-1], quality=90)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    paths.append(tmp_path / "broken.jpg")
    verdicts = verify_pairs(paths, np.array([0, 0, 1, 0]), np.array([1, 2, 2, 3]), workers=2)
    assert [v.same for v in verdicts] == [True, False, False, False]


def test_same_pixels_in_png_and_bmp_share_a_pixel_hash(tmp_path: Path) -> None:
    image = photo(4)
    image.save(tmp_path / "a.png")
    image.save(tmp_path / "a.bmp")
    image.save(tmp_path / "a.jpg", quality=95)
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "a.bmp").read_bytes()
    assert pixel_hash(tmp_path / "a.png") == pixel_hash(tmp_path / "a.bmp")
    assert pixel_hash(tmp_path / "a.jpg") != pixel_hash(tmp_path / "a.png")
    flip(image).save(tmp_path / "b.png")
    assert pixel_hash(tmp_path / "b.png") != pixel_hash(tmp_path / "a.png")


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """Two planted near-duplicate groups, two exact pairs, and look-alike distractors."""
    folder = tmp_path / "photos"
    (folder / "copies").mkdir(parents=True)
    photo(0).save(folder / "p0.jpg", quality=92)
    edited(photo(0)).save(folder / "copies" / "p0-edit.jpg", quality=90)
    flip(photo(0)).resize((360, 270)).save(folder / "copies" / "p0-flip-small.jpg", quality=85)
    photo(1).save(folder / "p1.jpg", quality=92)
    jpeg(photo(1), 30).save(folder / "copies" / "p1-q30.jpg", quality=95)
    crop(photo(1), 0.75).save(folder / "copies" / "p1-crop.png")
    photo(2).save(folder / "p2.png")  # exact: same pixels, two containers
    photo(2).save(folder / "copies" / "p2.bmp")
    photo(3).save(folder / "p3.jpg", quality=92)  # exact: same bytes
    shutil.copy(folder / "p3.jpg", folder / "copies" / "p3-copy.jpg")
    for seed in range(4, 10):  # distractors; two of them in the same tint
        photo(seed).save(folder / f"p{seed}.jpg", quality=92)
    tinted(photo(10)).save(folder / "t10.jpg", quality=92)
    tinted(photo(11)).save(folder / "t11.jpg", quality=92)
    return folder


@pytest.mark.slow
def test_find_duplicates_finds_the_planted_groups_and_not_the_distractors(
    planted: Path,
) -> None:
    collection, _ = Collection.index_folder(planted, model="classic")
    with collection:
        stages: set[str] = set()
        report = find_duplicates(collection, progress=lambda stage, done, total:
                                 stages.add(stage))
        named = {frozenset(report.paths[p] for p in group.members) for group in report.near}
        assert named == {
            frozenset({"p0.jpg", "copies/p0-edit.jpg", "copies/p0-flip-small.jpg"}),
            frozenset({"p1.jpg", "copies/p1-q30.jpg", "copies/p1-crop.png"}),
        }
        exact = {frozenset(report.paths[p] for p in group.members) for group in report.exact}
        assert exact == {frozenset({"p2.png", "copies/p2.bmp"}),
                         frozenset({"p3.jpg", "copies/p3-copy.jpg"})}
        keepers = {report.paths[group.keeper] for group in report.near}
        assert keepers == {"p0.jpg", "p1.jpg"}  # the full-size originals
        for group in report.near + report.exact:
            assert group.members[0] == group.keeper and group.scores[0] == 1.0
            assert all(0.5 < score <= 1.0 for score in group.scores)
        assert len(report.groups()) == 4
        assert {"graph", "calibrate", "verify", "hash"} <= stages
        # The calibration is measured once and stored with the collection's model.
        calibration = load_calibration(collection)
        assert calibration is not None and calibration == report.calibration
        assert calibration["candidate_threshold"] <= calibration["near_threshold"] < 1.0
        assert report.threshold == calibration["candidate_threshold"]
        assert json.loads(json.dumps(report.to_dict()))["near"][0]["keeper"]["path"]


@pytest.mark.slow
def test_find_duplicates_with_an_explicit_threshold_or_without_verification(
    planted: Path,
) -> None:
    collection, _ = Collection.index_folder(planted, model="classic")
    with collection:
        plain = find_duplicates(collection, threshold=0.9999, verify=False)
        assert plain.calibration is None and plain.threshold == 0.9999
        assert load_calibration(collection) is None  # nothing measured when not needed
        assert len(plain.exact) == 2
        strict = find_duplicates(collection, threshold=0.9999)
        assert strict.threshold == 0.9999 and len(strict.exact) == 2
        # telling copies from similar shots needs the calibrated agreement all the same
        assert strict.calibration == load_calibration(collection)
        quick = find_duplicates(collection, verify=False)
        assert not quick.verified
        assert quick.threshold == quick.calibration["near_threshold"]
        assert quick.near  # the plainer copies are still found from the embedding alone
        for group in quick.near:  # the embedding alone may miss copies, but groups stay
            assert len(group.members) <= 3  # small: no chain through the look-alikes


def test_find_duplicates_reuses_the_collections_cached_graph(planted: Path, monkeypatch) -> None:
    collection, _ = Collection.index_folder(planted, model="classic")
    with collection:
        first = find_duplicates(collection, verify=False)
        ids, graph = collection.knn_graph(16)  # what duplicates built and cached

        def no_new_graph(*args, **kwargs):
            raise AssertionError("the cached graph was not used")

        monkeypatch.setattr("lookalike.collection.knn_graph", no_new_graph)
        again = find_duplicates(collection, verify=False)
        assert again.near and [g.members for g in again.near] == [
            g.members for g in first.near]
        assert isinstance(graph.neighbours, np.memmap) and len(ids) == len(first.paths)


def test_find_duplicates_on_a_single_image(tmp_path: Path) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    photo(0).save(folder / "only.jpg")
    collection, _ = Collection.index_folder(folder, model="classic")
    with collection:
        report = find_duplicates(collection)
        assert report.near == [] and report.exact == [] and report.groups() == []
        assert report.to_dict()["threshold"] is None


# -- copy tiers: an edited copy against another shot of the same scene ----------------------


def shot(seed: int, where: tuple[int, int]) -> Image.Image:
    """Scene ``seed`` photographed with its subject (a textured square of 40 % of the
    height, another scene's detail) standing at ``where``: two shots of one scene differ
    only where the subject was and is."""
    image = photo(seed)
    subject = photo(seed + 50).crop((100, 100, 244, 244))
    image.paste(subject, where)
    return image


def test_dense_agreement_tells_an_edited_copy_from_another_shot() -> None:
    first = extract_features(shot(0, (40, 60)))
    copy = verify_features(first, extract_features(jpeg(crop(shot(0, (40, 60)), 0.85))))
    mirrored = verify_features(first, extract_features(flip(shot(0, (40, 60)))))
    moved = verify_features(first, extract_features(shot(0, (290, 150))))
    assert copy.same and mirrored.same and mirrored.flipped
    assert moved.same  # the background alone matches under one transform ...
    assert copy.agreement > 0.9 and mirrored.agreement > 0.9
    assert moved.agreement < 0.8  # ... but the subject disagrees where it moved
    assert 0.6 < copy.coverage <= 1.0 and moved.coverage > 0.9


def test_find_duplicates_puts_another_shot_in_the_similar_tier(tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    shot(0, (40, 60)).save(folder / "a.jpg", quality=92)
    jpeg(crop(shot(0, (40, 60)), 0.8), 40).save(folder / "a-crop.jpg", quality=95)
    flip(shot(0, (40, 60))).save(folder / "a-flip.jpg", quality=90)
    shot(0, (290, 150)).save(folder / "a-moved.jpg", quality=92)
    for seed in range(1, 7):
        photo(seed).save(folder / f"other{seed}.jpg", quality=92)
    collection, _ = Collection.index_folder(folder, model="classic")
    with collection:
        report = find_duplicates(collection)
        assert report.calibration is not None
        assert 0.5 < report.calibration["agreement_threshold"] < 1.0
        named = [{report.paths[p] for p in group.members} for group in report.near]
        assert named == [{"a.jpg", "a-crop.jpg", "a-flip.jpg"}]
        assert report.near[0].tier == "edited"
        assert set(report.near[0].tiers[1:]) == {"edited"}
        similar = [{report.paths[p] for p in group.members} for group in report.similar]
        assert len(similar) == 1 and {"a.jpg", "a-moved.jpg"} <= similar[0]
        data = report.to_dict()["similar"][0]
        assert data["kind"] == "similar" and data["tier"] == "similar"
        assert data["members"][0]["evidence"] is None  # the keeper
        # the moved shot against the original, whichever of the two is the keeper
        other = {"a.jpg", "a-moved.jpg"} - {data["keeper"]["path"]}
        shot_member = next(m for m in data["members"] if m["path"] in other)
        evidence = shot_member["evidence"]
        assert shot_member["tier"] == "similar" and evidence["inliers"] >= 12
        assert evidence["agreement"] < report.calibration["agreement_threshold"]
        # nothing changed: every verdict comes from the cache, and so do the groups
        again = find_duplicates(collection)
        assert again.cached == again.candidates > 0
        assert again.to_dict()["near"] == report.to_dict()["near"]
        assert again.to_dict()["similar"] == report.to_dict()["similar"]
