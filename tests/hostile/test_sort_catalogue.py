"""Hostile: after ``sort --move`` the collection names the files where they are, and after
``undo`` where they were; a copy into the folder is refused; a kill between the moves and
the catalogue update ends right after the next ``index``. Every test fingerprints the
user's files: nothing changes beyond the planned moves."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lookalike import Collection
from lookalike.act.sort import list_journals
from lookalike.cli import app
from tests.conftest import scene
from tests.hostile.trees import fingerprint

runner = CliRunner()
SKIP = (".lookalike",)
REPO = Path(__file__).resolve().parents[2]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def mentions(text: str, *phrases: object) -> None:
    flat = "".join(text.split())
    for phrase in phrases:
        assert "".join(str(phrase).split()) in flat, text


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "trip").mkdir(parents=True)
    for seed in range(6):
        scene(seed).save(folder / ("trip" if seed % 2 else ".") / f"scene{seed}.jpg",
                         quality=90)
    assert invoke("index", folder, "--model", "classic").exit_code == 0
    return folder


def catalogue(folder: Path) -> dict[int, tuple[str, bytes]]:
    """File id -> (catalogue path, its embedding's bytes)."""
    with Collection.open(folder) as collection:
        file_ids, vectors = collection.vectors(raw=True)
        paths = dict(zip(file_ids.tolist(), collection.paths(file_ids)))
        return {int(i): (paths[int(i)], v.tobytes()) for i, v in zip(file_ids, vectors)}


def ok_count(folder: Path) -> int:
    info = json.loads(invoke("info", "--db", folder, "--json").stdout)
    return info["counts"].get("ok", 0)


def searched(folder: Path, query: str) -> list[str]:
    """What a search by the image at ``query`` returns, the image itself included."""
    with Collection.open(folder) as collection:
        return sorted([query, *(hit.path for hit in collection.search(folder / query, k=10))])


def moved_only(before: dict[str, str], after: dict[str, str], under: str) -> None:
    """The same files, each now under ``under``."""
    assert sorted(before.values()) == sorted(after.values())
    assert all(path.startswith(under) for path in after)


def test_move_inside_the_folder_renames_rows_and_undo_renames_them_back(photos: Path
                                                                          ) -> None:
    before, rows = fingerprint(photos, skip=SKIP), catalogue(photos)
    result = invoke("sort", "--db", photos, "--by", "clusters", "-k", "2",
                    "--to", photos / "sorted", "--move")
    assert result.exit_code == 0, result.output
    mentions(result.output, "6 file(s) renamed in its catalogue (embeddings kept)")
    after = fingerprint(photos, skip=SKIP)
    moved_only(before, after, "sorted/")
    now = catalogue(photos)
    assert now.keys() == rows.keys()  # same ids, same vectors, the new paths
    assert all(now[i][1] == rows[i][1] for i in rows)
    assert sorted(path for path, _ in now.values()) == sorted(after)
    assert ok_count(photos) == 6
    assert searched(photos, next(iter(after))) == sorted(after)  # existing files only

    assert invoke("undo", "--db", photos).exit_code == 0
    assert fingerprint(photos, skip=SKIP) == before
    assert catalogue(photos) == rows
    collection, report = Collection.index_folder(photos, model="classic")
    collection.close()
    assert (report.changes.added, report.changes.removed) == (0, 0)


def test_move_out_of_the_folder_leaves_the_collection_and_undo_brings_it_back(
        photos: Path, tmp_path: Path) -> None:
    before, rows = fingerprint(photos, skip=SKIP), catalogue(photos)
    out = tmp_path / "out"
    result = invoke("sort", "--db", photos, "--by", "clusters", "-k", "2", "--to", out,
                    "--move")
    assert result.exit_code == 0, result.output
    mentions(result.output, "6 files left the collection's folder: they are no longer indexed")
    assert fingerprint(photos, skip=SKIP) == {}
    assert sorted(fingerprint(out).values()) == sorted(before.values())
    assert ok_count(photos) == 0 and catalogue(photos) == {}

    result = invoke("undo", "--db", photos)
    assert result.exit_code == 0, result.output
    mentions(result.output, "6 file(s) came back into the collection's folder")
    assert fingerprint(photos, skip=SKIP) == before
    assert catalogue(photos) == rows  # same ids, same embeddings: nothing embedded again
    assert ok_count(photos) == 6
    assert searched(photos, "scene0.jpg") == sorted(before)


def test_after_a_partial_move_out_search_finds_only_files_that_are_there(
        photos: Path, tmp_path: Path) -> None:
    (photos / "copy.jpg").write_bytes((photos / "scene0.jpg").read_bytes())
    Collection.index_folder(photos, model="classic")[0].close()
    result = invoke("sort", "--db", photos, "--by", "duplicates", "--to", tmp_path / "out",
                    "--move")
    assert result.exit_code == 0, result.output
    mentions(result.output, "1 files left the collection's folder")
    staying = sorted(fingerprint(photos, skip=SKIP))
    assert len(staying) == 6 and ok_count(photos) == 6
    assert searched(photos, staying[0]) == staying


@pytest.mark.parametrize("mode", ["--copy", "--symlink", None])
def test_a_copy_or_link_into_the_folder_is_refused_before_anything_is_written(
        photos: Path, mode: str | None) -> None:
    before, rows = fingerprint(photos, skip=SKIP), catalogue(photos)
    for extra in ([], ["--dry-run"]):
        result = invoke("sort", "--db", photos, "--by", "clusters", "-k", "2",
                        "--to", photos / "sorted", *([mode] if mode else []), *extra)
        assert result.exit_code != 0
        mentions(result.output, "would index every sorted image twice", "use --move")
    assert fingerprint(photos, skip=SKIP) == before
    assert not (photos / "sorted").exists()
    assert list_journals(photos / ".lookalike" / "journals") == []
    assert catalogue(photos) == rows


def test_the_collections_own_folder_is_refused_as_a_destination(photos: Path) -> None:
    before = fingerprint(photos, skip=SKIP)
    result = invoke("sort", "--db", photos, "--by", "clusters", "-k", "2",
                    "--to", photos / ".lookalike" / "sorted", "--move")
    assert result.exit_code != 0
    mentions(result.output, "inside the collection's own folder")
    assert fingerprint(photos, skip=SKIP) == before


_KILLED_AT_THE_SEAM = """
import os, signal, sys
from lookalike.act import follow
from lookalike.cli import app
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
follow.follow_sort = follow.follow_undo = die
app(sys.argv[1:])
"""


def killed(*args: object) -> None:
    """Run the CLI in a process that is killed -9 between the moves and the catalogue."""
    gc.collect()  # the in-process CLI runs leave their stores (and writer lock) to the GC
    process = subprocess.run([sys.executable, "-c", _KILLED_AT_THE_SEAM, *map(str, args)],
                             cwd=REPO, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert process.returncode == -signal.SIGKILL, process.stderr


@pytest.mark.slow
def test_a_kill_between_the_moves_and_the_catalogue_ends_right_after_index(
        photos: Path) -> None:
    before, rows = fingerprint(photos, skip=SKIP), catalogue(photos)
    killed("sort", "--db", photos, "--by", "clusters", "-k", "2", "--to", photos / "sorted",
           "--move")
    after = fingerprint(photos, skip=SKIP)
    moved_only(before, after, "sorted/")  # the moves were done; the catalogue lags
    assert sorted(path for path, _ in catalogue(photos).values()) == sorted(before)

    collection, report = Collection.index_folder(photos, model="classic")  # lock died too
    collection.close()
    assert (report.changes.moved, report.changes.added, report.changes.removed) == (6, 0, 0)
    now = catalogue(photos)
    assert now.keys() == rows.keys() and all(now[i][1] == rows[i][1] for i in rows)
    assert sorted(path for path, _ in now.values()) == sorted(after)

    killed("undo", "--db", photos)  # and again on the way back
    assert fingerprint(photos, skip=SKIP) == before
    Collection.index_folder(photos, model="classic")[0].close()
    assert catalogue(photos) == rows
