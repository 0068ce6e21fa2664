"""Ownership: writes are atomic; only files lookalike listed are replaced or removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.ownership import MARKER, NotOwnedError, OwnedFolder, atomic_write


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a" / "page.html"
    atomic_write(target, "one")
    atomic_write(target, b"two")
    atomic_write(target, lambda tmp: tmp.write_text("three"))
    assert target.read_text() == "three"
    assert sorted(p.name for p in target.parent.iterdir()) == ["page.html"]


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "page.html"
    target.write_text("old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_claim_refuses_a_users_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "index.html").write_text("mine")
    with pytest.raises(NotOwnedError, match="not empty and was not created by lookalike"):
        OwnedFolder.claim(tmp_path / "rep", "report")
    assert (tmp_path / "rep" / "index.html").read_text() == "mine"
    assert not (tmp_path / "rep" / MARKER).exists()


def test_claim_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "rep").write_text("mine")
    with pytest.raises(NotOwnedError, match="is a file"):
        OwnedFolder.claim(tmp_path / "rep", "report")


def test_owned_folder_touches_only_its_listed_files(tmp_path: Path) -> None:
    folder = OwnedFolder.claim(tmp_path / "rep", "report")
    folder.write("index.html", "v1")
    folder.write("thumbs/1.jpg", b"x")
    folder.write("thumbs/2.jpg", b"y")
    (tmp_path / "rep" / "notes.txt").write_text("the user's")
    (tmp_path / "rep" / "thumbs" / "mine.jpg").write_bytes(b"the user's")

    again = OwnedFolder.claim(tmp_path / "rep", "report")  # the marker proves ownership
    assert again.files == {"index.html", "thumbs/1.jpg", "thumbs/2.jpg"}
    again.write("index.html", "v2")
    assert again.remove_stale(keep={"index.html", "thumbs/1.jpg"}) == 1
    assert not (tmp_path / "rep" / "thumbs" / "2.jpg").exists()
    assert (tmp_path / "rep" / "notes.txt").read_text() == "the user's"
    assert (tmp_path / "rep" / "thumbs" / "mine.jpg").read_bytes() == b"the user's"
    with pytest.raises(NotOwnedError, match="was not written by lookalike"):
        again.write("notes.txt", "overwrite?")
    assert (tmp_path / "rep" / "notes.txt").read_text() == "the user's"


def test_names_outside_the_folder_are_refused(tmp_path: Path) -> None:
    folder = OwnedFolder.claim(tmp_path / "rep", "report")
    for name in ("../escape.txt", "/etc/passwd", MARKER):
        with pytest.raises(ValueError):
            folder.write(name, "x")


def test_damaged_marker_is_refused(tmp_path: Path) -> None:
    folder = OwnedFolder.claim(tmp_path / "rep", "report")
    (folder.path / MARKER).write_text("{not json")
    with pytest.raises(NotOwnedError, match="damaged"):
        OwnedFolder.claim(tmp_path / "rep", "report")


def test_a_link_inside_the_folder_is_never_written_or_deleted_through(tmp_path: Path) -> None:
    folder = OwnedFolder.claim(tmp_path / "rep", "report")
    folder.write("thumbs/1.jpg", b"ours")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "1.jpg").write_bytes(b"the user's")
    (tmp_path / "rep" / "thumbs" / "1.jpg").unlink()
    (tmp_path / "rep" / "thumbs").rmdir()
    (tmp_path / "rep" / "thumbs").symlink_to(tmp_path / "mine", target_is_directory=True)
    again = OwnedFolder.claim(tmp_path / "rep", "report")
    with pytest.raises(NotOwnedError, match="is a link"):
        again.write("thumbs/1.jpg", b"overwrite?")
    with pytest.raises(NotOwnedError, match="is a link"):
        again.reserve(["thumbs/2.jpg"])
    assert again.remove_stale(keep=()) == 1  # forgotten, not deleted through the link
    assert (tmp_path / "mine" / "1.jpg").read_bytes() == b"the user's"
