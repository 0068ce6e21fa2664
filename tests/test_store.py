"""The store on its own: catalogue rows, embedding rows, the writer lock and recovery."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from contextlib import closing
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pytest

from lookalike import store as store_module
from lookalike.discover import Candidate
from lookalike.store import CollectionBusy, EmbeddedFile, Store, StoreError, usable_rows

DIM = 8


def candidates(*names: str) -> list[Candidate]:
    return [Candidate(Path(name), 100 + i, i, "JPEG") for i, name in enumerate(names)]


def unit_rows(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.create(tmp_path / "db", tmp_path / "photos")
    store.add_model("m-00000000", "test", {}, {"name": "test"}, DIM)
    return store


def embed_all(store: Store, seed: int = 0) -> np.ndarray:
    pending = store.files_to_embed("m-00000000")
    vectors = unit_rows(len(pending), seed)
    store.commit_batch("m-00000000", [EmbeddedFile(f.id, "0" * 32, 1, 1, "JPEG")
                                      for f in pending], vectors)
    return vectors


def test_create_refuses_a_folder_of_the_users(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty and holds no collection"):
        Store.create(tmp_path / "mine", tmp_path)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(StoreError, match="is a file"):
        Store.create(tmp_path / "file", tmp_path)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_ids_are_never_reused(store: Store) -> None:
    store.sync_files(candidates("a.jpg", "b.jpg", "c.jpg"))
    ids = {f.path: f.id for f in store.files()}
    store.sync_files(candidates("a.jpg", "b.jpg"))  # c.jpg, the highest id, is gone
    store.sync_files(candidates("a.jpg", "b.jpg", "d.jpg"))
    assert store.file_by_path("d.jpg").id > ids["c.jpg"]


def test_rows_round_trip_and_bad_rows_are_skipped(store: Store) -> None:
    store.sync_files(candidates("a.jpg", "b.jpg", "c.jpg"))
    files = store.files_to_embed("m-00000000")
    vectors = unit_rows(3)
    vectors[1] = 0
    store.commit_batch("m-00000000", [EmbeddedFile(f.id, "0" * 32, 1, 1, "JPEG")
                                      for f in files], vectors)
    file_ids, rows = store.live_rows("m-00000000")
    assert file_ids.tolist() == [files[0].id, files[2].id]
    np.testing.assert_allclose(store.embeddings("m-00000000")[rows], vectors[[0, 2]],
                               atol=1e-3)
    assert store.file(files[1].id).status == "skipped"


def test_usable_rows() -> None:
    rows = np.vstack([unit_rows(1), np.zeros((1, DIM)), np.full((1, DIM), np.nan),
                      2 * unit_rows(1)])
    assert usable_rows(rows).tolist() == [True, False, False, False]


def test_one_writer_per_process_shared_and_others_refused(store: Store, tmp_path: Path) -> None:
    again = Store.open(tmp_path / "db", writable=True)  # same process: shares the lock
    again.close()
    assert store.writable
    reader = Store.open(tmp_path / "db")
    with pytest.raises(StoreError, match="read-only"):
        reader.commit_batch("m-00000000", [], np.zeros((0, DIM)))
    lock = (tmp_path / "db" / Store.WRITER_LOCK).read_text()
    assert lock.startswith("PID ")
    assert issubclass(CollectionBusy, StoreError)


def test_recovery_keeps_unknown_files_and_repairs_a_short_file(store: Store,
                                                              tmp_path: Path) -> None:
    store.sync_files(candidates(*(f"{i}.jpg" for i in range(6))))
    vectors = embed_all(store)
    embeddings = tmp_path / "db" / "embeddings"
    (embeddings / "run1.npy").write_bytes(b"user's")
    (embeddings / "m-00000000.7.f16").write_bytes(b"aborted compaction")  # lookalike's name
    data = (embeddings / "m-00000000.0.f16").read_bytes()
    (embeddings / "m-00000000.0.f16").write_bytes(data[: 4 * DIM * 2 + 3])  # 4 rows intact
    store.close()
    reopened = Store.open(tmp_path / "db", writable=True)
    assert sorted(p.name for p in embeddings.iterdir()) == ["m-00000000.0.f16", "run1.npy"]
    file_ids, rows = reopened.live_rows("m-00000000")
    assert len(rows) == 4
    np.testing.assert_allclose(reopened.embeddings("m-00000000")[rows], vectors[:4],
                               atol=1e-3)
    assert len(reopened.files_to_embed("m-00000000")) == 2  # embedded again next run
    assert reopened.check() == []  # consistent again: the lost files are simply pending


def test_check_finds_bad_rows_and_repair_forgets_them(store: Store) -> None:
    store.sync_files(candidates("a.jpg", "b.jpg"))
    embed_all(store)
    path = store.directory / "embeddings" / "m-00000000.0.f16"
    data = bytearray(path.read_bytes())
    data[: DIM * 2] = bytes(DIM * 2)  # row 0 zeroed behind the store's back
    path.write_bytes(bytes(data))
    (problem,) = store.check()
    assert problem.what == "1 embeddings are zero or not finite" and not problem.repaired
    (problem,) = store.check(repair=True)
    assert problem.repaired
    assert [f.path for f in store.files_to_embed("m-00000000")] == ["a.jpg"]
    assert store.check() == []


def test_follow_moves_renames_departs_and_restores_idempotently(store: Store) -> None:
    store.sync_files(candidates("a.jpg", "b.jpg", "c.jpg"))
    embed_all(store)
    before = {f.path: (f.id, store.row_for_file("m-00000000", f.id)) for f in store.files()}
    version = store.model("m-00000000").version
    moves = [("a.jpg", "sorted/a.jpg"), ("b.jpg", None)]
    assert astuple(store.follow_moves(moves, "J")) == (1, 1, 0)
    assert astuple(store.follow_moves(moves, "J")) == (0, 0, 0)  # nothing left to follow
    assert (store.file_by_path("sorted/a.jpg").id, store.row_for_file(
        "m-00000000", store.file_by_path("sorted/a.jpg").id)) == before["a.jpg"]
    assert store.file_by_path("b.jpg") is None
    assert store.model("m-00000000").version > version  # the vector index drops b
    back = [("sorted/a.jpg", "a.jpg"), (None, "b.jpg")]
    assert astuple(store.follow_moves(back, "J")) == (1, 0, 1)
    assert {f.path: (f.id, store.row_for_file("m-00000000", f.id))
            for f in store.files()} == before
    assert {f.status for f in store.files()} == {"ok"}
    assert astuple(store.follow_moves(back, "J")) == (0, 0, 0)


def test_a_file_moved_by_hand_keeps_its_row_when_its_content_matches(store: Store,
                                                                      tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for name, data in (("a.jpg", b"a" * 50), ("b.jpg", b"b" * 50)):
        (photos / name).write_bytes(data)
        os.utime(photos / name, ns=(0, 7))  # same size and mtime: only the hash tells

    def found() -> list[Candidate]:
        return [Candidate(path.relative_to(photos), 50, 7, "JPEG")
                for path in sorted(photos.rglob("*.jpg"))]

    store.sync_files(found())
    store.commit_batch("m-00000000", [
        EmbeddedFile(f.id, hashlib.blake2b((photos / f.path).read_bytes(),
                                           digest_size=16).hexdigest(), 1, 1, "JPEG")
        for f in store.files()], unit_rows(2))
    ids = {f.path: f.id for f in store.files()}
    os.rename(photos / "a.jpg", photos / "sub" / "a.jpg")
    changes = store.sync_files(found())
    assert (changes.moved, changes.added, changes.removed) == (1, 0, 0)
    assert store.file_by_path("sub/a.jpg").id == ids["a.jpg"]
    assert store.files_to_embed("m-00000000") == []
    (photos / "b.jpg").unlink()  # a new file that looks the same but holds other bytes
    (photos / "c.jpg").write_bytes(b"c" * 50)
    os.utime(photos / "c.jpg", ns=(0, 7))
    changes = store.sync_files(found())
    assert (changes.moved, changes.added, changes.removed) == (0, 1, 1)


# -- schema migrations ---------------------------------------------------------------------
def _set_schema(directory: Path, version: str) -> None:
    with closing(sqlite3.connect(directory / Store.CATALOGUE)) as db, db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (version,))


@pytest.mark.parametrize("writable", [True, False])
def test_an_older_catalogue_is_migrated_step_by_step(tmp_path: Path, monkeypatch,
                                                     writable: bool) -> None:
    """A catalogue at schema 1 opened by a version that knows two more steps is brought
    to schema 3, each step once and in order, read-only opens too."""
    store = Store.create(tmp_path / "db", tmp_path / "photos")
    store.sync_files(candidates("a.jpg"))
    store.close()
    ran: list[int] = []

    def step(number: int):
        def migrate(db) -> None:
            ran.append(number)
            db.execute(f"CREATE TABLE step{number} (x)")
        return migrate

    monkeypatch.setattr(store_module, "_MIGRATIONS", [step(1), step(2)])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 3)
    migrated = Store.open(tmp_path / "db", writable=writable)
    assert ran == [1, 2] and migrated.meta("schema") == "3"
    assert [f.path for f in migrated.files()] == ["a.jpg"]  # the data came along
    migrated.close()
    Store.open(tmp_path / "db").close()
    assert ran == [1, 2]  # already current: no step runs again


def test_a_failed_step_leaves_the_catalogue_as_it_was(tmp_path: Path, monkeypatch) -> None:
    Store.create(tmp_path / "db", tmp_path / "photos").close()

    def broken(db) -> None:
        db.execute("CREATE TABLE half (x)")
        raise RuntimeError("step failed")

    monkeypatch.setattr(store_module, "_MIGRATIONS", [broken])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    with pytest.raises(RuntimeError, match="step failed"):
        Store.open(tmp_path / "db", writable=True)
    monkeypatch.setattr(store_module, "_MIGRATIONS", [])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)
    store = Store.open(tmp_path / "db", writable=True)  # the lock was released too
    assert store.meta("schema") == "1"
    assert store._query_one("SELECT name FROM sqlite_master WHERE name = 'half'") is None


def test_a_newer_or_unknown_schema_is_refused(tmp_path: Path) -> None:
    Store.create(tmp_path / "db", tmp_path / "photos").close()
    _set_schema(tmp_path / "db", str(store_module.SCHEMA_VERSION + 1))
    with pytest.raises(StoreError, match="newer than .* upgrade lookalike"):
        Store.open(tmp_path / "db")
    _set_schema(tmp_path / "db", "banana")
    with pytest.raises(StoreError, match="schema banana is not supported"):
        Store.open(tmp_path / "db", writable=True)
    _set_schema(tmp_path / "db", "1")
    Store.open(tmp_path / "db", writable=True).close()  # each refusal let the lock go


def test_the_current_version_is_one_past_the_last_step() -> None:
    assert store_module.SCHEMA_VERSION == 1 + len(store_module._MIGRATIONS)
