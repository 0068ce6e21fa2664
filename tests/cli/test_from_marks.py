"""``lookalike sort --from-marks``: the review's discarded copies to quarantine, from the
command line, with --dry-run and lookalike undo."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

from typer.testing import CliRunner

from lookalike import Collection
from lookalike.cli import app
from lookalike.marks import MarkStore
from tests.act.test_quarantine import digest, mark, review_folder

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def marked_folder(tmp_path: Path) -> Path:
    """a0's copy in sub/ marked discard; a1 and its copy both marked discard."""
    root = review_folder(tmp_path / "photos")
    with Collection.open(root) as collection, closing(MarkStore(collection.directory)) as marks:
        mark(collection, marks, {"a0.jpg": "keep", "sub/a0-copy.jpg": "discard"})
        mark(collection, marks, {"a1.jpg": "discard", "a1-copy.jpg": "discard"})
    return root


def test_dry_run_prints_the_plan_and_moves_nothing(tmp_path: Path) -> None:
    root = marked_folder(tmp_path)
    quarantine = tmp_path / "photos-duplicates"
    size = (root / "sub" / "a0-copy.jpg").stat().st_size
    result = invoke("sort", "--from-marks", "--dry-run", "--db", root)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"1 file(s), {size / 1e3:.1f} kB to {quarantine}"
    assert lines[1].startswith("refused group ") and "every copy" in lines[1]
    assert f"move {root / 'sub' / 'a0-copy.jpg'} -> sub/a0-copy.jpg" in lines
    assert not quarantine.exists() and (root / "sub" / "a0-copy.jpg").exists()

    planned = json.loads(invoke("sort", "--from-marks", "--dry-run", "--json", "--db",
                                root).stdout)
    assert (planned["files"], planned["bytes"]) == (1, size)
    assert [sorted(g["paths"]) for g in planned["refused"]] == [["a1-copy.jpg", "a1.jpg"]]


def test_apply_then_undo_from_the_command_line(tmp_path: Path) -> None:
    root = marked_folder(tmp_path)
    before = {p.relative_to(root): digest(p) for p in root.rglob("*.jpg")}
    result = invoke("sort", "--from-marks", "--force", "--db", root)
    assert result.exit_code == 0, result.output
    assert "moved 3 file(s)" in result.stdout
    quarantine = tmp_path / "photos-duplicates"
    assert {p.relative_to(quarantine): digest(p) for p in quarantine.rglob("*.jpg")} == {
        path: before[path] for path in (Path("sub/a0-copy.jpg"), Path("a1.jpg"),
                                        Path("a1-copy.jpg"))}
    assert {p.relative_to(root) for p in root.rglob("*.jpg")} == {
        Path("a0.jpg"), Path("a2.jpg"), Path("a2-copy.jpg"), Path("a3.jpg")}
    with Collection.open(root) as collection:
        assert len(collection.files()) == len(before) - 3  # they left the collection

    undone = invoke("undo", "--db", root)
    assert undone.exit_code == 0, undone.output
    assert {p.relative_to(root): digest(p) for p in root.rglob("*.jpg")} == before
    assert not quarantine.exists()
    with Collection.open(root) as collection:
        assert len(collection.files()) == len(before)


def test_from_marks_takes_no_other_way_of_sorting(tmp_path: Path) -> None:
    root = marked_folder(tmp_path)
    result = invoke("sort", "--from-marks", "--by", "duplicates", "--db", root)
    assert result.exit_code == 1 and "takes no --by" in result.stderr
