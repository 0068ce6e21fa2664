"""Hostile: the report and contact-sheet writers never touch a file lookalike did not write.

Each test plants a user's files where lookalike is told to write, fingerprints them, runs
the command and checks that not a byte changed and that the refusal says what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from lookalike.act.grids import SHEET_MARK, is_contact_sheet
from lookalike.cli import app
from lookalike.ownership import MARKER
from tests.conftest import crop, scene
from tests.hostile.trees import fingerprint

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def assert_refused(result, *words: str) -> None:
    """Exit code 1, one error message (after any progress bars) naming what to do, no
    traceback. The console wraps long lines, so the words are looked for unwrapped."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert "Traceback" not in result.output
    assert result.stderr.count("error:") == 1, result.stderr
    text = " ".join(result.stderr[result.stderr.index("error:"):].split())
    for word in words:
        assert word in text, result.stderr


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for seed in range(6):
        scene(seed).save(folder / f"scene{seed}.jpg", quality=90)
    crop(scene(0)).save(folder / "scene0-crop.jpg", quality=90)
    (folder / "scene1-copy.jpg").write_bytes((folder / "scene1.jpg").read_bytes())
    assert runner.invoke(app, ["index", str(folder), "--model", "classic"]).exit_code == 0
    return folder


def users_photos(folder: Path) -> None:
    """What a user keeps in a folder they then name as the output by mistake."""
    (folder / "thumbs" / "holiday").mkdir(parents=True)
    for seed in range(3):
        scene(10 + seed).save(folder / "thumbs" / "holiday" / f"{seed}.jpg")
    scene(20).save(folder / "thumbs" / "0.jpg")  # the name report's first thumbnail takes
    (folder / "index.html").write_text("<h1>my holiday page</h1>")


# -- report -----------------------------------------------------------------------------------


def test_report_refuses_a_users_folder_and_changes_nothing(photos: Path, tmp_path: Path) -> None:
    rep = tmp_path / "rep"
    users_photos(rep)
    before = fingerprint(rep)
    result = invoke("report", "--db", photos, "--out", rep, "-k", "2")
    assert_refused(result, str(rep), "not created by lookalike", "choose a new or empty folder")
    assert fingerprint(rep) == before
    assert not (rep / MARKER).exists()


def test_report_reruns_into_its_own_folder_and_spares_the_users_additions(
    photos: Path, tmp_path: Path
) -> None:
    rep = tmp_path / "rep"
    assert invoke("report", "--db", photos, "--out", rep, "-k", "2").exit_code == 0
    thumbs = {p.name for p in (rep / "thumbs").iterdir()}
    assert thumbs and (rep / "index.html").is_file()
    # The user saves their own files into the report folder...
    (rep / "notes.txt").write_text("my notes")
    (rep / "thumbs" / "holiday").mkdir()
    scene(30).save(rep / "thumbs" / "holiday" / "mine.jpg")
    # ...and a thumbnail from an earlier run is no longer used (it was listed as ours).
    state = json.loads((rep / MARKER).read_text())
    state["files"].append("thumbs/999.jpg")
    (rep / MARKER).write_text(json.dumps(state))
    (rep / "thumbs" / "999.jpg").write_bytes(b"stale thumbnail")
    users = fingerprint(rep, skip=())
    users = {k: v for k, v in users.items() if k in ("notes.txt", "thumbs/holiday/mine.jpg")}

    result = invoke("report", "--db", photos, "--out", rep, "-k", "2")
    assert result.exit_code == 0, result.output
    after = fingerprint(rep)
    assert {k: after[k] for k in users} == users
    assert not (rep / "thumbs" / "999.jpg").exists()
    assert {p.name for p in (rep / "thumbs").iterdir()} == thumbs | {"holiday"}
    assert "thumbs/999.jpg" not in json.loads((rep / MARKER).read_text())["files"]


def test_report_refuses_a_file_a_user_put_where_a_new_thumbnail_goes(
    photos: Path, tmp_path: Path
) -> None:
    rep = tmp_path / "rep"
    assert invoke("report", "--db", photos, "--out", rep, "-k", "2").exit_code == 0
    state = json.loads((rep / MARKER).read_text())
    first = sorted(name for name in state["files"] if name.startswith("thumbs/"))[0]
    state["files"].remove(first)  # as if that thumbnail were new in this run
    (rep / MARKER).write_text(json.dumps(state))
    scene(40).save(rep / first)  # and the user's file sits at its name
    before = fingerprint(rep)
    result = invoke("report", "--db", photos, "--out", rep, "-k", "2")
    assert_refused(result, "was not written by lookalike", "move it out")
    assert fingerprint(rep) == before


def test_report_never_writes_through_a_link_the_user_put_in_its_folder(
    photos: Path, tmp_path: Path
) -> None:
    rep = tmp_path / "rep"
    assert invoke("report", "--db", photos, "--out", rep, "-k", "2").exit_code == 0
    names = {p.name for p in (rep / "thumbs").iterdir()}
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in names:  # same names as lookalike's thumbnails
        scene(50).save(mine / name)
    before = fingerprint(mine)
    for name in names:
        (rep / "thumbs" / name).unlink()
    (rep / "thumbs").rmdir()
    (rep / "thumbs").symlink_to(mine, target_is_directory=True)
    result = invoke("report", "--db", photos, "--out", rep, "-k", "2")
    assert_refused(result, "link")
    assert fingerprint(mine) == before


# -- folders of contact sheets -----------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["grid", "--out"],
    ["duplicates", "--grid"],
    ["groups", "--threshold", "0.8", "--grid"],
    ["cluster", "-k", "2", "--grid"],
])
def test_sheet_folders_refuse_a_users_folder(photos: Path, tmp_path: Path,
                                             command: list[str]) -> None:
    out = tmp_path / "sheets"
    out.mkdir()
    for name in ("scene0.png", "0001-exact.png", "cluster-0000.png", "holiday.png"):
        scene(60).save(out / name)
    before = fingerprint(out)
    result = invoke(*command, out, "--db", photos)
    assert_refused(result, "not created by lookalike", "choose a new or empty folder")
    assert fingerprint(out) == before


def test_a_search_folder_of_queries_refuses_a_users_sheet_folder(photos: Path,
                                                                 tmp_path: Path) -> None:
    queries = tmp_path / "queries"
    queries.mkdir()
    crop(scene(2)).save(queries / "a.jpg")
    crop(scene(3)).save(queries / "b.jpg")
    out = tmp_path / "sheets"
    out.mkdir()
    scene(61).save(out / "0000-a.png")
    before = fingerprint(out)
    result = invoke("search", queries, "--db", photos, "-k", "2", "--grid", out)
    assert_refused(result, "not created by lookalike")
    assert fingerprint(out) == before


def test_grid_reruns_into_its_own_folder_and_spares_the_users_additions(
    photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "grids"
    assert invoke("grid", "--db", photos, "--out", out, "-k", "3").exit_code == 0
    sheets = sorted(p.name for p in out.iterdir() if p.name not in (MARKER, "index.html"))
    assert len(sheets) == 8 and all(is_contact_sheet(out / name) for name in sheets)
    scene(62).save(out / "mine.jpg")
    mine = fingerprint(out)["mine.jpg"]
    result = invoke("grid", photos / "scene0.jpg", "--db", photos, "--out", out, "-k", "3")
    assert result.exit_code == 0, result.output
    # The folder holds this run's sheet and index, and the user's file; the earlier sheets
    # were ours.
    assert sorted(p.name for p in out.iterdir() if p.name != MARKER) == [
        "index.html", "mine.jpg", "scene0.jpg"]
    assert fingerprint(out)["mine.jpg"] == mine
    page = (out / "index.html").read_text()
    assert 'href="scene0.jpg"' in page and "mine.jpg" not in page


# -- single-file sheets the user names ----------------------------------------------------------


@pytest.mark.parametrize("name", ["out.png", "out.jpg"])
def test_search_grid_never_overwrites_a_users_file(photos: Path, tmp_path: Path,
                                                  name: str) -> None:
    target = tmp_path / name
    scene(70).save(target)  # the user's picture, which happens to have that name
    before = fingerprint(tmp_path)
    result = invoke("search", photos / "scene0.jpg", "--db", photos, "-k", "2", "--grid", target)
    assert_refused(result, str(target), "not written by lookalike", "choose another name")
    assert fingerprint(tmp_path) == before


def test_outliers_grid_never_overwrites_a_users_file(photos: Path, tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    target.write_bytes(b"not even an image, but the user's")
    before = fingerprint(tmp_path)
    result = invoke("outliers", "--db", photos, "--fraction", "0.5", "--grid", target)
    assert_refused(result, "not written by lookalike")
    assert fingerprint(tmp_path) == before


@pytest.mark.parametrize("name", ["out.png", "out.jpeg"])
def test_a_sheet_lookalike_wrote_is_marked_and_replaced_on_a_rerun(photos: Path, tmp_path: Path,
                                                                   name: str) -> None:
    target = tmp_path / name
    for query in ("scene0.jpg", "scene1.jpg"):
        result = invoke("search", photos / query, "--db", photos, "-k", "2", "--grid", target)
        assert result.exit_code == 0, result.output
        assert is_contact_sheet(target)
    with Image.open(target) as sheet:
        assert sheet.format == ("PNG" if name.endswith(".png") else "JPEG")
    assert sorted(os.listdir(tmp_path)) == [name]  # no temporary left behind
    assert SHEET_MARK == "lookalike contact sheet"


def test_a_link_at_the_sheet_path_is_not_followed(photos: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious.png"
    scene(71).save(precious)
    (tmp_path / "out.png").symlink_to(precious)
    before = fingerprint(tmp_path)
    result = invoke("search", photos / "scene0.jpg", "--db", photos, "-k", "2",
                    "--grid", tmp_path / "out.png")
    assert_refused(result, "not written by lookalike")
    assert fingerprint(tmp_path) == before
