from __future__ import annotations

import os
from pathlib import Path

import pytest

from lookalike import discover as discover_module
from lookalike.discover import (
    UnreadableRoot,
    as_root,
    catalogue_path,
    discover,
    is_remote,
    sniff_format,
)
from tests import bad_files
from tests.conftest import in_memory, scene


def test_sniff_format_reads_magic_numbers() -> None:
    assert sniff_format(b"\xff\xd8\xff\xe0" + b"\0" * 28) == "JPEG"
    assert sniff_format(b"\x89PNG\r\n\x1a\n" + b"\0" * 24) == "PNG"
    assert sniff_format(b"RIFF\0\0\0\0WEBPVP8 ") == "WEBP"
    assert sniff_format(b"\0\0\0\x18ftypheic") == "HEIF"
    assert sniff_format(b"hello world") is None


def test_finds_images_by_content_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b" / "c").mkdir(parents=True)
    scene(1).save(tmp_path / "b" / "c" / "deep.webp")
    scene(2).save(tmp_path / "a.png")
    scene(3).save(tmp_path / "no-extension", "JPEG")
    bad_files.mislabelled_png(tmp_path)
    (tmp_path / "readme.txt").write_text("ignored: neither an image nor named like one")
    found = {c.path.as_posix(): c for c in discover(tmp_path)}
    assert list(found) == ["a.png", "b/c/deep.webp", "no-extension", "really-a-png.jpg"]
    assert found["no-extension"].format == "JPEG"
    assert found["really-a-png.jpg"].format == "PNG"
    assert all(c.reason is None for c in found.values())


def test_files_named_like_images_but_not_images_carry_a_reason(tmp_path: Path) -> None:
    bad_files.zero_bytes(tmp_path)
    bad_files.text_named_jpg(tmp_path)
    reasons = {c.path.name: c.reason for c in discover(tmp_path)}
    assert reasons == {"empty.jpg": "empty file",
                       "notes.jpg": "not an image (content is not a known format)"}


def test_symlink_loops_terminate_and_list_each_file_once(tmp_path: Path) -> None:
    scene(1).save(tmp_path / "one.jpg")
    (tmp_path / "sub").mkdir()
    scene(2).save(tmp_path / "sub" / "two.jpg")
    os.symlink(tmp_path, tmp_path / "sub" / "back-to-top")  # directory loop
    os.symlink("loop.jpg", tmp_path / "loop.jpg")  # a link to itself
    found = {c.path.as_posix(): c.reason for c in discover(tmp_path)}
    assert set(found) == {"one.jpg", "sub/two.jpg", "loop.jpg"}
    assert "cannot stat" in found["loop.jpg"]


def test_collection_directory_is_excluded(tmp_path: Path) -> None:
    (tmp_path / ".lookalike").mkdir()
    scene(1).save(tmp_path / ".lookalike" / "thumb.jpg")
    scene(2).save(tmp_path / "photo.jpg")
    assert [c.path.name for c in discover(tmp_path)] == ["photo.jpg"]


def test_roots_are_local_paths_or_fsspec_urls(tmp_path: Path) -> None:
    assert as_root(tmp_path) == tmp_path and not is_remote(as_root(tmp_path))
    assert as_root(f"file://{tmp_path}") == tmp_path
    remote = as_root("memory://bucket/photos")
    assert is_remote(remote) and remote.protocol == "memory"
    assert str(remote / "a" / "b.jpg") == "memory://bucket/photos/a/b.jpg"


def test_remote_root_lists_images_with_sizes_and_times(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "b" / "c").mkdir(parents=True)
    (folder / ".lookalike").mkdir()
    scene(1).save(folder / "b" / "c" / "deep.webp")
    scene(2).save(folder / "a.png")
    scene(3).save(folder / ".lookalike" / "inside-a-collection.jpg")
    bad_files.zero_bytes(folder)
    (folder / "readme.txt").write_text("not named like an image")
    with in_memory(folder) as url:
        found = {c.path.as_posix(): c for c in discover(as_root(url))}
    assert list(found) == ["a.png", "b/c/deep.webp", "empty.jpg"]
    assert found["a.png"].size == (folder / "a.png").stat().st_size
    assert found["a.png"].format == "PNG" and found["b/c/deep.webp"].format == "WEBP"
    assert found["a.png"].mtime_ns > 0  # the memory filesystem's creation time
    assert (found["empty.jpg"].format, found["empty.jpg"].reason) == (None, "empty file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_named_like_an_image_is_reported_and_never_opened(tmp_path: Path) -> None:
    scene(1).save(tmp_path / "photo.jpg")
    os.mkfifo(tmp_path / "x.jpg")  # opening it to read would wait for a writer forever
    os.mkfifo(tmp_path / "pipe")  # not named like an image: not an image
    found = {c.path.as_posix(): c.reason for c in discover(tmp_path)}
    assert found == {"photo.jpg": None, "x.jpg": "a named pipe (FIFO), not a file: not read"}


def test_names_that_are_not_utf8_are_skipped_with_a_printable_catalogue_path(
        tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    try:
        os.mkdir(root + b"/dossi\xe9r")
    except OSError:  # macOS and some filesystems refuse such names
        pytest.skip("this filesystem refuses names that are not UTF-8")
    for name in (b"caf\xe9.jpg", b"dossi\xe9r/a.jpg"):
        scene(1).save(os.fsdecode(root + b"/" + name), "JPEG")
    found = {catalogue_path(c.path): c for c in discover(tmp_path)}
    assert set(found) == {"caf\\xe9.jpg", "dossi\\xe9r/a.jpg"}
    assert found["caf\\xe9.jpg"].reason == "file name is not valid UTF-8: rename it"
    assert found["dossi\\xe9r/a.jpg"].reason.startswith("a folder name in its path")
    assert os.fsencode(found["caf\\xe9.jpg"].path) == b"caf\xe9.jpg"  # the real name
    assert catalogue_path(Path("plain/été.jpg")) == "plain/été.jpg"


def test_unreadable_folder_is_reported_not_taken_for_empty(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "locked").mkdir()
    scene(1).save(tmp_path / "locked" / "a.jpg")
    scene(2).save(tmp_path / "b.jpg")
    scandir = os.scandir

    def denied(path):
        if Path(path).name == "locked" or Path(path) == tmp_path / "gone":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(discover_module.os, "scandir", denied)
    found = {c.path.as_posix(): c for c in discover(tmp_path)}
    assert set(found) == {"b.jpg", "locked"}
    assert found["locked"].unreadable and not found["b.jpg"].unreadable
    assert found["locked"].reason.startswith("cannot read folder: Permission denied")
    with pytest.raises(UnreadableRoot, match="cannot read the folder .*nothing was changed"):
        list(discover(tmp_path / "locked"))
    with pytest.raises(UnreadableRoot, match="does not exist"):
        list(discover(tmp_path / "missing"))


def test_folder_without_search_permission_is_one_unreadable_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "listed").mkdir()
    scene(1).save(tmp_path / "listed" / "a.jpg")
    scene(2).save(tmp_path / "listed" / "b.jpg")
    access = os.access

    def no_search(path, mode, **options):  # chmod 644 on a folder, as seen by non-root
        return False if Path(path).name == "listed" else access(path, mode, **options)

    monkeypatch.setattr(discover_module.os, "access", no_search)
    found = list(discover(tmp_path))
    assert [(c.path.as_posix(), c.unreadable) for c in found] == [("listed", True)]
    assert "not searchable" in found[0].reason
