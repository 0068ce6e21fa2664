from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lookalike import Collection, ModelMismatch, StoreError
from lookalike.discover import Candidate, discover
from lookalike.store import EmbeddedFile, Store
from tests import bad_files
from tests.conftest import ANNOY, REPO, crop, flip, scene


def test_crops_and_flips_rank_above_unrelated_images(photo_folder: Path, tmp_path: Path) -> None:
    collection, report = Collection.index_folder(photo_folder, model="classic")
    assert report.embed.embedded == 10 and not report.skipped
    hits = collection.search(photo_folder / "sub" / "scene0-crop.jpg", k=3)
    assert hits[0].path == "scene0.jpg"
    assert "sub/scene0-crop.jpg" not in [hit.path for hit in hits]  # the query itself
    assert [hit.rank for hit in hits] == [1, 2, 3]
    assert hits[0].score > hits[1].score >= hits[2].score
    outside = tmp_path / "query.jpg"
    crop(flip(scene(1)), 0.9).save(outside, quality=80)
    top_two = {hit.path for hit in collection.search(outside, k=2)}
    assert top_two == {"scene1.jpg", "sub/scene1-flip.png"}


def test_search_by_id_vector_and_batch_agree(photo_folder: Path) -> None:
    collection, _ = Collection.index_folder(photo_folder, model="classic")
    record = collection.store.file_by_path("scene0.jpg")
    by_id = collection.search(record.id, k=3)
    by_path = collection.search(photo_folder / "scene0.jpg", k=3)
    assert [h.path for h in by_id] == [h.path for h in by_path]
    assert by_id[0].path == "sub/scene0-crop.jpg"
    file_ids, vectors = collection.vectors()
    vector = vectors[list(file_ids).index(record.id)]
    by_vector = collection.search(vector, k=3)
    assert by_vector[0].path == "scene0.jpg" and by_vector[0].score == pytest.approx(1.0, abs=1e-3)
    batch = collection.search_many([photo_folder / "scene0.jpg", record.id], k=3)
    assert [h.path for h in batch[0]] == [h.path for h in batch[1]] == [h.path for h in by_id]


def test_second_run_embeds_only_changes(photo_folder: Path) -> None:
    collection, first = Collection.index_folder(photo_folder, model="classic")
    again = collection.index()
    assert (again.changes.added, again.changes.changed, again.changes.removed) == (0, 0, 0)
    assert again.embed.embedded == 0

    (photo_folder / "scene7.jpg").unlink()
    scene(20).save(photo_folder / "new.jpg")
    time.sleep(0.01)
    scene(21).save(photo_folder / "scene6.jpg")  # same name, new picture
    report = collection.index()
    assert (report.changes.added, report.changes.changed, report.changes.removed) == (1, 1, 1)
    assert report.embed.embedded == 2
    paths = {record.path for record in collection.files()}
    assert "scene7.jpg" not in paths and "new.jpg" in paths
    file_ids, vectors = collection.vectors()
    assert len(file_ids) == 10
    found = collection.search(photo_folder / "new.jpg", k=1)
    assert found[0].path != "scene7.jpg"
    outside = photo_folder.parent / "q.jpg"
    crop(scene(21)).save(outside)
    assert collection.search(outside, k=1)[0].path == "scene6.jpg"
    everything = collection.search(outside, k=50)
    assert len(everything) == 10 and "scene7.jpg" not in {hit.path for hit in everything}


def test_bad_files_are_reported_and_the_run_completes(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    scene(1).save(folder / "good.jpg")
    broken = [bad_files.zero_bytes(folder), bad_files.truncated_jpeg(folder),
              bad_files.text_named_jpg(folder), bad_files.huge_png(folder)]
    usable = [bad_files.cmyk_jpeg(folder), bad_files.png_16bit(folder),
              bad_files.palette_png_with_transparency(folder), bad_files.animated_gif(folder),
              bad_files.exif_rotated_jpeg(folder)[0], bad_files.mislabelled_png(folder)]
    collection, report = Collection.index_folder(folder, model="classic")
    skipped = dict(collection.info().skipped)
    assert set(skipped) == {path.name for path in broken}
    assert "decompression bomb" in skipped["bomb.png"]
    assert "truncated" in skipped["truncated.jpg"]
    assert skipped["empty.jpg"] == "empty file"
    assert report.embed.embedded == 1 + len(usable)
    assert dict(report.skipped) == skipped  # the run summary names every one of them
    assert {path for path, _ in report.embed.skipped} == {"truncated.jpg", "bomb.png"}


def test_file_deleted_between_discover_and_decode(photo_folder: Path) -> None:
    from lookalike.discover import discover
    from lookalike.embed.classic import ClassicBackbone
    from lookalike.pipeline import embed_pending

    collection, _ = Collection.index_folder(photo_folder, model="classic")
    scene(30).save(photo_folder / "fleeting.jpg")
    collection.store.sync_files(discover(photo_folder))
    (photo_folder / "fleeting.jpg").unlink()
    report = embed_pending(collection.store, collection.model.key, ClassicBackbone())
    assert report.skipped == [("fleeting.jpg", "file disappeared before it could be read")]
    assert collection.index().changes.removed == 1
    assert collection.info().skipped == []


def test_exif_rotated_embedding_equals_upright(tmp_path: Path) -> None:
    folder = tmp_path / "rot"
    folder.mkdir()
    path, upright = bad_files.exif_rotated_jpeg(folder)
    upright.save(folder / "upright.jpg", quality=95)
    scene(40, (240, 320)).save(folder / "other.jpg", quality=95)
    collection, _ = Collection.index_folder(folder, model="classic")
    hit = collection.search(path, k=1)[0]
    assert hit.path == "upright.jpg" and hit.score > 0.99


def test_other_model_is_refused(photo_folder: Path) -> None:
    collection, _ = Collection.index_folder(photo_folder, model="classic")
    with pytest.raises(ModelMismatch, match="classic"):
        collection.check_model("resnet50")
    with pytest.raises(ModelMismatch, match="--rebuild"):
        collection.index(model="resnet50")
    collection.check_model("classic")


def test_open_missing_collection_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="lookalike index"):
        Collection.open(tmp_path)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq", ANNOY])
def test_every_index_kind_finds_the_crop(photo_folder: Path, kind: str) -> None:
    collection, report = Collection.index_folder(photo_folder, model="classic", index_kind=kind)
    built = "flat" if kind == "ivfpq" else kind  # 10 vectors cannot train IVF-PQ
    assert report.index_kind == built
    assert collection.search(photo_folder / "sub" / "scene0-crop.jpg", k=1)[0].path == "scene0.jpg"
    scene(50).save(photo_folder / "late.jpg")
    collection.index()
    reopened = Collection.open(photo_folder)
    assert reopened.vector_index().kind == built and len(reopened.vector_index()) == 11
    assert reopened.search(photo_folder / "late.jpg", k=11)[-1].rank == 10


# -- kill -9 --------------------------------------------------------------------------------
_SLOW_INDEX = textwrap.dedent("""
    import os, signal, sys, time
    from lookalike import Collection
    from lookalike.embed.classic import ClassicBackbone
    from lookalike.store import Store
    mode = sys.argv[2]
    original_embed = ClassicBackbone.embed
    def slow_embed(self, batch):
        time.sleep(0.05)
        return original_embed(self, batch)
    ClassicBackbone.embed = slow_embed
    if mode == "between-append-and-commit":
        original_commit = Store.commit_batch
        calls = []
        def commit_then_die(self, key, embedded, vectors, skipped=()):
            calls.append(1)
            if len(calls) == 4:
                original = Store.transaction
                def die(self):
                    os.kill(os.getpid(), signal.SIGKILL)
                Store.transaction = die
            return original_commit(self, key, embedded, vectors, skipped)
        Store.commit_batch = commit_then_die
    print("started", flush=True)
    Collection.index_folder(sys.argv[1], model="classic", batch_size=4, workers=2)
""")


def _clean_and_killed_runs(tmp_path: Path, mode: str) -> tuple[Path, Path]:
    source = tmp_path / "source"
    source.mkdir()
    for seed in range(60):
        scene(seed, (160, 120)).save(source / f"img{seed:03d}.jpg", quality=85)
    bad_files.truncated_jpeg(source)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    shutil.copytree(source, clean)
    shutil.copytree(source, killed)
    Collection.index_folder(clean, model="classic", batch_size=4)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", _SLOW_INDEX, str(killed), mode], env=env,
                             stdout=subprocess.PIPE, text=True)
    if mode == "random":
        catalogue = killed / ".lookalike" / "catalogue.sqlite"
        deadline = time.time() + 60
        while time.time() < deadline and child.poll() is None:
            if catalogue.exists() and (killed / ".lookalike" / "embeddings").exists():
                rows = sum(p.stat().st_size for p in (killed / ".lookalike" / "embeddings")
                           .iterdir())
                if rows > 0:
                    time.sleep(0.13)
                    break
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    partial = Store.open(killed / ".lookalike")
    assert 0 < partial.model(partial.meta("model")).rows < 60  # really interrupted mid-run
    partial.close()
    Collection.index_folder(killed, model="classic", batch_size=4)
    return clean, killed


@pytest.mark.parametrize("mode", ["random", "between-append-and-commit"])
@pytest.mark.slow
def test_kill_9_then_rerun_equals_clean_run(tmp_path: Path, mode: str) -> None:
    clean, killed = _clean_and_killed_runs(tmp_path, mode)
    a, b = Collection.open(clean), Collection.open(killed)
    ids_a, vectors_a = a.vectors()
    ids_b, vectors_b = b.vectors()
    paths_a = [a.store.file(int(i)).path for i in ids_a]
    paths_b = [b.store.file(int(i)).path for i in ids_b]
    assert paths_a == paths_b and len(paths_a) == 60
    np.testing.assert_array_equal(vectors_a, vectors_b)
    emb_a = (a.directory / "embeddings" / a.model.file).read_bytes()
    emb_b = (b.directory / "embeddings" / b.model.file).read_bytes()
    assert emb_a == emb_b  # byte-identical store, no orphan rows
    assert a.info().skipped == b.info().skipped == [("truncated.jpg", a.info().skipped[0][1])]
    for query in ("img000.jpg", "img031.jpg", "img059.jpg"):
        hits_a = [(h.path, round(h.score, 5)) for h in a.search(clean / query, k=5)]
        hits_b = [(h.path, round(h.score, 5)) for h in b.search(killed / query, k=5)]
        assert hits_a == hits_b


def test_shared_onnx_model_ranks_edited_copies_first(photo_folder: Path, tmp_path: Path) -> None:
    from tests.conftest import shared_model

    model = shared_model("mobilenetv2-int8")
    collection, report = Collection.index_folder(photo_folder, model=f"onnx:{model}")
    assert report.embed.embedded == 10 and collection.model.dim == 1280
    assert collection.model.identity["output"] == "pool_features"
    assert collection.search(photo_folder / "sub" / "scene0-crop.jpg", k=1)[0].path == "scene0.jpg"
    outside = tmp_path / "query.jpg"
    crop(flip(scene(1)), 0.9).save(outside, quality=80)
    assert {h.path for h in collection.search(outside, k=2)} == {"scene1.jpg",
                                                                 "sub/scene1-flip.png"}
    reopened = Collection.open(photo_folder)  # the recorded model reloads for new queries
    assert reopened.search(outside, k=1)[0].path in {"scene1.jpg", "sub/scene1-flip.png"}


# -- concurrent index saves -------------------------------------------------------------------
_SAVE_INDEX = textwrap.dedent("""
    import sys
    import numpy as np
    from lookalike import Collection
    from lookalike.index import build_index
    collection = Collection.open(sys.argv[1])
    record, count = collection.model, int(sys.argv[3])
    _, vectors = collection.vectors()
    index = build_index("flat", vectors[:count], np.arange(count))
    path = collection.directory / "index" / "race.flat"
    for _ in range(int(sys.argv[2])):
        collection._indexes._save(path, record, "flat", "flat", None, lambda: index.save(path))
""")

_READ_INDEX = textwrap.dedent("""
    import sys
    from pathlib import Path
    from lookalike.index_manager import index_files_lock
    from lookalike.index import load_index
    path = Path(sys.argv[1])
    for _ in range(int(sys.argv[2])):
        with index_files_lock(path.parent, shared=True):
            assert len(load_index(path)) in (9, 10)
""")


@pytest.mark.slow
def test_concurrent_index_saves_never_leave_a_mismatched_pair(photo_folder: Path) -> None:
    """Two processes save indexes of different sizes to one path (an index run and a
    server); a reader must never see one's data file with the other's sidecar."""
    collection, _ = Collection.index_folder(photo_folder, model="classic")
    path = collection.directory / "index" / "race.flat"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = [sys.executable, "-c"]
    assert subprocess.run([*script, _SAVE_INDEX, str(photo_folder), "1", "10"],
                          env=env).returncode == 0
    children = [
        subprocess.Popen([*script, _SAVE_INDEX, str(photo_folder), "300", str(count)], env=env)
        for count in (9, 10)
    ] + [subprocess.Popen([*script, _READ_INDEX, str(path), "3000"], env=env)]
    assert [child.wait(timeout=120) for child in children] == [0, 0, 0]


def synthetic_files(count: int) -> Iterator[Candidate]:
    """Catalogue entries of ``count`` files that do not exist (the same ones every call)."""
    return (Candidate(Path(f"synthetic/img{i:05d}.jpg"), 1000 + i, i, "JPEG")
            for i in range(count))


def add_synthetic_rows(collection: Collection, count: int) -> None:
    """``count`` catalogue rows with clustered unit vectors and no files behind them (as
    an index run would commit them), so index choices can be tested at size."""
    store, record = collection.store, collection.model
    store.sync_files(itertools.chain(discover(collection.root), synthetic_files(count)))
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((30, record.dim)).astype(np.float32)
    pending = [f.id for f in store.files_to_embed(record.key)]
    vectors = centres[rng.integers(0, 30, len(pending))] + 0.3 * rng.standard_normal(
        (len(pending), record.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.commit_batch(record.key, [EmbeddedFile(i, f"{i:032x}", 64, 48, "JPEG")
                                    for i in pending], vectors)


def test_max_memory_is_remembered_and_picks_ivfpq(photo_folder: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lookalike.cli import app

    result = CliRunner().invoke(app, ["index", str(photo_folder), "--model", "classic",
                                      "--max-memory", "100K"])
    assert result.exit_code == 0, result.output
    collection = Collection.open(photo_folder, writable=True)
    assert collection.vector_index().kind == "flat"  # 10 vectors: too few for IVF-PQ
    add_synthetic_rows(collection, 1000)  # 1010 x 272 float32 is 1.1 MB > 100 KiB
    assert collection.store.meta("max_memory") == str(100 * 2**10)
    index = collection.vector_index()
    assert index.kind == "ivfpq" and index.memory_mapped  # lists in the page cache
    query = tmp_path / "q.jpg"
    crop(scene(2)).save(query)
    assert collection.search(query, k=1)[0].path == "scene2.jpg"
    # a commit (as an index run makes) changes a memory-mapped index: it is rewritten on
    # disk (index_disk) and the new file is mapped
    add_synthetic_rows(collection, 1001)
    index = collection.vector_index()
    assert index.kind == "ivfpq" and index.memory_mapped and len(index) == 1011
    assert collection.search(query, k=1)[0].path == "scene2.jpg"
    # what a killed save leaves (a spill folder, a temporary file) goes with the next save
    path = collection.directory / "index" / f"{collection.model.key}.ivfpq"
    (path.parent / f".{path.name}.dead.spill").mkdir()
    (path.parent / f".{path.name}.dead.tmp").write_bytes(b"partial")
    (photo_folder / "scene2.jpg").unlink()  # dropped from the catalogue, not compacted
    collection.store.sync_files(itertools.chain(discover(collection.root),
                                                synthetic_files(1001)))
    index = collection.vector_index()
    assert index.memory_mapped and len(index) == 1010
    assert "scene2.jpg" not in [hit.path for hit in collection.search(query, k=5)]
    assert not list(path.parent.glob(".*.dead.*"))
    assert Collection.open(photo_folder).vector_index().keys().tolist() == index.keys().tolist()


def test_max_memory_builds_the_graph_on_disk_with_the_same_analyses(photo_folder: Path,
                                                                     tmp_path: Path) -> None:
    """Over a quarter of --max-memory, the k-NN graph is built in memory-mapped files; the
    analyses read it from there and find what the in-RAM graph finds."""
    copy = tmp_path / "copy"
    shutil.copytree(photo_folder, copy)
    in_ram, _ = Collection.index_folder(photo_folder, model="classic")
    bounded, _ = Collection.index_folder(copy, model="classic", max_memory=2**10)
    index_folder = in_ram.directory / "index"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (index_folder / f".{in_ram.model.key}.knn4.{dead}-1").mkdir()  # a killed build's
    (index_folder / f".{in_ram.model.key}.knn4.{os.getpid()}-999").mkdir()  # a live one's
    ram_ids, ram_graph = in_ram.knn_graph(4)
    assert [p.name.split(".")[-1] for p in index_folder.glob(".*.knn4.*")] == [
        f"{os.getpid()}-999"]
    disk_ids, disk_graph = bounded.knn_graph(4)  # 10 x 4 x 12 bytes > 1 KiB / 4
    assert not isinstance(ram_graph.neighbours, np.memmap)
    assert isinstance(disk_graph.neighbours, np.memmap)
    np.testing.assert_array_equal(ram_ids, disk_ids)
    np.testing.assert_array_equal(ram_graph.neighbours, disk_graph.neighbours)
    cached = in_ram.knn_graph(4)[1]  # the second call reads the cache, memory-mapped
    assert isinstance(cached.neighbours, np.memmap)
    np.testing.assert_array_equal(cached.scores, ram_graph.scores)
    groups = [sorted(g.members.tolist()) for g in in_ram.groups(0.9).groups]
    assert groups and groups == [sorted(g.members.tolist()) for g in bounded.groups(0.9).groups]
    # the cache follows the embeddings
    (photo_folder / "scene7.jpg").unlink()
    in_ram.index()
    assert len(in_ram.knn_graph(4)[0]) == 9


@pytest.mark.slow
def test_ivfpq_goes_on_disk_by_itself_when_its_codes_would_fill_ram(photo_folder: Path,
                                                                    monkeypatch) -> None:
    """Without --max-memory, an IVF-PQ index is built on disk once its codes (56 B per
    vector) would take over an eighth of the machine's RAM."""
    collection, _ = Collection.index_folder(photo_folder, model="classic", index_kind="ivfpq")
    add_synthetic_rows(collection, 3000)
    assert not collection.vector_index().memory_mapped  # 168 kB: RAM it is
    in_ram = [hit.id for hit in collection.search(500, k=5)]
    monkeypatch.setattr("lookalike.index_manager.physical_memory", lambda: 8 * 100_000)
    reopened = Collection.open(photo_folder)
    on_disk = reopened.vector_index()
    assert on_disk.kind == "ivfpq" and on_disk.memory_mapped
    assert [hit.id for hit in reopened.search(500, k=5)] == in_ram


@pytest.mark.slow
def test_ivfpq_collection_reranks_from_the_store(photo_folder: Path) -> None:
    """An IVF-PQ collection index keeps no float copy: it re-ranks from the store's
    memory-mapped embeddings, also after reopening and after new rows arrive."""
    collection, _ = Collection.index_folder(photo_folder, model="classic", index_kind="ivfpq")
    assert collection.vector_index().kind == "flat"  # 10 vectors cannot train IVF-PQ
    add_synthetic_rows(collection, 3000)
    assert collection.vector_index().kind == "ivfpq"  # outgrew its flat stand-in
    reopened = Collection.open(photo_folder)
    index = reopened.vector_index()
    assert index.kind == "ivfpq" and index.params["rerank_source"] == "external"
    ids, stored = reopened.vectors()
    for position in (5, 500, 2500):
        exact = np.argsort(-(stored @ stored[position]))[1:6]
        hits = reopened.search(int(ids[position]), k=5)
        assert [h.id for h in hits][:3] == [int(i) for i in ids[exact[:3]]]
        assert abs(hits[0].score - float(stored[exact[0]] @ stored[position])) < 1e-3


def test_collection_of_images_on_object_storage(
    photo_folder: Path, remote_folder: str, tmp_path: Path
) -> None:
    """A root read through fsspec (in-memory here; s3:// or gs:// for users) gives the same
    collection as the local folder, updates incrementally and reports bad objects."""
    import fsspec

    from lookalike.act.sort import SortError, plan_sort
    from lookalike.discover import as_root

    with pytest.raises(StoreError, match="--db"):
        Collection.index_folder(remote_folder, model="classic")
    memory = fsspec.filesystem("memory")
    base = remote_folder[len("memory://"):]
    memory.pipe(f"{base}/notes.jpg", b"a text file named like a photo")
    remote, report = Collection.index_folder(remote_folder, tmp_path / "remote.lookalike",
                                             model="classic")
    assert str(remote.root) == str(as_root(remote_folder))
    assert report.embed.embedded == 10
    # on object storage the bad object is found at decode, not by sniffing its header
    assert [path for path, _ in report.skipped] == ["notes.jpg"]
    assert dict(report.skipped)["notes.jpg"].startswith("not an image")

    local, _ = Collection.index_folder(photo_folder, model="classic")
    local_ids, local_vectors = local.vectors()
    remote_ids, remote_vectors = remote.vectors()
    assert local.paths(local_ids) == remote.paths(remote_ids)
    np.testing.assert_array_equal(local_vectors, remote_vectors)
    query = tmp_path / "q.jpg"
    crop(scene(3)).save(query)
    assert remote.search(query, k=1)[0].path == "scene3.jpg"
    duplicates = remote.duplicates()  # verification reads the objects' pixels
    assert [sorted(duplicates.paths[m] for m in group.members) for group in duplicates.near] == \
        [sorted(local.duplicates().paths[m] for m in group.members)
         for group in local.duplicates().near]

    memory.rm(f"{base}/scene7.jpg")
    with memory.open(f"{base}/scene6.jpg", "wb") as handle:  # same name, new picture
        scene(21).save(handle, "JPEG")
    again = Collection.index_folder(remote_folder, tmp_path / "remote.lookalike")[1]
    assert (again.changes.added, again.changes.changed, again.changes.removed) == (0, 1, 1)
    assert again.embed.embedded == 1
    crop(scene(21)).save(query)
    assert remote.search(query, k=1)[0].path == "scene6.jpg"

    sources = {remote.root / "scene0.jpg": "kept"}
    with pytest.raises(SortError, match="object storage"):
        plan_sort(sources, tmp_path / "sorted")


@pytest.mark.slow
def test_collection_on_a_real_s3_protocol_server(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``s3://`` end to end through s3fs against a local S3 server (moto): listing, object
    times, incremental runs and reads over HTTP, as against AWS."""
    import io
    import socket

    import fsspec
    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        # what FSSPEC_S3_ENDPOINT_URL in the environment gives a fresh process
        monkeypatch.setitem(fsspec.config.conf, "s3",
                            {"endpoint_url": f"http://127.0.0.1:{port}"})
        s3 = fsspec.filesystem("s3", skip_instance_cache=True)
        s3.mkdir("photos")

        def put(name: str, image) -> None:
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=90)
            s3.pipe(f"photos/trip/{name}", buffer.getvalue())

        for seed in range(5):
            put(f"scene{seed}.jpg", scene(seed))
        s3.pipe("photos/trip/notes.jpg", b"a text file named like a photo")
        db = tmp_path / "trip.lookalike"
        collection, report = Collection.index_folder("s3://photos/trip", db, model="classic")
        assert report.embed.embedded == 5
        assert [path for path, _ in report.skipped] == ["notes.jpg"]
        query = tmp_path / "q.jpg"
        crop(scene(3)).save(query)
        assert collection.search(query, k=1)[0].path == "scene3.jpg"

        time.sleep(1.1)  # S3 times have 1 s resolution
        put("scene4.jpg", scene(20))  # same name, new picture
        s3.rm("photos/trip/scene2.jpg")
        again = Collection.index_folder("s3://photos/trip", db)[1]
        assert (again.changes.added, again.changes.changed, again.changes.removed) == (0, 1, 1)
        assert again.embed.embedded == 1
        crop(scene(20)).save(query)
        assert collection.search(query, k=1)[0].path == "scene4.jpg"
    finally:
        server.stop()


def test_whether_the_model_embeds_text_is_known_without_loading_it(photo_folder: Path) -> None:
    Collection.index_folder(photo_folder, model="classic")
    reopened = Collection.open(photo_folder)
    assert reopened.embeds_text is False and reopened._backbone is None
    # a collection indexed before this was recorded loads the model once, then records it
    key = reopened.model.key
    with reopened.store.transaction() as db:
        db.execute("DELETE FROM meta WHERE key = ?", (f"text:{key}",))
    older = Collection.open(photo_folder, writable=True)
    assert older.embeds_text is False and older._backbone is not None
    assert older.store.meta(f"text:{key}") == "0"


def test_a_cached_graph_of_more_neighbours_serves_fewer(photo_folder: Path, monkeypatch) -> None:
    from lookalike.knn import knn_graph

    collection, _ = Collection.index_folder(photo_folder, model="classic")
    ids, wide = collection.knn_graph(6)
    expected = knn_graph(collection.vectors()[1], 3)  # what a k = 3 build gives

    def no_new_graph(*args, **kwargs):
        raise AssertionError("a graph was built again")

    monkeypatch.setattr("lookalike.collection.knn_graph", no_new_graph)
    same_ids, narrow = collection.knn_graph(3)
    assert np.array_equal(same_ids, ids) and narrow.k == 3
    np.testing.assert_array_equal(narrow.neighbours, expected.neighbours)
    np.testing.assert_allclose(narrow.scores, expected.scores, rtol=1e-5)
    np.testing.assert_array_equal(narrow.neighbours, np.asarray(wide.neighbours)[:, :3])


def test_neighbour_lists_match_a_search_of_every_image(photo_folder: Path) -> None:
    collection, _ = Collection.index_folder(photo_folder, model="classic")
    images, hits = collection.neighbour_lists(3)
    assert sorted(images) == sorted(photo_folder / r.path for r in collection.files("ok"))
    searched = collection.search_many(images, k=3)
    assert [[h.path for h in found] for found in hits] == [
        [h.path for h in found] for found in searched]
    assert [[h.rank for h in found] for found in hits] == [[1, 2, 3]] * len(images)
    for found, expected in zip(hits, searched):
        assert [h.score for h in found] == pytest.approx([h.score for h in expected], abs=1e-3)
        assert all(h.absolute_path == photo_folder / h.path for h in found)


def test_group_threshold_describes_where_it_came_from(photo_folder: Path) -> None:
    collection, _ = Collection.index_folder(photo_folder, model="classic")
    assert collection.group_threshold(0.9).describe() == "threshold 0.9 (--threshold)"
    calibrated = collection.group_threshold()
    assert calibrated.describe() == (
        f"threshold {calibrated.value:.3f} (calibrated for classic on this collection; "
        "--threshold to change)")
    single = photo_folder.parent / "one"
    single.mkdir()
    scene(3).save(single / "only.jpg")
    lone, _ = Collection.index_folder(single, model="classic")
    assert lone.group_threshold().describe() == (
        "threshold: none (fewer than two images to compare)")


def test_a_search_after_an_index_run_in_the_same_process_sees_its_files(
        photo_folder: Path) -> None:
    """Searches keep what they read until the catalogue changes, and this collection's own
    commits count as a change (SQLite's data_version alone misses them)."""
    collection, _ = Collection.index_folder(photo_folder, model="classic")
    query = photo_folder.parent / "q.jpg"
    crop(scene(30)).save(query)
    assert "new.jpg" not in {hit.path for hit in collection.search(query, k=50)}
    scene(30).save(photo_folder / "new.jpg")
    collection.index()
    assert collection.search(query, k=1)[0].path == "new.jpg"


def test_a_bad_query_of_a_batch_fails_only_itself(photo_folder: Path) -> None:
    from lookalike.collection import NotEmbedded

    collection, _ = Collection.index_folder(photo_folder, model="classic")
    record = collection.store.file_by_path("scene0.jpg")
    assert record is not None
    unknown, short, known = collection.search_queries(
        [10**20, np.zeros(3, np.float32), record.id], 3)
    assert isinstance(unknown, NotEmbedded) and isinstance(unknown, KeyError)
    assert str(unknown) == f"no embedded image with id {10**20}"
    assert isinstance(short, ValueError) and "must have 272 numbers, not 3" in str(short)
    assert not isinstance(known, Exception)
    assert [n.record.path for n in known] == [h.path for h in collection.search(record.id, 3)]
    with pytest.raises(StoreError, match="no embedded image with id 999"):
        collection.search(999, k=1)


def test_a_rebuild_deletes_only_embeddings_files_named_as_lookalike_names_them(
        photo_folder: Path) -> None:
    """A catalogue naming another file as a model's embeddings (damaged, or written by
    hand) never gets that file deleted when the model is replaced."""
    collection, _ = Collection.index_folder(photo_folder, model="classic")
    with collection.store.transaction() as db:  # embeddings/../../scene0.jpg: a user's photo
        db.execute("UPDATE models SET file = '../../scene0.jpg'")
    report = collection.index(rebuild=True)
    assert (photo_folder / "scene0.jpg").is_file()
    assert report.new_model and report.embed.embedded == 10
    assert collection.search(photo_folder / "sub" / "scene0-crop.jpg", k=1)[0].path == "scene0.jpg"


def test_a_collection_dropped_unclosed_lets_go_of_the_writer_lock_at_once(
        photo_folder: Path) -> None:
    """What a Collection hands its parts (index, search state, projection, graph cache)
    holds no reference back to it: dropping it frees its store, and the writer lock,
    without waiting for the garbage collector."""
    fcntl = pytest.importorskip("fcntl")
    import gc

    collection, _ = Collection.index_folder(photo_folder, model="classic")
    assert collection.search(photo_folder / "scene0.jpg", k=3)
    assert len(collection.knn_graph(3)[0]) == 10 and not collection.check()
    lock = collection.directory / Store.WRITER_LOCK
    gc.disable()
    try:
        del collection
        with open(lock, "a+") as handle:  # a second flock on the file fails while it is held
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        gc.enable()
