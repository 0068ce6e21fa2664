"""Watching a folder: a file copied in becomes searchable, a deleted one disappears,
without a restart; the collection's own folder is never a change."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from lookalike import Collection
from lookalike.watch import FolderWatcher, snapshot

from .conftest import crop, scene


def test_snapshot_sees_image_files_only_and_skips_the_collection(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    scene(0).save(tmp_path / "sub" / "a.jpg")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".lookalike").mkdir()
    scene(1).save(tmp_path / ".lookalike" / "thumb.jpg")
    assert set(snapshot(tmp_path)) == {"sub/a.jpg"}


def wait_for(condition, seconds: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_new_file_becomes_searchable_and_a_deleted_one_goes(
        tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(3):
        scene(seed).save(folder / f"{seed}.jpg", quality=90)
    collection, _ = Collection.index_folder(folder, model="classic")
    updates = []
    watcher = FolderWatcher(collection, interval=0.2, on_update=updates.append).start()
    try:
        crop(scene(7), 0.9).save(tmp_path / "new.jpg", quality=90)
        shutil.move(tmp_path / "new.jpg", folder / "new.jpg")
        query = tmp_path / "query.jpg"
        crop(scene(7), 0.8).save(query, quality=90)

        def best_is_new() -> bool:
            return bool(updates) and collection.search(query, k=1)[0].path == "new.jpg"

        assert wait_for(best_is_new)
        assert updates[-1].changes.added == 1
        (folder / "0.jpg").unlink()
        assert wait_for(lambda: len(updates) >= 2)
        assert {r.path for r in collection.files("ok")} == {"1.jpg", "2.jpg", "new.jpg"}
    finally:
        watcher.stop()
        collection.close()
