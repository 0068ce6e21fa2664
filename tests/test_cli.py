from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lookalike.cli import app
from tests import bad_files
from tests.conftest import crop, scene

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_index_search_info_round_trip(photo_folder: Path, tmp_path: Path) -> None:
    bad_files.truncated_jpeg(photo_folder)
    result = invoke("index", photo_folder, "--model", "classic", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["embed"]["embedded"] == 10
    assert [path for path, _ in report["skipped"]] == ["truncated.jpg"]

    query = tmp_path / "q.jpg"
    crop(scene(0)).save(query)
    result = invoke("search", query, "--db", photo_folder / ".lookalike", "-k", "2", "--json")
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)[0]["results"]
    assert [r["rank"] for r in results] == [1, 2]
    assert {r["path"] for r in results} == {"scene0.jpg", "sub/scene0-crop.jpg"}

    result = invoke("info", photo_folder, "--json")
    info = json.loads(result.stdout)
    assert info["counts"] == {"ok": 10, "skipped": 1}
    assert info["model_spec"] == "classic" and info["index_kind"] == "flat"
    assert info["skipped"][0][0] == "truncated.jpg"

    text = invoke("info", photo_folder).stdout
    assert "truncated.jpg" in text and "classic" in text


def test_search_finds_collection_from_query_folder_and_writes_grid(photo_folder: Path,
                                                                    tmp_path: Path) -> None:
    invoke("index", photo_folder, "--model", "classic")
    grid = tmp_path / "sheet.png"
    result = invoke("search", photo_folder / "scene0.jpg", "-k", "4", "--grid", grid)
    assert result.exit_code == 0, result.output
    assert "sub/scene0-crop.jpg" in result.stdout
    sheet = Image.open(grid)
    assert sheet.width > 4 * 192 and sheet.height > 192  # query + 4 matches laid out


def test_search_folder_of_queries_and_vector(photo_folder: Path, tmp_path: Path) -> None:
    invoke("index", photo_folder, "--model", "classic")
    queries = tmp_path / "queries"
    queries.mkdir()
    crop(scene(2)).save(queries / "a.jpg")
    crop(scene(3)).save(queries / "b.jpg")
    result = invoke("search", queries, "--db", photo_folder, "-k", "1", "--json")
    tops = [entry["results"][0]["path"] for entry in json.loads(result.stdout)]
    assert tops == ["scene2.jpg", "scene3.jpg"]

    from lookalike import Collection

    file_ids, vectors = Collection.open(photo_folder).vectors()
    np.save(tmp_path / "v.npy", vectors[0])
    result = invoke("search", "--vector", tmp_path / "v.npy", "--db", photo_folder, "--json")
    assert json.loads(result.stdout)[0]["results"][0]["id"] == int(file_ids[0])


def test_errors_are_one_clear_line_and_exit_1(photo_folder: Path, tmp_path: Path) -> None:
    result = invoke("search", tmp_path / "q.jpg", "--db", tmp_path)
    assert result.exit_code == 1
    assert "no collection" in result.stderr and "Traceback" not in result.output

    invoke("index", photo_folder, "--model", "classic")
    not_image = bad_files.text_named_jpg(tmp_path)
    result = invoke("search", not_image, "--db", photo_folder)
    assert result.exit_code == 1 and "not an image" in result.stderr

    result = invoke("search", "--text", "a red car", "--db", photo_folder)
    assert result.exit_code == 1 and "text" in result.stderr

    result = invoke("search", photo_folder / "scene0.jpg", "--model", "resnet50")
    assert result.exit_code == 1 and "classic" in result.stderr

    result = invoke("index", photo_folder, "--model", "no-such-model", "--rebuild")
    assert result.exit_code == 1 and "unknown model" in result.stderr


def test_models_lists_classic_as_available() -> None:
    result = invoke("models", "--json")
    models = {m["name"]: m for m in json.loads(result.stdout)}
    assert models["classic"]["available"] is True
    assert {"dinov2-small", "clip-vit-b-32", "resnet50", "inception-v3", "convnext-tiny",
            "onnx:PATH"} <= set(models)


def test_grid_writes_one_sheet_per_image_with_neighbours(photo_folder: Path,
                                                         tmp_path: Path) -> None:
    invoke("index", photo_folder, "--model", "classic")
    out = tmp_path / "grids"
    result = invoke("grid", "--db", photo_folder, "--out", out, "-k", "4")
    assert result.exit_code == 0, result.output
    sheets = sorted(p.name for p in out.glob("*.jpg"))
    assert len(sheets) == 10 and "scene0.jpg" in sheets
    assert Image.open(out / "scene0.jpg").size == Image.open(out / "scene1.jpg").size
    result = invoke("grid", photo_folder / "scene0.jpg", "--out", tmp_path / "one", "-k", "24",
                    "--format", "png")
    assert [p.name for p in (tmp_path / "one").glob("*.png")] == ["scene0.png"]


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".lookalike" not in p.parts}


def test_sort_by_examples_moves_lookalikes_and_undo_restores(photo_folder: Path,
                                                             tmp_path: Path) -> None:
    invoke("index", photo_folder, "--model", "classic")
    before = _tree(photo_folder)
    examples = tmp_path / "examples"
    examples.mkdir()
    crop(scene(0), 0.9).save(examples / "zero.jpg")
    crop(scene(1), 0.9).save(examples / "one.jpg")
    dest = tmp_path / "sorted"
    args = ["sort", "--db", photo_folder, "--by-examples", examples, "--to", dest,
            "--threshold", "0.75"]
    plan = invoke(*args, "--dry-run", "--json")
    moves = json.loads(plan.stdout)["moves"]
    assert not dest.exists()  # a dry run touches nothing
    targets = {Path(d).relative_to(dest).as_posix() for _, d in moves}
    assert targets == {"folder_2_zero/scene0.jpg", "folder_2_zero/scene0-crop.jpg",
                       "folder_1_one/scene1.jpg", "folder_1_one/scene1-flip.png"}
    result = invoke(*args, "--move")
    assert result.exit_code == 0, result.output
    assert not (photo_folder / "scene0.jpg").exists()
    assert (dest / "folder_2_zero" / "scene0.jpg").read_bytes() == before["scene0.jpg"]
    assert len(_tree(photo_folder)) == len(before) - 4
    result = invoke("undo", "--db", photo_folder)
    assert result.exit_code == 0, result.output
    assert _tree(photo_folder) == before
    assert not any(p.is_file() for p in dest.rglob("*"))


def test_sizes_parse_in_powers_of_1024() -> None:
    from lookalike.cli import parse_size

    assert parse_size("6G") == 6 * 2**30
    assert parse_size("512m") == 512 * 2**20
    assert parse_size("1.5GB") == int(1.5 * 2**30)
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("2000") == 2000
    for bad in ("", "G", "six", "-1G"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_index_an_fsspec_url_needs_db_and_then_searches(remote_folder: str,
                                                        tmp_path: Path) -> None:
    refused = runner.invoke(app, ["index", remote_folder, "--model", "classic"])
    assert refused.exit_code != 0 and "--db" in refused.output
    db = tmp_path / "remote.lookalike"
    result = invoke("index", remote_folder, "--db", db, "--model", "classic", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["embed"]["embedded"] == 10
    query = tmp_path / "q.jpg"
    crop(scene(4)).save(query)
    result = invoke("search", query, "--db", db, "-k", "1", "--json")
    assert json.loads(result.stdout)[0]["results"][0]["path"] == "scene4.jpg"
    info = json.loads(invoke("info", "--db", db, "--json").stdout)
    assert info["root"] == remote_folder.replace(":///", "://")


def test_a_file_moved_by_hand_keeps_its_embedding(photo_folder: Path) -> None:
    assert invoke("index", photo_folder, "--model", "classic").exit_code == 0
    (photo_folder / "scene3.jpg").rename(photo_folder / "sub" / "renamed.jpg")
    result = invoke("index", photo_folder)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "0 new, 0 changed, 0 removed" in said
    assert "(1 found under a new name: not embedded again)" in said
    assert "embedded 0 images" in said


def test_index_preprocess_that_is_nothing_is_one_clear_line(photo_folder: Path) -> None:
    result = invoke("index", photo_folder, "--model", "classic", "--preprocess", "nope.json")
    assert result.exit_code == 1 and "Errno" not in result.output
    assert "--preprocess: not JSON, not a file, not SPEC=JSON: nope.json" in result.stderr
