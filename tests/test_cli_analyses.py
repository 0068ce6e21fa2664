"""The analysis commands end to end on a generated collection with planted structure."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance
from typer.testing import CliRunner

from lookalike import Collection
from lookalike.cli import app
from lookalike.duplicates_job import load_calibration
from tests.conftest import crop, scene

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 distinct scenes; scene 0 has a crop and a brightened copy, scene 1 a half-size PNG,
    scene 2 an exact byte copy; a flat grey image is the odd one out."""
    folder = tmp_path_factory.mktemp("planted")
    for seed in range(12):
        scene(seed, (400, 300)).save(folder / f"s{seed:02d}.jpg", quality=92)
    crop(scene(0, (400, 300)), 0.85).save(folder / "s00-crop.jpg", quality=85)
    ImageEnhance.Brightness(scene(0, (400, 300))).enhance(1.2).save(folder / "s00-bright.jpg")
    scene(1, (400, 300)).resize((200, 150)).save(folder / "s01-small.png")
    (folder / "s02-copy.jpg").write_bytes((folder / "s02.jpg").read_bytes())
    Image.new("RGB", (300, 300), (128, 128, 128)).save(folder / "grey.png")
    assert invoke("index", folder, "--model", "classic").exit_code == 0
    return folder


def test_duplicates_json_finds_planted_groups_and_keepers(planted: Path, tmp_path: Path) -> None:
    result = invoke("duplicates", "--db", planted, "--json", "--grid", tmp_path / "sheets")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    exact = [{m["path"] for m in g["members"]} for g in report["exact"]]
    near = [{m["path"] for m in g["members"]} for g in report["near"]]
    assert {"s02.jpg", "s02-copy.jpg"} in exact
    assert {"s00.jpg", "s00-crop.jpg", "s00-bright.jpg"} in near
    assert {"s01.jpg", "s01-small.png"} in near
    everything = set().union(*near, *exact)
    assert not everything & {f"s{seed:02d}.jpg" for seed in range(3, 12)}  # no look-alikes
    keeper = next(g for g in report["near"] if "s00-crop.jpg" in {m["path"] for m in
                                                                  g["members"]})["keeper"]
    assert keeper["path"] in {"s00.jpg", "s00-bright.jpg"}  # full size beats the crop
    assert len(list((tmp_path / "sheets").glob("*.png"))) == len(exact) + len(near)


def test_duplicates_csv_has_one_row_per_member(planted: Path) -> None:
    result = invoke("duplicates", "--db", planted, "--csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {"s00-crop.jpg", "s01-small.png", "s02-copy.jpg"} <= {r["path"] for r in rows}
    assert all(r["keeper"] in ("0", "1") for r in rows)


def test_groups_cluster_outliers(planted: Path) -> None:
    found = json.loads(invoke("groups", "--db", planted, "--threshold", "0.9", "--json").stdout)
    assert found["threshold"] == 0.9 and found["threshold_source"] == "given"
    members = [{m["path"] for m in g["members"]} for g in found["groups"]]
    assert any({"s00.jpg", "s00-crop.jpg"} <= group for group in members)
    clusters = json.loads(invoke("cluster", "--db", planted, "-k", "3", "--json").stdout)
    assert clusters["k"] == 3 and sum(c["size"] for c in clusters["clusters"]) == 17
    label = {image["path"]: image["cluster"] for image in clusters["images"]}
    assert label["s02.jpg"] == label["s02-copy.jpg"]
    outliers = json.loads(invoke("outliers", "--db", planted, "--fraction", "0.1",
                                 "--json").stdout)
    assert outliers[0]["path"] == "grey.png"


def test_groups_default_to_the_calibrated_near_duplicate_threshold(planted: Path) -> None:
    result = invoke("groups", "--db", planted, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    with Collection.open(planted) as collection:
        calibration = load_calibration(collection)  # measured by groups, or by duplicates
    assert calibration is not None
    assert found["threshold"] == calibration["near_threshold"]
    assert found["threshold_source"] == "calibrated" and found["model"] == "classic"
    members = [{m["path"] for m in g["members"]} for g in found["groups"]]
    assert any({"s00.jpg", "s00-crop.jpg"} <= group for group in members)
    assert any({"s02.jpg", "s02-copy.jpg"} <= group for group in members)
    copied = {"s00", "s01", "s02"}
    for group in members:  # each group is a planted set, not look-alikes linked together
        scenes = {path[:3] for path in group}
        assert len(scenes & copied) == 1 and len(scenes - copied) <= 1, group
    # (colour histograms let one look-alike scene join; test_groups_default.py shows the
    # default model keeping distinct scenes apart)
    table = invoke("groups", "--db", planted)
    assert table.exit_code == 0, table.output
    first = table.stdout.splitlines()[0]
    assert first == (f"threshold {calibration['near_threshold']:.3f} (calibrated for classic "
                     "on this collection; --threshold to change)")
    assert f"groups at cosine >= {calibration['near_threshold']:.3f}" in table.stdout
    given = invoke("groups", "--db", planted, "--threshold", "0.95")
    assert given.stdout.splitlines()[0] == "threshold 0.95 (--threshold)"


@pytest.mark.parametrize("value, message", [
    ("0", "must be above 0 and at most 1, not 0"),
    ("-0.5", "must be above 0 and at most 1, not -0.5"),
    ("1.5", "Input should be less than or equal to 1"),
])
def test_groups_refuses_a_threshold_out_of_range(planted: Path, value: str,
                                                 message: str) -> None:
    result = invoke("groups", "--db", planted, "--threshold", value)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())  # the message box may wrap it
    assert "Traceback" not in result.output


def test_report_is_a_self_contained_folder(planted: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = invoke("report", "--db", planted, "--out", out, "-k", "3")
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert "s00-crop.jpg" in page and "http://" not in page and "https://" not in page
    assert len(list((out / "thumbs").glob("*.jpg"))) == 17


def test_sort_by_clusters_copies_every_image_once(planted: Path, tmp_path: Path) -> None:
    dest = tmp_path / "sorted"
    result = invoke("sort", "--db", planted, "--by", "clusters", "-k", "3", "--to", dest)
    assert result.exit_code == 0, result.output
    copied = sorted(p.name for p in dest.rglob("*") if p.is_file())
    originals = sorted(p.name for p in planted.iterdir() if p.is_file())
    assert copied == originals and len({p.parent.name for p in dest.rglob("*.jpg")}) <= 3
    assert invoke("undo", "--db", planted).exit_code == 0
    assert not any(p.is_file() for p in dest.rglob("*"))


def test_report_and_sort_by_groups_use_the_groups_default(planted: Path, tmp_path: Path) -> None:
    """report and sort --by groups group exactly as lookalike groups does by default."""
    found = json.loads(invoke("groups", "--db", planted, "--json").stdout)
    expected = sorted(sorted(m["path"] for m in g["members"]) for g in found["groups"])
    dest = tmp_path / "by-groups"
    result = invoke("sort", "--db", planted, "--by", "groups", "--to", dest, "--dry-run",
                    "--json")
    assert result.exit_code == 0, result.output
    folders: dict[str, list[str]] = {}
    for source, destination in json.loads(result.stdout)["moves"]:
        folders.setdefault(Path(destination).parent.name, []).append(Path(source).name)
    assert sorted(sorted(names) for names in folders.values()) == expected
    out = tmp_path / "report"
    assert invoke("report", "--db", planted, "--out", out, "-k", "3").exit_code == 0
    page = (out / "index.html").read_text()
    assert f"threshold {found['threshold']:.3f} (calibrated for classic" in page


def test_cluster_auto_says_how_it_chose_k_and_defines_low_confidence(planted: Path) -> None:
    result = invoke("cluster", "--db", planted, "--json")
    found = json.loads(result.stdout)
    assert found["k_chosen"].startswith(f"k = {found['k']}: the highest mean silhouette")
    assert found["low_confidence_margin"] == 0.02
    text = " ".join(invoke("cluster", "--db", planted).output.split())
    assert f"k = {found['k']}: the highest mean silhouette" in text
    assert "low-confidence: won its cluster by a margin under 0.02" in text
    fixed = json.loads(invoke("cluster", "--db", planted, "-k", "3", "--json").stdout)
    assert fixed["k_chosen"] is None


def test_groups_cluster_outliers_csv_are_the_json_as_rows(planted: Path) -> None:
    """--csv writes the same result as --json, one row per file."""
    def csv_rows(*args: object) -> list[dict[str, str]]:
        result = invoke(*args, "--db", planted, "--csv")
        assert result.exit_code == 0, result.output
        return list(csv.DictReader(io.StringIO(result.stdout)))

    found = json.loads(invoke("groups", "--db", planted, "--threshold", "0.9", "--json").stdout)
    rows = csv_rows("groups", "--threshold", "0.9")
    assert [(int(r["group"]), int(r["id"]), r["path"]) for r in rows] == [
        (n, m["id"], m["path"]) for n, g in enumerate(found["groups"], start=1)
        for m in g["members"]]
    assert [r["path"] for r in rows if r["medoid"] == "1"] == [
        g["medoid"]["path"] for g in found["groups"]]
    clusters = json.loads(invoke("cluster", "--db", planted, "-k", "3", "--json").stdout)
    assert [{**r, "id": int(r["id"]), "cluster": int(r["cluster"]),
             "confidence": float(r["confidence"])} for r in csv_rows("cluster", "-k", "3")
            ] == clusters["images"]
    top = json.loads(invoke("outliers", "--db", planted, "--fraction", "0.2", "--json").stdout)
    rows = csv_rows("outliers", "--fraction", "0.2")
    assert len(rows) == len(top) == 4 and rows[0]["path"] == "grey.png"
    assert [(int(r["rank"]), int(r["id"]), r["path"], float(r["score"])) for r in rows] == [
        (o["rank"], o["id"], o["path"], o["score"]) for o in top]
