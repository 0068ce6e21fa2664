"""Hostile: sort and undo with links among the duplicates, several runs, damaged journals and a
full disk. Each test fingerprints the user's files and checks that nothing was lost and that
every message says what to do next."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lookalike.act import sort
from lookalike.act.sort import (
    duplicate_assignments,
    execute_plan,
    list_journals,
    plan_sort,
)
from lookalike.cli import app
from tests.conftest import scene
from tests.hostile.trees import fingerprint

runner = CliRunner()
SKIP = (".lookalike",)


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def no_crash(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception)
    assert "Traceback" not in result.output


def mentions(text: str, *phrases: object) -> None:
    """Each phrase is in ``text``, whitespace aside: the console wraps long lines, and
    folds a path longer than a line."""
    flat = "".join(text.split())
    for phrase in phrases:
        assert "".join(str(phrase).split()) in flat, text


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Distinct scenes; photo.jpg with a relative link to it that sorts first, a hard link
    to it and a real byte copy: four names, two files."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(4):
        scene(seed).save(folder / f"scene{seed}.jpg", quality=90)
    scene(9).save(folder / "photo.jpg", quality=90)
    (folder / "a-link.jpg").symlink_to("photo.jpg")
    os.link(folder / "photo.jpg", folder / "c-hard.jpg")
    (folder / "b-copy.jpg").write_bytes((folder / "photo.jpg").read_bytes())
    assert invoke("index", folder, "--model", "classic").exit_code == 0
    return folder


def only_copies_moved(photos: Path, before: dict[str, str]) -> None:
    after = fingerprint(photos, skip=SKIP)
    assert {k: v for k, v in before.items() if k != "b-copy.jpg"} == after
    assert (photos / "a-link.jpg").resolve() == (photos / "photo.jpg")
    assert (photos / "a-link.jpg").read_bytes() == (photos / "photo.jpg").read_bytes()
    assert os.path.samefile(photos / "photo.jpg", photos / "c-hard.jpg")


# -- links are one file, never a duplicate pair -------------------------------------------------


def test_sort_duplicates_move_never_moves_a_links_target_or_the_link(photos: Path,
                                                                     tmp_path: Path) -> None:
    before = fingerprint(photos, skip=SKIP)
    dups = invoke("duplicates", "--db", photos, "--json")
    (group,) = json.loads(dups.stdout)["exact"]
    # one file under three names is one member: never a pair, never a link as keeper
    assert group["keeper"]["path"] == "c-hard.jpg"  # the file the other names point to
    assert sorted(m["path"] for m in group["members"]) == ["b-copy.jpg", "c-hard.jpg"]
    dest = tmp_path / "dups"
    result = invoke("sort", "--db", photos, "--by", "duplicates", "--to", dest, "--move")
    assert result.exit_code == 0, result.output
    only_copies_moved(photos, before)
    moved = [p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()]
    assert moved == ["duplicates_001_c-hard/b-copy.jpg"]  # the one real copy
    # Deleting the reviewed folder loses nothing: the file and both its names are intact.
    for path in dest.rglob("*.jpg"):
        path.unlink()
    assert (photos / "a-link.jpg").read_bytes() == (photos / "photo.jpg").read_bytes()


def test_a_link_and_its_target_alone_are_not_duplicates(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(3):
        scene(seed).save(folder / f"scene{seed}.jpg", quality=90)
    scene(9).save(folder / "z-photo.jpg")
    (folder / "a-link.jpg").symlink_to(folder / "z-photo.jpg")  # absolute link
    assert invoke("index", folder, "--model", "classic").exit_code == 0
    before = fingerprint(folder, skip=SKIP)
    result = invoke("sort", "--db", folder, "--by", "duplicates", "--to", tmp_path / "d",
                    "--move", "--dry-run", "--json")
    assert json.loads(result.stdout)["moves"] == []
    result = invoke("sort", "--db", folder, "--by", "duplicates", "--to", tmp_path / "d",
                    "--move")
    assert result.exit_code == 0, result.output
    assert fingerprint(folder, skip=SKIP) == before


def test_duplicate_assignments_keep_one_real_file_and_never_move_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"x" * 100)
    inside = tmp_path / "in"
    inside.mkdir()
    link = inside / "link.jpg"
    link.symlink_to(outside)
    first, second = inside / "copy1.jpg", inside / "copy2.jpg"
    first.write_bytes(b"x" * 100)
    second.write_bytes(b"x" * 100)
    hard = inside / "copy2-hard.jpg"
    os.link(second, hard)
    dangling = inside / "dangling.jpg"
    dangling.symlink_to(tmp_path / "gone.jpg")
    # The suggested keeper is a link whose file is outside the group: a real file stays too.
    moves = duplicate_assignments([("dups_1", [link, first, second, hard, dangling])])
    assert moves == {second: "dups_1", hard: "dups_1"}  # one file, both its names
    # A link to a member keeps that member where it is, whoever the keeper is.
    to_second = inside / "to-copy2.jpg"
    to_second.symlink_to("copy2.jpg")
    moves = duplicate_assignments([("dups_1", [first, second, to_second, hard])])
    assert moves == {}


# -- undo picks the run that changed something --------------------------------------------------


def test_undo_picks_the_last_run_that_changed_something(photos: Path, tmp_path: Path) -> None:
    before = fingerprint(photos, skip=SKIP)
    result = invoke("sort", "--db", photos, "--by", "clusters", "-k", "2", "--to",
                    tmp_path / "clusters")
    assert result.exit_code == 0, result.output
    result = invoke("sort", "--db", photos, "--by", "duplicates", "--to", tmp_path / "dups",
                    "--move")
    assert result.exit_code == 0, result.output
    assert not (photos / "b-copy.jpg").exists()
    # A third, concurrent sort finds its file taken by the others: it fails, changing nothing.
    journals = photos / ".lookalike" / "journals"
    gone = plan_sort({photos / "b-copy.jpg": "mine"}, tmp_path / "third", mode="move")
    assert not execute_plan(gone, journals).ok
    first, second, failed = list_journals(journals)

    result = invoke("undo", "--db", photos)
    assert result.exit_code == 0, result.output
    assert fingerprint(photos, skip=SKIP) == before  # b-copy.jpg is back
    mentions(result.output, second, "changed nothing", "lookalike undo")
    assert any((tmp_path / "clusters").rglob("*.jpg"))  # the run before stays sorted

    result = invoke("undo", "--db", photos)  # again: says so, and how to undo the one before
    assert result.exit_code == 0, result.output
    mentions(result.output, "already undone", f"lookalike undo {first}")
    assert any((tmp_path / "clusters").rglob("*.jpg"))

    result = invoke("undo", first)
    assert result.exit_code == 0, result.output
    assert not any(p.is_file() for p in (tmp_path / "clusters").rglob("*"))
    assert fingerprint(photos, skip=SKIP) == before


# -- damaged journals -----------------------------------------------------------------------------


def _moved(photos: Path, tmp_path: Path) -> Path:
    result = invoke("sort", "--db", photos, "--by", "duplicates", "--to", tmp_path / "dups",
                    "--move")
    assert result.exit_code == 0, result.output
    return list_journals(photos / ".lookalike" / "journals")[-1]


@pytest.mark.parametrize("damage", ["missing-keys", "not-a-record", "wrong-types", "garbage",
                                    "empty-start"])
def test_a_damaged_journal_is_refused_with_what_to_do(photos: Path, tmp_path: Path,
                                                      damage: str) -> None:
    journal = _moved(photos, tmp_path)
    lines = journal.read_text().splitlines(keepends=True)
    if damage == "missing-keys":
        lines = [json.dumps({"event": "intent", "op": 0}) + "\n" if '"intent"' in line
                 else line for line in lines]
    elif damage == "not-a-record":
        lines.insert(1, "[1, 2]\n")
    elif damage == "wrong-types":
        lines = [line.replace('"op": 0', '"op": "zero"') for line in lines]
    elif damage == "garbage":
        lines = ["\x00\x01 not json at all \xff\n"]
    else:
        lines = [json.dumps({"event": "start"}) + "\n"] + lines[1:]
    journal.write_text("".join(lines), encoding="latin-1")
    moved_state = fingerprint(photos, skip=SKIP)
    for args in (["undo", journal], ["undo", "--db", photos]):
        result = invoke(*args)
        no_crash(result)
        assert result.exit_code == 1, result.output
        mentions(result.stderr, journal, "nothing was changed", "lookalike undo JOURNAL",
                 "by hand")
        assert fingerprint(photos, skip=SKIP) == moved_state


def test_a_journal_cut_short_undoes_what_it_records_and_says_so(photos: Path,
                                                                tmp_path: Path) -> None:
    before = fingerprint(photos, skip=SKIP)
    journal = _moved(photos, tmp_path)
    data = journal.read_bytes()
    intent = data.index(b'"intent"')
    journal.write_bytes(data[:intent])  # cut inside the intent line: that step never started
    result = invoke("undo", journal)
    no_crash(result)
    mentions(result.output, "cut short", tmp_path / "dups")
    assert fingerprint(photos, skip=SKIP) != before  # the copy it did not record stays moved
    assert (tmp_path / "dups" / "duplicates_001_c-hard" / "b-copy.jpg").is_file()


def test_an_empty_journal_of_a_run_that_never_started_is_skipped(photos: Path,
                                                                 tmp_path: Path) -> None:
    before = fingerprint(photos, skip=SKIP)
    _moved(photos, tmp_path)
    journals = photos / ".lookalike" / "journals"
    (journals / "sort-99991231T000000.000000Z.jsonl").write_bytes(b"")  # newest, empty
    result = invoke("undo", "--db", photos)
    assert result.exit_code == 0, result.output
    assert fingerprint(photos, skip=SKIP) == before


# -- a full disk ------------------------------------------------------------------------------


def test_disk_full_while_copying_ends_saying_run_lookalike_undo(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = fingerprint(photos, skip=SKIP)
    real_write, calls = sort._write_chunk, [0]

    def fill_disk(fd: int, data: bytes) -> None:
        calls[0] += 1
        if calls[0] >= 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(fd, data)

    monkeypatch.setattr(sort, "_write_chunk", fill_disk)
    dest = tmp_path / "clusters"
    result = invoke("sort", "--db", photos, "--by", "clusters", "-k", "2", "--to", dest)
    no_crash(result)
    assert result.exit_code == 1
    mentions(result.stderr.split("failed:")[-1], "disk is full", "run lookalike undo")
    monkeypatch.undo()
    assert invoke("undo", "--db", photos).exit_code == 0
    assert not any(p.is_file() for p in dest.rglob("*"))
    assert fingerprint(photos, skip=SKIP) == before


def test_disk_full_while_journalling_stops_saying_run_lookalike_undo(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = fingerprint(photos, skip=SKIP)
    real_write, calls = sort._Journal.write, [0]

    def fill_disk(self: sort._Journal, **record: object) -> None:
        calls[0] += 1
        if calls[0] == 9:  # part way through the run
            os.write(self.fd, b'{"event": "do')  # and half a line on disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(self, **record)

    monkeypatch.setattr(sort._Journal, "write", fill_disk)
    dest = tmp_path / "clusters"
    result = invoke("sort", "--db", photos, "--by", "clusters", "-k", "2", "--to", dest,
                    "--move")
    no_crash(result)
    assert result.exit_code == 1
    mentions(result.stderr, "disk is full", "run lookalike undo")
    assert fingerprint(photos, skip=SKIP) != before  # some files were moved
    monkeypatch.undo()
    result = invoke("undo", "--db", photos)
    assert result.exit_code == 0, result.output
    assert fingerprint(photos, skip=SKIP) == before
    assert not any(p.is_file() for p in dest.rglob("*"))
    journal = list_journals(photos / ".lookalike" / "journals")[-1]
    for line in journal.read_text().splitlines()[1:]:  # undo's records start on a new line
        if "undo" in line:
            json.loads(line)
