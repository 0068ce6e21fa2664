"""Sorting files into folders loses nothing: real files, injected faults, and real kill -9s.

Every test compares full snapshots of the tree (relative paths, content hashes, link targets
and folders) before and after; "lost" means a content hash that was there and is not.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lookalike.act import sort
from lookalike.act.sort import (
    TEMP_PREFIX,
    SortError,
    SortPlan,
    describe_plan,
    execute_plan,
    list_journals,
    plan_sort,
    recover,
    safe_folder_name,
    undo,
)

REPO = Path(__file__).resolve().parents[2]
ODD_NAME = os.fsdecode(b"caf\xe9 (latin-1).jpg")  # not UTF-8: must survive the journal


# -- helpers ----------------------------------------------------------------------------------


def make_tree(root: Path, count: int = 12) -> dict[Path, str]:
    """``root/src/{a,b}`` with ``count`` files of distinct content, pairs of them sharing a
    name and a cluster, one name not UTF-8, and a pre-existing
    ``root/dest/cluster_000/IMG_0003.jpg``; returns file -> cluster label."""
    assignments: dict[Path, str] = {}
    for i in range(count):
        folder = root / "src" / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (ODD_NAME if i == 5 else f"IMG_{i // 2:04d}.jpg")
        path.write_bytes(_content(i))
        assignments[path] = f"cluster_{i // 2 % 3:03d}"
    existing = root / "dest" / "cluster_000" / "IMG_0003.jpg"
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"already here, not ours")
    return assignments


def _content(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest() * (1 + i * 37 % 200)


def snapshot(root: Path) -> dict[str, tuple[str, ...]]:
    """Relative path -> ("dir",) | ("file", blake2b) | ("link", target)."""
    state: dict[str, tuple[str, ...]] = {}
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        for name in dirs + files:
            path = base / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                state[key] = ("link", os.readlink(path))
            elif path.is_dir():
                state[key] = ("dir",)
            else:
                state[key] = ("file", hashlib.blake2b(path.read_bytes()).hexdigest())
    return state


def temp_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.name.startswith(TEMP_PREFIX)]


def where_contents_are(root: Path) -> dict[bytes, list[Path]]:
    """Content -> the regular files (not links) holding it."""
    found: dict[bytes, list[Path]] = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            found.setdefault(path.read_bytes(), []).append(path)
    return found


def assert_nothing_lost(plan: SortPlan, contents: dict[Path, bytes], root: Path,
                        exactly_once: bool, one_name: bool = False) -> None:
    """Each original's content is at its source or its destination. ``exactly_once``: in one
    file (an instant's second hard link is the same file); ``one_name``: under one name."""
    found = where_contents_are(root)
    for move in plan.moves:
        paths = found.get(contents[move.source], [])
        assert {move.source, move.destination} & set(paths), f"lost {move.source}"
        inodes = {(path.stat().st_dev, path.stat().st_ino) for path in paths}
        if exactly_once:
            assert len(inodes) == 1, f"{move.source} exists as {paths}"
        if one_name:
            assert len(paths) == 1, f"{move.source} exists as {paths}"


# -- planning ---------------------------------------------------------------------------------


def test_plan_suffixes_collisions_and_never_targets_existing_files(tmp_path: Path) -> None:
    assignments = make_tree(tmp_path)
    before = snapshot(tmp_path)
    plan = plan_sort(assignments, tmp_path / "dest", mode="move")
    assert snapshot(tmp_path) == before  # planning touches nothing
    destinations = [move.destination for move in plan.moves]
    assert len(set(destinations)) == len(destinations) == len(assignments)
    assert not any(os.path.lexists(path) for path in destinations)
    names = {p.name for p in destinations if p.parent.name == "cluster_000"}
    # two sources are called IMG_0000.jpg; IMG_0003.jpg, also twice, was on disk already
    assert names == {"IMG_0000.jpg", "IMG_0000 (1).jpg", "IMG_0003 (1).jpg", "IMG_0003 (2).jpg"}
    assert all(move.source.is_absolute() and move.destination.is_absolute()
               for move in plan.moves)
    assert {move.destination.parent.name for move in plan.moves} == {
        "cluster_000", "cluster_001", "cluster_002"}


def test_plan_sanitises_folder_names_and_keeps_them_apart(tmp_path: Path) -> None:
    assert safe_folder_name("../../etc") == "_.._etc"
    assert safe_folder_name("a/b") == "a_b"
    assert safe_folder_name(" .. ") == "unnamed"
    assert safe_folder_name("con") == "_con"
    assert safe_folder_name('cluster:1?*"') == "cluster_1___"
    assert len(safe_folder_name("x" * 400).encode()) <= 200
    files = []
    for i in range(4):
        files.append(tmp_path / f"f{i}.txt")
        files[-1].write_text(str(i))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "group_1").write_text("a file where a folder would go")
    labels = ["a_b", "a/b", "group_1", "../escape"]
    plan = plan_sort(dict(zip(files, labels)), tmp_path / "out")
    folders = {move.source.name: move.destination.parent for move in plan.moves}
    assert folders["f0.txt"].name == "a_b"  # already safe: keeps its name
    assert folders["f1.txt"].name == "a_b (1)"
    assert folders["f2.txt"].name == "group_1 (1)"  # a file holds "group_1"
    assert all(folder.parent == tmp_path / "out" for folder in folders.values())
    with pytest.raises(SortError, match="mode"):
        plan_sort({}, tmp_path, mode="teleport")


def test_plan_trims_long_names_to_fit_a_suffix(tmp_path: Path) -> None:
    name = "n" * 251 + ".jpg"
    source = tmp_path / "src" / name
    source.parent.mkdir()
    source.write_bytes(b"1")
    (tmp_path / "dest" / "g").mkdir(parents=True)
    (tmp_path / "dest" / "g" / name).write_bytes(b"2")
    (destination,) = [move.destination for move in plan_sort({source: "g"}, tmp_path / "dest")
                      .moves]
    assert destination.name.endswith(" (1).jpg") and len(destination.name.encode()) <= 255


def test_describe_plan_says_what_would_happen(tmp_path: Path) -> None:
    plan = plan_sort(make_tree(tmp_path), tmp_path / "dest")
    lines = describe_plan(plan)
    assert lines[0].startswith("would copy 12 file(s) into 3 folder(s)")
    assert "renamed" in lines[0] and len(lines) == 13
    assert any("-> cluster_000/IMG_0003 (1).jpg  (renamed: name taken)" in line
               for line in lines)
    assert describe_plan(SortPlan([], "move")) == ["nothing to sort"]


def test_a_second_run_leaves_sorted_files_where_they_are(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    assignments = make_tree(root, 4)
    result = execute_plan(plan_sort(assignments, root / "dest", mode="move"), tmp_path / "j")
    again = {move.destination: move.destination.parent.name for move in result.done}
    plan = plan_sort(again, root / "dest", mode="move")
    assert not plan.moves and sorted(plan.in_place) == sorted(again)
    assert describe_plan(plan) == ["nothing to sort (4 already in place)"]


# -- acting and undoing -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["copy", "move", "symlink"])
def test_each_mode_builds_the_tree_and_undo_restores_it(tmp_path: Path, mode: str) -> None:
    root, journals = tmp_path / "tree", tmp_path / "journals"
    assignments = make_tree(root)
    contents = {path: path.read_bytes() for path in assignments}
    before = snapshot(root)
    plan = plan_sort(assignments, root / "dest", mode=mode)
    calls: list[tuple[int, int]] = []
    result = execute_plan(plan, journals, progress=lambda done, total: calls.append((done, total)))
    assert result.ok and len(result.done) == 12
    assert calls[0] == (0, 12) and calls[-1] == (12, 12) and len(calls) == 13
    for move in plan.moves:
        if mode == "symlink":
            assert os.readlink(move.destination) == str(move.source)
        assert move.destination.read_bytes() == contents[move.source]
        assert move.source.exists() == (mode != "move")
    if mode == "copy":  # dates come along
        move = plan.moves[0]
        assert move.destination.stat().st_mtime_ns == move.source.stat().st_mtime_ns
    existing = root / "dest" / "cluster_000" / "IMG_0003.jpg"
    assert existing.read_bytes() == b"already here, not ours"
    assert not temp_files(root)
    assert list_journals(journals) == [result.journal]
    assert result.journal.name.startswith("sort-") and result.journal.suffix == ".jsonl"

    report = undo(result.journal)
    assert report.ok and len(report.undone) == 12
    assert snapshot(root) == before
    again = undo(result.journal)  # idempotent: nothing left to do
    assert again.ok and not again.undone and again.skipped == 12
    assert snapshot(root) == before


def test_journal_records_intent_before_and_outcome_after(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    plan = plan_sort(make_tree(root, 3), root / "dest", mode="copy")
    result = execute_plan(plan, tmp_path / "journals")
    records = [json.loads(line) for line in result.journal.read_text().splitlines()]
    assert records[0]["event"] == "start" and records[0]["mode"] == "copy"
    assert records[-1] == {"event": "finish", "done": 3, "failed": 0}
    events = [(r["event"], r.get("op")) for r in records if r["event"] != "mkdir"]
    assert events[1:-1] == [(e, op) for op in range(3) for e in ("intent", "verified", "done")]
    verified = [r for r in records if r["event"] == "verified"]
    assert all(len(r["hash"]) == 128 and r["size"] > 0 for r in verified)


def test_list_journals_newest_last(tmp_path: Path) -> None:
    paths = [execute_plan(SortPlan([], "copy"), tmp_path).journal for _ in range(3)]
    assert list_journals(tmp_path) == paths
    assert list_journals(tmp_path / "missing") == []


def test_disk_full_on_third_file_rolls_it_back_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "tree"
    assignments = make_tree(root)
    before = snapshot(root)
    plan = plan_sort(assignments, root / "dest", mode="copy")
    writes = {"n": 0}
    real_write = sort._write_chunk

    def fill_disk(fd: int, data: bytes) -> None:
        writes["n"] += 1
        if writes["n"] == 3:
            real_write(fd, data[: len(data) // 2])  # a partial temp file is left behind
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(fd, data)

    monkeypatch.setattr(sort, "_write_chunk", fill_disk)
    result = execute_plan(plan, tmp_path / "journals")
    assert len(result.done) == 11
    ((failed, reason),) = result.failed
    assert failed == plan.moves[2] and reason == "No space left on device"
    assert not failed.destination.exists() and failed.source.exists()
    assert not temp_files(root)
    assert {k: v for k, v in snapshot(root).items() if k.startswith("src")} == {
        k: v for k, v in before.items() if k.startswith("src")}
    assert undo(result.journal).ok and snapshot(root) == before


def test_disk_full_during_a_cross_device_move_keeps_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "tree"
    assignments = make_tree(root)
    contents = {path: path.read_bytes() for path in assignments}
    before = snapshot(root)
    plan = plan_sort(assignments, root / "dest", mode="move")
    fake_cross_device(monkeypatch)
    writes = {"n": 0}
    real_write = sort._write_chunk

    def fill_disk(fd: int, data: bytes) -> None:
        writes["n"] += 1
        if writes["n"] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(fd, data)

    monkeypatch.setattr(sort, "_write_chunk", fill_disk)
    result = execute_plan(plan, tmp_path / "journals")
    assert len(result.done) == 11 and len(result.failed) == 1
    assert result.failed[0][0].source.read_bytes() == contents[result.failed[0][0].source]
    assert not temp_files(root)
    assert_nothing_lost(plan, contents, root, exactly_once=True)
    assert undo(result.journal).ok and snapshot(root) == before


def test_vanished_source_and_name_taken_after_planning_fail_alone(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    assignments = make_tree(root)
    plan = plan_sort(assignments, root / "dest", mode="move")
    gone, taken = plan.moves[1], plan.moves[4]
    gone.source.unlink()
    taken.destination.parent.mkdir(parents=True, exist_ok=True)
    taken.destination.write_bytes(b"somebody else's")
    before = snapshot(root)
    result = execute_plan(plan, tmp_path / "journals")
    reasons = dict(result.failed)
    assert reasons[gone] == "the source has vanished"
    assert "already exists; nothing was overwritten" in reasons[taken]
    assert taken.destination.read_bytes() == b"somebody else's" and taken.source.exists()
    assert len(result.done) == 10
    assert undo(result.journal).ok and snapshot(root) == before


def test_undo_keeps_a_copy_the_user_changed(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    plan = plan_sort(make_tree(root), root / "dest", mode="copy")
    result = execute_plan(plan, tmp_path / "journals")
    edited = plan.moves[3].destination
    edited.write_bytes(b"edited by the user")
    report = undo(result.journal)
    assert report.kept == [(edited, "changed since lookalike copied it; kept")]
    assert edited.read_bytes() == b"edited by the user"
    assert len(report.undone) == 11 and not report.failed


def test_undo_of_a_copy_whose_original_was_deleted_puts_the_copy_back(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    assignments = make_tree(root)
    before = snapshot(root)
    plan = plan_sort(assignments, root / "dest", mode="copy")
    result = execute_plan(plan, tmp_path / "journals")
    plan.moves[0].source.unlink()  # the copy is now the only one
    assert undo(result.journal).ok
    assert snapshot(root) == before


def test_undo_of_a_move_never_overwrites_a_new_file_at_the_old_path(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    plan = plan_sort(make_tree(root), root / "dest", mode="move")
    result = execute_plan(plan, tmp_path / "journals")
    blocked = plan.moves[2]
    moved = blocked.destination.read_bytes()
    blocked.source.write_bytes(b"new file, same name")
    report = undo(result.journal)
    ((where, why),) = report.kept
    assert where == blocked.destination and "holds another file" in why
    assert blocked.source.read_bytes() == b"new file, same name"
    assert blocked.destination.read_bytes() == moved
    assert len(report.undone) == 11


def test_undo_leaves_a_retargeted_link_alone(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    plan = plan_sort(make_tree(root, 3), root / "dest", mode="symlink")
    result = execute_plan(plan, tmp_path / "journals")
    link = plan.moves[0].destination
    link.unlink()
    link.symlink_to("/elsewhere")
    report = undo(result.journal)
    assert [path for path, _ in report.kept] == [link] and os.readlink(link) == "/elsewhere"


@pytest.mark.parametrize("fallback", ["link", "reserve"])
@pytest.mark.parametrize("mode", ["copy", "move"])
def test_file_systems_without_noreplace_rename_or_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fallback: str, mode: str
) -> None:
    root = tmp_path / "tree"
    plan = plan_sort(make_tree(root), root / "dest", mode=mode)
    taken = plan.moves[5].destination
    taken.parent.mkdir(parents=True, exist_ok=True)
    taken.write_bytes(b"appeared after planning")
    before = snapshot(root)
    monkeypatch.setattr(sort, "_rename_noreplace", lambda source, target: False)
    if fallback == "reserve":
        monkeypatch.setattr(sort.os, "link", _no_link)
    result = execute_plan(plan, tmp_path / "journals")
    assert len(result.done) == 11 and result.failed[0][0] == plan.moves[5]
    assert taken.read_bytes() == b"appeared after planning"
    assert not temp_files(root)
    assert undo(result.journal).ok and snapshot(root) == before


def test_a_running_sort_locks_its_journal(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    result = execute_plan(plan_sort(make_tree(root, 2), root / "dest"), tmp_path / "j")
    with sort._Journal(result.journal, create=False):
        with pytest.raises(SortError, match="in use"):
            undo(result.journal)
    with pytest.raises(SortError, match="no journal"):
        undo(tmp_path / "j" / "sort-missing.jsonl")


@pytest.mark.slow
def test_permission_denied_for_real_without_root_powers(tmp_path: Path) -> None:
    """Root ignores file modes, so the sorts run in a child without CAP_DAC_OVERRIDE."""
    root = tmp_path / "tree"
    assignments = make_tree(root)
    locked_source = root / "src" / "b"  # moving out of it needs write access
    locked_destination = root / "dest" / "cluster_001"  # copying into it too
    locked_destination.mkdir()
    before = snapshot(root)
    contents = {path: path.read_bytes() for path in assignments}
    locked_source.chmod(0o555)
    locked_destination.chmod(0o555)
    try:
        for mode in ("copy", "move"):
            plan = plan_sort(assignments, root / "dest", mode=mode)
            outcome = run_child(tmp_path, plan, unprivileged=True)
            assert outcome["returncode"] == 0, outcome["stderr"]
            failed = {Path(source): reason for source, reason in outcome["failed"]}
            for move in plan.moves:
                blocked = move.destination.parent == locked_destination or (
                    mode == "move" and move.source.parent == locked_source)
                assert (move.source in failed) == blocked, move
                if blocked:
                    assert failed[move.source].startswith("Permission denied")
                    assert move.source.read_bytes() == contents[move.source]
                    assert not move.destination.exists()
            assert not temp_files(root)
            assert undo(Path(outcome["journal"])).ok
            assert snapshot(root) == before
    finally:
        locked_source.chmod(0o755)
        locked_destination.chmod(0o755)


# -- kill -9 ----------------------------------------------------------------------------------

# Each case: mode, file-system behaviour, phase, where the child SIGKILLs itself, and whether
# a verified duplicate (two distinct files) may legitimately exist at that instant.
KILL_POINTS = {
    "copy: mid-write of a temp file": ("copy", "", "sort", ("write", 3), False),
    "copy: temp written, not yet verified": ("copy", "", "sort", ("before", "verified", 2),
                                             False),
    "copy: verified, not yet renamed": ("copy", "", "sort", ("after", "verified", 2), False),
    "copy: renamed, done not recorded": ("copy", "", "sort", ("before", "done", 2), False),
    "copy: folder announced, not created": ("copy", "", "sort", ("after", "mkdir", 0), False),
    "move: intent recorded": ("move", "", "sort", ("after", "intent", 2), False),
    "move: renamed, done not recorded": ("move", "", "sort", ("before", "done", 2), False),
    "move/link: between link and unlink": ("move", "nonoreplace", "sort",
                                           ("unlink", "source", 2), False),
    "move/cross-device: mid-write": ("move", "crossdevice", "sort", ("write", 3), False),
    "move/cross-device: copy placed, source kept": ("move", "crossdevice", "sort",
                                                    ("unlink", "source", 2), True),
    "move/cross-device: source unlinked": ("move", "crossdevice", "sort",
                                           ("before", "done", 2), False),
    "move/reserve: placeholder made": ("move", "nohardlink", "sort", ("replace", 3), False),
    "copy/reserve: placeholder made": ("copy", "nohardlink", "sort", ("replace", 3), False),
    "undo move: intent recorded": ("move", "", "undo", ("after", "undo-intent", 9), False),
    "undo move: moved back, not recorded": ("move", "", "undo", ("before", "undone", 9),
                                            False),
    "undo move/cross-device: copy back, dest kept": ("move", "crossdevice", "undo",
                                                     ("unlink", "destination", 9), True),
    "undo copy: copy deleted, not recorded": ("copy", "", "undo", ("before", "undone", 9),
                                              False),
}


@pytest.mark.parametrize("case", list(KILL_POINTS))
@pytest.mark.slow
def test_kill_9_at_every_step_loses_nothing_and_undo_restores(tmp_path: Path, case: str) -> None:
    mode, filesystem, phase, kill, duplicate_ok = KILL_POINTS[case]
    root = tmp_path / "tree"
    assignments = make_tree(root)
    contents = {path: path.read_bytes() for path in assignments}
    before = snapshot(root)
    plan = plan_sort(assignments, root / "dest", mode=mode)
    outcome = run_child(tmp_path, plan, filesystem=filesystem, phase=phase, kill=kill)
    assert outcome["returncode"] == -signal.SIGKILL, outcome["stderr"]  # the point was hit
    assert_nothing_lost(plan, contents, root, exactly_once=mode == "move" and not duplicate_ok)
    if mode == "copy":
        assert all(path.read_bytes() == content for path, content in contents.items())
    (journal,) = list_journals(tmp_path / "journals")

    recovered = recover(journal)  # settles the interrupted step only
    assert not recovered.failed and not recovered.kept
    assert not temp_files(root)
    move = mode == "move"  # and no second name or duplicate either
    assert_nothing_lost(plan, contents, root, exactly_once=move, one_name=move)

    report = undo(journal)
    assert report.ok, report
    assert snapshot(root) == before


@pytest.mark.parametrize("case", ["copy: verified, not yet renamed",
                                  "move/link: between link and unlink",
                                  "move/cross-device: copy placed, source kept",
                                  "undo move/cross-device: copy back, dest kept"])
@pytest.mark.slow
def test_plain_undo_straight_after_a_kill_9_restores_everything(tmp_path: Path,
                                                                case: str) -> None:
    mode, filesystem, phase, kill, _ = KILL_POINTS[case]
    root = tmp_path / "tree"
    assignments = make_tree(root)
    before = snapshot(root)
    plan = plan_sort(assignments, root / "dest", mode=mode)
    outcome = run_child(tmp_path, plan, filesystem=filesystem, phase=phase, kill=kill)
    assert outcome["returncode"] == -signal.SIGKILL, outcome["stderr"]
    (journal,) = list_journals(tmp_path / "journals")
    assert undo(journal).ok
    assert snapshot(root) == before


@pytest.mark.slow
def test_kill_9_partway_through_a_200_file_move(tmp_path: Path) -> None:
    """An unscripted SIGKILL from outside while a slowed-down move runs."""
    root = tmp_path / "tree"
    source = root / "src"
    contents: dict[Path, bytes] = {}
    for i in range(200):
        path = source / f"d{i % 7}" / f"photo_{i % 50:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        while path.exists():
            path = path.with_name("again_" + path.name)
        contents[path] = _content(i)
        path.write_bytes(contents[path])
    before = snapshot(root)
    plan = plan_sort({path: f"cluster_{i % 9}" for i, path in enumerate(contents)},
                     root / "dest", mode="move")
    journals = tmp_path / "journals"
    child = start_child(tmp_path, plan, slow=0.005)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = list_journals(journals)
        if found and found[0].read_text().count('"event": "done"') >= 60:
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    (journal,) = list_journals(journals)
    done = journal.read_text().count('"event": "done"')
    assert 60 <= done < 200  # killed partway
    assert_nothing_lost(plan, contents, root, exactly_once=True)

    recover(journal)
    assert not temp_files(root)
    assert_nothing_lost(plan, contents, root, exactly_once=True, one_name=True)
    report = undo(journal)
    assert report.ok and report.skipped <= 1
    assert snapshot(root) == before


# -- child processes --------------------------------------------------------------------------

CHILD = r"""
import errno, json, os, signal, sys, time
from pathlib import Path
from lookalike.act import sort

config = json.loads(Path(sys.argv[1]).read_text())
plan = sort.SortPlan([sort.Move(Path(s), Path(d)) for s, d in config["moves"]], config["mode"])
kill = config["kill"] or [None]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def cross_device(source, target):
    if not os.path.basename(source).startswith(sort.TEMP_PREFIX):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
    return real_rename(source, target)

def no_link(*args, **kwargs):
    raise OSError(errno.EPERM, os.strerror(errno.EPERM))

real_rename = sort._rename_noreplace
if config["filesystem"] == "crossdevice":
    sort._rename_noreplace = cross_device
if config["filesystem"] in ("nonoreplace", "nohardlink"):
    sort._rename_noreplace = lambda source, target: False
if config["filesystem"] == "nohardlink":
    os.link = no_link
if config["slow"]:
    real_fsync = sort._fsync
    def slow_fsync(fd):
        time.sleep(config["slow"])
        real_fsync(fd)
    sort._fsync = slow_fsync

if config["phase"] == "undo":
    result = sort.execute_plan(plan, config["journal_dir"])
    assert result.ok, result.failed

def armed():
    if kill[0] in ("before", "after"):
        _, event, op = kill
        real = sort._Journal.write
        def write(self, **record):
            hit = record["event"] == event and record.get("op", 0) == op
            if hit and kill[0] == "before":
                die()
            real(self, **record)
            if hit:
                die()
        sort._Journal.write = write
    elif kill[0] == "write":
        real_chunk, calls = sort._write_chunk, [0]
        def chunk(fd, data):
            calls[0] += 1
            if calls[0] == kill[1]:
                real_chunk(fd, data[: len(data) // 2])
                die()
            real_chunk(fd, data)
        sort._write_chunk = chunk
    elif kill[0] == "unlink":
        move = plan.moves[kill[2]]
        victim = str(move.source if kill[1] == "source" else move.destination)
        real_unlink = os.unlink
        def unlink(path, *args, **kwargs):
            if str(path) == victim:
                die()
            real_unlink(path, *args, **kwargs)
        os.unlink = unlink
    elif kill[0] == "replace":
        real_replace, calls = os.replace, [0]
        def replace(*args, **kwargs):
            calls[0] += 1
            if calls[0] == kill[1]:
                die()
            real_replace(*args, **kwargs)
        os.replace = replace

armed()
if config["phase"] == "undo":
    sort.undo(result.journal)
else:
    result = sort.execute_plan(plan, config["journal_dir"])
print(json.dumps({"journal": str(result.journal),
                  "failed": [[str(m.source), r] for m, r in result.failed]}))
"""


def start_child(tmp_path: Path, plan: SortPlan, *, filesystem: str = "", phase: str = "sort",
                kill: tuple | None = None, slow: float = 0.0,
                unprivileged: bool = False) -> subprocess.Popen[str]:
    config = {"moves": [[str(m.source), str(m.destination)] for m in plan.moves],
              "mode": plan.mode, "journal_dir": str(tmp_path / "journals"),
              "filesystem": filesystem, "phase": phase, "kill": kill, "slow": slow}
    config_path = tmp_path / f"child-{time.monotonic_ns()}.json"
    config_path.write_text(json.dumps(config))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    preexec = _drop_file_capabilities if unprivileged and os.geteuid() == 0 else None
    return subprocess.Popen([sys.executable, "-c", CHILD, str(config_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec)


def run_child(tmp_path: Path, plan: SortPlan, **options) -> dict:
    child = start_child(tmp_path, plan, **options)
    stdout, stderr = child.communicate(timeout=60)
    outcome = json.loads(stdout) if child.returncode == 0 else {}
    return {**outcome, "returncode": child.returncode, "stderr": stderr}


def _drop_file_capabilities() -> None:  # pragma: no cover - runs in the child
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP


def fake_cross_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Renames between the user's folders fail with EXDEV; our temp files still rename."""
    real = sort._rename_noreplace

    def rename(source: Path, target: Path) -> bool:
        if not source.name.startswith(TEMP_PREFIX):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real(source, target)

    monkeypatch.setattr(sort, "_rename_noreplace", rename)


def _no_link(*args: object, **kwargs: object) -> None:
    raise OSError(errno.EPERM, os.strerror(errno.EPERM))


# -- the collection follows -------------------------------------------------------------------


def test_indexed_path_is_what_an_index_of_the_folder_would_find(tmp_path: Path) -> None:
    from lookalike.act.follow import indexed_path

    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "via").symlink_to(root / "sub")
    assert indexed_path(root, root / "sub" / "a.jpg") == "sub/a.jpg"
    assert indexed_path(root, tmp_path / "via" / "a.jpg") == "sub/a.jpg"  # --to by a link
    assert indexed_path(root, tmp_path / "elsewhere" / "a.jpg") is None
    assert indexed_path(root, root / ".lookalike" / "a.jpg") is None  # index skips it


@pytest.mark.parametrize("mode", ["copy", "symlink", "move"])
def test_check_destination_refuses_only_what_would_double_the_collection(
        planted_collection: Path, tmp_path: Path, mode: str) -> None:
    from lookalike import Collection
    from lookalike.act.follow import check_destination

    files = sorted(planted_collection.glob("*.jpg"))[:2]
    with Collection.open(planted_collection) as collection:
        inside = plan_sort(dict.fromkeys(files, "x"), planted_collection / "sorted", mode)
        if mode == "move":
            check_destination(inside, collection.store)  # the catalogue follows a move
        else:
            with pytest.raises(SortError, match="twice"):
                check_destination(inside, collection.store)
        check_destination(plan_sort(dict.fromkeys(files, "x"), tmp_path, mode),
                          collection.store)
        own = plan_sort(dict.fromkeys(files, "x"), collection.directory / "x", mode)
        with pytest.raises(SortError, match="collection's own folder"):
            check_destination(own, collection.store)
