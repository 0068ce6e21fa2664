"""``suspects`` on a planted labelled folder: the misfiled image is the first suspect."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from lookalike.cli import app

from ..conftest import crop, flip, scene

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def misfiled(tmp_path: Path) -> Path:
    """Classes a (scene 0) and b (scene 1), four views each, and a crop of scene 0 filed
    under b."""
    folder = tmp_path / "classes"
    for name, seed in (("a", 0), ("b", 1)):
        (folder / name).mkdir(parents=True)
        scene(seed).save(folder / name / "scene.jpg", quality=90)
        crop(scene(seed)).save(folder / name / "crop.jpg", quality=90)
        crop(scene(seed), 0.7).save(folder / name / "tight.jpg", quality=90)
        flip(scene(seed)).save(folder / name / "flip.png")
    crop(scene(0), 0.8).save(folder / "b" / "misfiled.jpg", quality=90)
    assert invoke("index", folder, "--model", "classic").exit_code == 0
    return folder


def test_misfiled_image_is_the_first_suspect(tmp_path: Path) -> None:
    folder = misfiled(tmp_path)
    result = invoke("suspects", "--db", folder, "-k", 3, "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["path"] == "b/misfiled.jpg"
    assert rows[0]["label"] == "b" and rows[0]["suggested"] == "a"
    assert float(rows[0]["agreement"]) < 0.5
    assert len(rows) == 9


def test_json_has_the_confusion_table_and_labels_can_come_from_a_manifest(
        tmp_path: Path) -> None:
    folder = misfiled(tmp_path)
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,label\n" + "".join(
        f"classes/{name}/{file},{'a' if name == 'a' or file == 'misfiled.jpg' else 'b'}\n"
        for name in "ab" for file in ("scene.jpg", "crop.jpg", "tight.jpg", "flip.png",
                                      "misfiled.jpg") if (folder / name / file).exists()))
    found = json.loads(invoke("suspects", "--db", folder, "-k", 3, "--json", "--top", 3,
                              "--labels", manifest).stdout)
    # with the right label the misfiled crop agrees with its neighbours
    assert "b/misfiled.jpg" not in [s["path"] for s in found["suspects"][:1]]
    assert found["labelled"] == 9 and len(found["suspects"]) == 3
    assert found["confusion"]["a"]["a"] > found["confusion"]["a"]["b"]
    by_folder = json.loads(invoke("suspects", "--db", folder, "-k", 3, "--json").stdout)
    assert by_folder["suspects"][0]["path"] == "b/misfiled.jpg"


def test_unlabelled_collection_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    folder.mkdir()
    for seed in range(3):
        scene(seed).save(folder / f"{seed}.jpg")
    assert invoke("index", folder, "--model", "classic").exit_code == 0
    result = runner.invoke(app, ["suspects", "--db", str(folder)])
    assert result.exit_code == 2
    assert "no image has a label" in result.output


def split_folder(tmp_path: Path) -> Path:
    """train/ and test/ with three distinct scenes each; test/ also holds a train scene
    saved again as PNG (same pixels: a leak) and train/ an exact copy of another train
    scene (no leak)."""
    folder = tmp_path / "data"
    for split, seeds in (("train", (0, 1, 2)), ("test", (3, 4, 5))):
        (folder / split).mkdir(parents=True)
        for seed in seeds:
            scene(seed).save(folder / split / f"scene{seed}.jpg", quality=92)
    scene(1).save(folder / "test" / "leak.png")
    (folder / "train" / "scene1.png").write_bytes((folder / "test" / "leak.png").read_bytes())
    (folder / "train" / "copy2.jpg").write_bytes((folder / "train" / "scene2.jpg").read_bytes())
    assert invoke("index", folder, "--model", "classic").exit_code == 0
    return folder


def test_leakage_lists_the_cross_split_copy_and_writes_a_clean_split(tmp_path: Path) -> None:
    folder = split_folder(tmp_path)
    out = tmp_path / "splits.csv"
    result = invoke("leakage", "--db", folder, "--csv", "--manifest", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    # the same bytes as train/scene1.png, the same picture as the JPEG train/scene1.jpg
    assert [(r["tier"], r["path_a"], r["path_b"]) for r in rows] == [
        ("exact", "test/leak.png", "train/scene1.png"),
        ("edited", "test/leak.png", "train/scene1.jpg")]
    assert rows[0]["split_a"] == "test"
    manifest = {r["path"]: r["split"] for r in csv.DictReader(out.open())}
    assert manifest["test/leak.png"] == "train" and manifest["train/scene1.png"] == "train"
    assert manifest["train/scene1.jpg"] == "train"
    assert manifest["test/scene3.jpg"] == "test" and len(manifest) == 9


def test_quality_flags_the_dark_copy_and_metadata_exports_capture_data(tmp_path: Path
                                                                       ) -> None:
    from PIL import ImageEnhance

    from ..test_measure import with_exif

    folder = tmp_path / "shots"
    folder.mkdir()
    for seed in range(6):
        scene(seed).save(folder / f"{seed}.jpg", quality=90)
    ImageEnhance.Brightness(scene(2)).enhance(0.2).save(folder / "dark.jpg", quality=90)
    with_exif(scene(7), folder / "camera.jpg")
    assert invoke("index", folder, "--model", "classic").exit_code == 0
    found = json.loads(invoke("quality", "--db", folder, "--json").stdout)
    assert [(r["flag"], r["path"]) for r in found["flags"]] == [("dark", "dark.jpg")]
    rows = list(csv.DictReader(io.StringIO(invoke("metadata", "--db", folder).stdout)))
    by_path = {r["path"]: r for r in rows}
    assert len(rows) == 8 and by_path["camera.jpg"]["captured"] == "2024-06-01T10:15:30"
    assert by_path["camera.jpg"]["lens"] == "EF 50mm f/1.8" and by_path["0.jpg"]["camera"] == ""


def test_leakage_never_overwrites_a_file_it_did_not_write(tmp_path: Path) -> None:
    folder = split_folder(tmp_path)
    mine = tmp_path / "notes.csv"
    mine.write_text("my,own\n1,2\n")
    result = runner.invoke(app, ["leakage", "--db", str(folder), "--manifest", str(mine)])
    assert result.exit_code == 1 and "was not written by lookalike leakage" in result.output
    assert mine.read_text() == "my,own\n1,2\n"
    out = tmp_path / "splits.csv"
    assert invoke("leakage", "--db", folder, "--manifest", out, "--json").exit_code == 0
    assert invoke("leakage", "--db", folder, "--manifest", out, "--json").exit_code == 0
    assert out.read_text().startswith("path,split\n")
