"""Acting on a duplicate review: discarded copies to quarantine, refused and skipped
groups, the catalogue following, and undo, on real files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from lookalike import Collection
from lookalike.act.quarantine import (
    apply_quarantine,
    default_folder,
    describe,
    plan_quarantine,
    undo_quarantine,
)
from lookalike.act.sort import SortError
from lookalike.marks import MarkRecord, MarkStore
from lookalike.ownership import NotOwnedError
from tests.conftest import scene


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def review_folder(root: Path) -> Path:
    """Four scenes; a0 has a byte copy in sub/, a1 and a2 one beside them each."""
    (root / "sub").mkdir(parents=True)
    for seed in range(4):
        scene(60 + seed).save(root / f"a{seed}.jpg", quality=90)
    (root / "sub" / "a0-copy.jpg").write_bytes((root / "a0.jpg").read_bytes())
    (root / "a1-copy.jpg").write_bytes((root / "a1.jpg").read_bytes())
    (root / "a2-copy.jpg").write_bytes((root / "a2.jpg").read_bytes())
    Collection.index_folder(root, model="classic")[0].close()
    return root


def mark(collection: Collection, marks: MarkStore, decisions: dict[str, str]) -> str:
    """Record ``decisions`` (path -> decision) as one reviewed group; returns its key."""
    records = [collection.store.file_by_path(path) for path in decisions]
    key = "-".join(str(i) for i in sorted(r.id for r in records if r))
    marks.save([MarkRecord(r.id, r.path, r.content_hash, decisions[r.path], key, None, 0.0)
                for r in records if r])
    return key


@pytest.fixture
def reviewed(tmp_path: Path) -> Iterator[tuple[Path, Collection, MarkStore, dict[str, str]]]:
    """Group a0: copy discarded; group a1: every copy discarded; group a2: copy discarded,
    then changed on disk."""
    root = review_folder(tmp_path / "photos")
    collection = Collection.open(root, writable=True)
    marks = MarkStore(collection.directory)
    keys = {"a0": mark(collection, marks, {"a0.jpg": "keep", "sub/a0-copy.jpg": "discard"}),
            "a1": mark(collection, marks, {"a1.jpg": "discard", "a1-copy.jpg": "discard"}),
            "a2": mark(collection, marks, {"a2.jpg": "keep", "a2-copy.jpg": "discard"})}
    with open(root / "a2-copy.jpg", "ab") as changed:
        changed.write(b"edited since")
    yield root, collection, marks, keys
    marks.close()
    collection.close()


def files_of(collection: Collection) -> dict[int, object]:
    return {record.id: record for record in collection.files()}


def test_plan_moves_only_safe_discards_and_counts_their_bytes(reviewed) -> None:
    root, collection, marks, keys = reviewed
    plan = plan_quarantine(root, files_of(collection), marks.all())
    quarantine = root.parent / "photos-duplicates"
    assert plan.folder == default_folder(root) == quarantine
    assert [(m.source, m.destination) for m in plan.plan.moves] == [
        (root / "sub" / "a0-copy.jpg", quarantine / "sub" / "a0-copy.jpg")]
    assert plan.bytes == (root / "sub" / "a0-copy.jpg").stat().st_size
    assert [(g.key, g.paths) for g in plan.refused] == [(keys["a1"], ["a1-copy.jpg", "a1.jpg"])]
    assert "every copy in this group is marked discard" in plan.refused[0].reason
    assert [(s.path, s.reason) for s in plan.skipped] == [
        ("a2-copy.jpg", "changed since it was marked: review it again")]
    lines = describe(plan)
    assert lines[0] == f"1 file(s), {plan.bytes / 1e3:.1f} kB to {quarantine}"
    assert not quarantine.exists()  # planning touches nothing


def test_force_moves_an_all_discard_group(reviewed) -> None:
    root, collection, marks, keys = reviewed
    plan = plan_quarantine(root, files_of(collection), marks.all(), force=True)
    assert sorted(m.source.name for m in plan.plan.moves) == ["a0-copy.jpg", "a1-copy.jpg",
                                                              "a1.jpg"]
    assert plan.forced == [keys["a1"]] and not plan.refused
    apply_quarantine(plan, collection.store)
    again = plan_quarantine(root, files_of(collection), marks.all())
    assert not again.plan.moves and not again.refused  # what left is no longer planned
    assert [s.path for s in again.skipped] == ["a2-copy.jpg"]


def test_apply_moves_with_hashes_kept_catalogue_follows_and_undo_restores(reviewed) -> None:
    root, collection, marks, _ = reviewed
    before = {path.relative_to(root): digest(path) for path in root.rglob("*.jpg")}
    copy_id = collection.store.file_by_path("sub/a0-copy.jpg").id
    plan = plan_quarantine(root, files_of(collection), marks.all())
    result, followed = apply_quarantine(plan, collection.store)
    quarantined = root.parent / "photos-duplicates" / "sub" / "a0-copy.jpg"
    assert result.ok and followed.departed == 1
    assert digest(quarantined) == before[Path("sub/a0-copy.jpg")]
    assert not (root / "sub" / "a0-copy.jpg").exists()
    after = {path.relative_to(root): digest(path) for path in root.rglob("*.jpg")}
    assert after == {path: h for path, h in before.items() if path != Path("sub/a0-copy.jpg")}
    assert collection.store.file_by_path("sub/a0-copy.jpg") is None  # left the collection
    assert copy_id not in files_of(collection)

    undone, back = undo_quarantine(result.journal, collection.store)
    assert undone.ok and back.restored == 1
    assert {path.relative_to(root): digest(path) for path in root.rglob("*.jpg")} == before
    assert collection.store.file_by_path("sub/a0-copy.jpg").id == copy_id
    assert not (root.parent / "photos-duplicates").exists()  # emptied: removed


def test_a_discard_outside_any_group_is_refused(reviewed) -> None:
    root, collection, marks, _ = reviewed
    record = collection.store.file_by_path("a3.jpg")
    marks.save([MarkRecord(record.id, record.path, record.content_hash, "discard", None, None,
                           0.0)])
    plan = plan_quarantine(root, files_of(collection), marks.all())
    refused = {g.key: g for g in plan.refused}[f"file {record.id}"]
    assert refused.paths == ["a3.jpg"] and "outside any duplicate group" in refused.reason


def test_quarantine_folder_rules(reviewed) -> None:
    root, collection, marks, _ = reviewed
    with pytest.raises(SortError, match="inside the indexed folder"):
        plan_quarantine(root, files_of(collection), marks.all(), root / "quarantine")
    users = root.parent / "kept-by-me"
    users.mkdir()
    (users / "note.txt").write_text("mine")
    plan = plan_quarantine(root, files_of(collection), marks.all(), users)
    with pytest.raises(NotOwnedError, match="not empty"):
        apply_quarantine(plan, collection.store)
    assert (root / "sub" / "a0-copy.jpg").exists() and (users / "note.txt").exists()
