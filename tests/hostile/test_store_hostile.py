"""A collection's own files under attack: user files beside --db, two writers, damage.

Each test builds its own hostile tree, runs the real commands, and checks that no byte of
a user's file changed and that the message says what to run.
"""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lookalike.cli import app
from lookalike.collection import Collection
from lookalike.store import EmbeddedFile, Store, StoreError
from tests.conftest import crop, scene
from tests.hostile.trees import fingerprint

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def said(result) -> str:
    """What a command printed, unwrapped (the console wraps long lines)."""
    return " ".join(result.output.split())


def search_paths(db: Path, query: Path, k: int = 3) -> list[str]:
    result = invoke("search", query, "--db", db, "-k", k, "--json")
    assert result.exit_code == 0, result.output
    return [hit["path"] for hit in json.loads(result.stdout)[0]["results"]]


@pytest.fixture
def query(tmp_path: Path) -> Path:
    path = tmp_path / "query.jpg"
    crop(scene(3)).save(path)
    return path


def test_db_folder_holding_user_files_is_refused(photo_folder: Path, tmp_path: Path) -> None:
    """`index --db proj` where proj/embeddings/run1.npy is the user's: refused, untouched."""
    project = tmp_path / "proj"
    (project / "embeddings").mkdir(parents=True)
    (project / "embeddings" / "run1.npy").write_bytes(b"x" * 100)
    (project / "notes.txt").write_text("mine")
    before = fingerprint(tmp_path)
    result = invoke("index", photo_folder, "--db", project, "--model", "classic")
    assert result.exit_code == 1
    assert "not empty and holds no collection" in said(result)
    assert "choose a new or empty folder" in said(result)
    assert fingerprint(tmp_path) == before


def test_collection_keeps_files_it_did_not_name(photo_folder: Path, tmp_path: Path) -> None:
    """A user's file dropped into a collection's embeddings/ and index/ folders survives
    every later run (only lookalike's own names are ever removed there)."""
    db = tmp_path / "db"
    assert invoke("index", photo_folder, "--db", db, "--model", "classic").exit_code == 0
    (db / "embeddings" / "run1.npy").write_bytes(b"users")
    (db / "embeddings" / "old.f16.bak").write_bytes(b"users")
    (db / "index" / "notes.txt").write_text("users")
    scene(30).save(photo_folder / "new.jpg")
    assert invoke("index", photo_folder, "--db", db).exit_code == 0
    assert invoke("index", photo_folder, "--db", db, "--rebuild").exit_code == 0
    assert (db / "embeddings" / "run1.npy").read_bytes() == b"users"
    assert (db / "embeddings" / "old.f16.bak").read_bytes() == b"users"
    assert (db / "index" / "notes.txt").read_text() == "users"


HOLD = textwrap.dedent("""
    import sys
    from lookalike.store import Store
    store = Store.open(sys.argv[1], writable=True)
    print("holding", flush=True)
    sys.stdin.readline()
""")


@pytest.mark.slow
def test_second_writer_is_told_who_holds_the_collection(photo_folder: Path) -> None:
    assert invoke("index", photo_folder, "--model", "classic").exit_code == 0
    db = photo_folder / ".lookalike"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        scene(31).save(photo_folder / "new.jpg")
        result = invoke("index", photo_folder)
        assert result.exit_code == 1
        assert f"being changed by PID {holder.pid}" in said(result)
        assert "wait for it to finish" in said(result)
        assert "Traceback" not in said(result)
        # readers go on meanwhile
        assert invoke("info", photo_folder, "--json").exit_code == 0
    finally:
        holder.kill()  # kill -9 releases the lock with the process
        holder.wait()
    result = invoke("index", photo_folder, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["embed"]["embedded"] == 1


@pytest.mark.slow
def test_concurrent_commits_never_share_rows(photo_folder: Path) -> None:
    """Two writers in one process (threads, two stores): every committed row holds exactly
    the vector committed for its file, none is zero."""
    collection, _ = Collection.index_folder(photo_folder, model="classic")
    record = collection.model
    ids = [f.id for f in collection.files("ok")]
    collection.store.forget(record.key, ids)  # all pending again
    dim = record.dim
    rng = np.random.default_rng(0)
    wanted = rng.standard_normal((len(ids), dim)).astype(np.float32)
    wanted /= np.linalg.norm(wanted, axis=1, keepdims=True)
    second = Store.open(collection.directory, writable=True)

    def commit(store: Store, half: int) -> None:
        for position in range(half, len(ids), 2):
            store.commit_batch(record.key, [EmbeddedFile(ids[position], "0" * 32, 1, 1, "JPEG")],
                               wanted[position:position + 1])

    threads = [threading.Thread(target=commit, args=(store, half))
               for store, half in ((collection.store, 0), (second, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    file_ids, vectors = Collection.open(collection.directory).vectors(raw=True)
    by_id = dict(zip(ids, wanted))
    expected = np.stack([by_id[int(i)] for i in file_ids])
    np.testing.assert_allclose(vectors, expected, atol=2e-3)
    second.close()


def test_zero_or_nan_vectors_are_never_committed(photo_folder: Path) -> None:
    collection, _ = Collection.index_folder(photo_folder, model="classic")
    record = collection.model
    first, second, third = [f.id for f in collection.files("ok")][:3]
    collection.store.forget(record.key, [first, second, third])
    good = np.zeros(record.dim, np.float32)
    good[0] = 1
    vectors = np.stack([np.zeros(record.dim), np.full(record.dim, np.nan), good])
    collection.store.commit_batch(record.key, [EmbeddedFile(i, "0" * 32, 1, 1, "JPEG")
                                               for i in (first, second, third)], vectors)
    assert collection.store.file(third).status == "ok"
    for bad in (first, second):
        record_of = collection.store.file(bad)
        assert record_of.status == "skipped"
        assert "no usable embedding" in record_of.reason
    assert bad not in collection.vectors()[0]


def test_zero_rows_already_stored_are_found_and_repaired(photo_folder: Path) -> None:
    """A collection written by an older version with all-zero rows: check finds them,
    check --repair forgets them and the next index run embeds those images again."""
    assert invoke("index", photo_folder, "--model", "classic").exit_code == 0
    db = photo_folder / ".lookalike"
    collection = Collection.open(db)
    record = collection.model
    path = db / "embeddings" / record.file
    data = bytearray(path.read_bytes())
    data[: 2 * record.dim * 2] = bytes(2 * record.dim * 2)  # rows 0 and 1 zeroed
    path.write_bytes(bytes(data))
    collection.close()
    result = invoke("check", photo_folder)
    assert result.exit_code == 1
    assert "2 embeddings are zero or not finite" in said(result)
    assert "lookalike check --repair" in said(result)
    result = invoke("check", photo_folder, "--repair")
    assert "repaired: 2 embeddings" in said(result) and result.exit_code == 0
    assert "lookalike index FOLDER" in said(result)
    result = invoke("index", photo_folder, "--json")
    assert json.loads(result.stdout)["embed"]["embedded"] == 2
    assert invoke("check", photo_folder).exit_code == 0


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_damaged_embeddings_are_repaired_by_the_next_index_run(
        photo_folder: Path, query: Path, damage: str) -> None:
    assert invoke("index", photo_folder, "--model", "classic").exit_code == 0
    db = photo_folder / ".lookalike"
    before = search_paths(db, query)
    original = Collection.open(db).vectors()
    path = next((db / "embeddings").glob("*.f16"))
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    else:
        path.unlink()
    result = invoke("search", query, "--db", db)  # a reader says what to run
    assert result.exit_code == 1
    assert "run lookalike index FOLDER to repair" in said(result)
    assert "Traceback" not in said(result)
    result = invoke("check", db)
    assert result.exit_code == 1 and "lookalike index FOLDER" in said(result)

    result = invoke("index", photo_folder)
    assert result.exit_code == 0, result.output
    assert "damaged" in said(result) and "embedded again" in said(result)
    assert search_paths(db, query) == before
    repaired = Collection.open(db).vectors()
    np.testing.assert_array_equal(repaired[0], original[0])
    np.testing.assert_array_equal(repaired[1], original[1])
    assert invoke("check", db).exit_code == 0


def test_rebuild_works_from_a_deleted_embeddings_file(photo_folder: Path) -> None:
    assert invoke("index", photo_folder, "--model", "classic").exit_code == 0
    next((photo_folder / ".lookalike" / "embeddings").glob("*.f16")).unlink()
    result = invoke("index", photo_folder, "--rebuild", "--model", "classic", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["embed"]["embedded"] == 10


@pytest.mark.parametrize("damage", ["garbled", "truncated", "sidecar"])
def test_damaged_index_is_rebuilt_not_trusted(photo_folder: Path, query: Path,
                                              damage: str) -> None:
    assert invoke("index", photo_folder, "--model", "classic", "--index", "hnsw").exit_code == 0
    db = photo_folder / ".lookalike"
    result = invoke("search", query, "--db", db, "-k", 3, "--json")
    before = json.loads(result.stdout)[0]["results"]
    index_file = next(p for p in (db / "index").glob("*.hnsw"))
    if damage == "garbled":
        data = bytearray(index_file.read_bytes())
        for offset in range(len(data) // 2, len(data) // 2 + 64):
            data[offset] ^= 0x5A
        index_file.write_bytes(bytes(data))
    elif damage == "truncated":
        index_file.write_bytes(index_file.read_bytes()[:100])
    else:
        index_file.with_name(index_file.name + ".json").write_text("{")
    result = invoke("check", db)
    assert result.exit_code == 1 and "the vector index is damaged" in said(result)
    result = invoke("search", query, "--db", db, "-k", 3, "--json")
    assert result.exit_code == 0, result.output
    assert "rebuilding" in result.stderr
    after = json.loads(result.stdout)[0]["results"]
    assert [(h["path"], round(h["score"], 4)) for h in after] == \
        [(h["path"], round(h["score"], 4)) for h in before]
    assert all(0 <= h["score"] <= 1.0001 for h in after)
    assert invoke("check", db).exit_code == 0


def test_damaged_graph_cache_is_rebuilt(photo_folder: Path) -> None:
    collection, _ = Collection.index_folder(photo_folder, model="classic")
    ids, graph = collection.knn_graph(3)
    expected = np.asarray(graph.neighbours).copy()
    folder = next((collection.directory / "index").glob("*.knn3"))
    neighbours = np.load(folder / "neighbours.npy", mmap_mode="r+")
    neighbours[:] = 0  # right shape, wrong content
    neighbours.flush()
    del neighbours
    reopened = Collection.open(collection.directory)
    assert not reopened.check() == []
    np.testing.assert_array_equal(np.asarray(reopened.knn_graph(3)[1].neighbours), expected)


@pytest.mark.slow
def test_damaged_catalogue_says_what_to_do_and_rebuild_starts_again(photo_folder: Path,
                                                                    query: Path) -> None:
    assert invoke("index", photo_folder, "--model", "classic").exit_code == 0
    db = photo_folder / ".lookalike"
    users = fingerprint(photo_folder, skip=(".lookalike",))
    catalogue = db / "catalogue.sqlite"
    gc.collect()  # the in-process commands' connections close: the WAL is checkpointed
    Collection.open(db).close()
    assert not (db / "catalogue.sqlite-wal").exists()
    data = bytearray(catalogue.read_bytes())
    data[:100] = b"garbage!" * 12 + b"junk"  # the header: not a database any more
    catalogue.write_bytes(bytes(data))
    for command in (("search", query, "--db", db), ("info", photo_folder),
                    ("index", photo_folder), ("check", photo_folder)):
        result = invoke(*command)
        assert result.exit_code == 1, command
        assert "catalogue" in said(result) and "damaged" in said(result), command
        assert "--rebuild" in said(result), command
        assert "Traceback" not in said(result)
    result = invoke("index", photo_folder, "--rebuild", "--model", "classic", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["embed"]["embedded"] == 10
    assert list(db.glob("catalogue.sqlite.damaged-*"))  # kept for the user, not deleted
    assert search_paths(db, query, 1) == ["scene3.jpg"]
    assert fingerprint(photo_folder, skip=(".lookalike",)) == users


def test_file_ids_are_never_reused(photo_folder: Path) -> None:
    """Marks, journals and caches name images by id: a deleted file's id must never come
    to mean another image."""
    collection, _ = Collection.index_folder(photo_folder, model="classic")
    last = max(f.id for f in collection.files())
    gone = collection.store.file(last)
    (photo_folder / gone.path).unlink()
    collection.index()
    scene(40).save(photo_folder / "newcomer.jpg")
    collection.index()
    newcomer = collection.store.file_by_path("newcomer.jpg")
    assert newcomer is not None and newcomer.id > last


def test_read_only_collection_refuses_to_index(photo_folder: Path) -> None:
    Collection.index_folder(photo_folder, model="classic")[0].close()
    with pytest.raises(StoreError, match="read-only"):
        Collection.open(photo_folder).index()


def test_no_user_file_touched_by_a_whole_session(photo_folder: Path, tmp_path: Path) -> None:
    """index, re-index, rebuild and check never change a byte of the images."""
    shutil.copy(photo_folder / "scene0.jpg", photo_folder / "copy.jpg")
    before = fingerprint(photo_folder, skip=(".lookalike",))
    for command in (("index", photo_folder, "--model", "classic"), ("index", photo_folder),
                    ("index", photo_folder, "--rebuild", "--model", "classic"),
                    ("check", photo_folder, "--repair")):
        assert invoke(*command).exit_code == 0, command
    assert fingerprint(photo_folder, skip=(".lookalike",)) == before
