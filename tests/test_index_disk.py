"""Tests of IVF-PQ indexes written on disk: the files FAISS itself would write, changed
without loading them, and searched memory-mapped."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from lookalike import index_disk
from lookalike.index import IVFPQIndex, load_index
from lookalike.index_disk import write_ivfpq

DIM = 32
N = 12_000
PARAMS = {"nlist": 64, "m": 8, "nprobe": 16, "rerank_source": "external"}


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    """float16 rows, as the store keeps them: row ``key`` is the vector of ``key``."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, DIM)).astype(np.float32)
    rows = centres[rng.integers(0, 40, N)] + 0.5 * rng.standard_normal((N, DIM))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float16)


@pytest.fixture(scope="module")
def trained(vectors: np.ndarray) -> IVFPQIndex:
    return IVFPQIndex.train(vectors, **PARAMS)


@pytest.fixture(autouse=True)
def small_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spill buckets of ~64 KiB: the entries go through many of them."""
    monkeypatch.setattr(index_disk, "BUCKET_BYTES", 1 << 16)
    monkeypatch.setattr(index_disk, "ENCODE_ROWS", 1000)


def in_ram(trained: IVFPQIndex, vectors: np.ndarray, keys: np.ndarray) -> IVFPQIndex:
    """The same trained index, filled in RAM by FAISS's own ``add``."""
    index = IVFPQIndex(faiss.deserialize_index(faiss.serialize_index(trained.ivf)), None,
                       trained.nprobe, trained.rerank, external=True)
    index.add(vectors[keys], keys)
    return index


def cells(index: IVFPQIndex) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each non-empty cell's ids and codes, by id."""
    found = {}
    for cell, ids, codes in index.cells():
        order = np.argsort(ids)
        found[cell] = (ids[order], codes[order])
    return found


def assert_same_cells(a: IVFPQIndex, b: IVFPQIndex) -> None:
    left, right = cells(a), cells(b)
    assert left.keys() == right.keys()
    for cell in left:
        np.testing.assert_array_equal(left[cell][0], right[cell][0])
        np.testing.assert_array_equal(left[cell][1], right[cell][1])


@pytest.mark.parametrize("count", [N, 20])  # most cells used ("full"), few ("sprs")
@pytest.mark.slow
def test_a_new_index_is_the_file_faiss_writes(trained, vectors, tmp_path: Path,
                                              count: int) -> None:
    keys = np.random.default_rng(1).permutation(N)[:count]  # in no particular order
    write_ivfpq(tmp_path / "disk.ivfpq", trained, vectors, keys)
    expected = in_ram(trained, vectors, keys)
    expected.save(tmp_path / "ram.ivfpq")
    assert (tmp_path / "disk.ivfpq").read_bytes() == (tmp_path / "ram.ivfpq").read_bytes()
    assert len(trained) == 0  # the base is not changed
    mapped = load_index(tmp_path / "disk.ivfpq", mmap=True)
    assert mapped.memory_mapped and len(mapped) == count and mapped.params == trained.params
    assert not list(tmp_path.glob(".*"))  # the spill is gone


def test_a_change_rewrites_the_mapped_index(trained, vectors, tmp_path: Path) -> None:
    path = tmp_path / "disk.ivfpq"
    first = np.arange(0, 10_000)
    write_ivfpq(path, trained, vectors, first)
    base = load_index(path, mmap=True)
    removed, added = np.arange(0, 10_000, 3), np.arange(10_000, N)
    write_ivfpq(path, base, vectors, added, remove=np.concatenate([removed, [N + 5]]),
                bucket_bytes=4096)  # one bucket per cell
    changed = load_index(path, mmap=True)
    keys = np.union1d(np.setdiff1d(first, removed), added)
    np.testing.assert_array_equal(changed.keys(), keys)
    expected = in_ram(trained, vectors, keys)
    assert_same_cells(changed, expected)
    # the search answers are those of the index built in RAM, re-ranked from the rows
    queries = np.asarray(vectors[[5, 10_500, 11_999]], dtype=np.float32)
    for index in (changed, expected):
        index.attach(vectors)
    got, want = changed.search(queries, 10), expected.search(queries, 10)
    np.testing.assert_array_equal(got[1], want[1])
    assert got[1][1, 0] == 10_500 and got[1][2, 0] == 11_999
    # base still reads its own (replaced) file: a reader's mapping stays valid
    assert len(base) == len(first)


def test_removing_everything_leaves_an_empty_usable_index(trained, vectors, tmp_path):
    path = tmp_path / "disk.ivfpq"
    write_ivfpq(path, trained, vectors, np.arange(100))
    write_ivfpq(path, load_index(path, mmap=True), vectors, [], remove=np.arange(100))
    empty = load_index(path, mmap=True)
    assert len(empty) == 0
    assert (empty.search(np.asarray(vectors[:1], np.float32), 3)[1] == -1).all()


def test_refuses_a_base_it_cannot_stream(trained, vectors, tmp_path: Path) -> None:
    loaded = in_ram(trained, vectors, np.arange(100))
    with pytest.raises(ValueError, match="empty or memory-mapped"):
        write_ivfpq(tmp_path / "x.ivfpq", loaded, vectors, np.arange(100, 200))
    write_ivfpq(tmp_path / "a.ivfpq", trained, vectors, np.arange(100))
    write_ivfpq(tmp_path / "b.ivfpq", trained, vectors, np.arange(500))
    mapped_a = load_index(tmp_path / "a.ivfpq", mmap=True)
    with pytest.raises(ValueError, match="not the single IVF-PQ index"):
        write_ivfpq(tmp_path / "b.ivfpq", mapped_a, vectors, np.arange(600, 700))
    assert len(load_index(tmp_path / "b.ivfpq", mmap=True)) == 500  # left as it was


def test_progress_counts_the_vectors_encoded(trained, vectors, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    write_ivfpq(tmp_path / "x.ivfpq", trained, vectors, np.arange(2500),
                progress=lambda *call: calls.append(call))
    assert calls == [(1000, 2500), (2000, 2500), (2500, 2500)]
