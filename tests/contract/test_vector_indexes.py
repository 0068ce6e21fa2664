"""The contract every ``VectorIndex`` kind keeps, checked the same way for each (in the
manner of scikit-learn's ``parametrize_with_checks``): a new kind joins ``KINDS``.

Keys go in and come out unchanged (they are not row numbers); an indexed vector is its
own nearest neighbour; results are ``[m, k]`` float32 scores and int64 keys, best first,
padded with -1 / -inf; a saved index loads back answering the same; an empty index
answers with padding; kinds that add or remove do so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lookalike.index import (
    AnnoyIndex,
    FlatIndex,
    HNSWIndex,
    IVFPQIndex,
    VectorIndex,
    build_index,
    load_index,
)
from lookalike.index_disk import write_ivfpq
from tests.conftest import requires_annoy

DIM, N, NEW = 32, 700, 50  # 700 vectors: enough to train a (4-bit) IVF-PQ
ROWS = np.random.default_rng(0).standard_normal((N + NEW, DIM)).astype(np.float32)
ROWS /= np.linalg.norm(ROWS, axis=1, keepdims=True)
# Keys are not row numbers, so a row/key mix-up cannot pass.
ALL_KEYS = np.arange(N + NEW, dtype=np.int64) * 3 + 5
VECTORS, KEYS = ROWS[:N], ALL_KEYS[:N]
NEW_VECTORS, NEW_KEYS = ROWS[N:], ALL_KEYS[N:]
# What an index re-ranking from the store reads: row ``key`` holds the vector of ``key``.
SOURCE = np.zeros((ALL_KEYS.max() + 1, DIM), np.float32)
SOURCE[ALL_KEYS] = ROWS


@dataclass(frozen=True)
class Kind:
    """How to make and change one kind of index (``folder``: where it may keep files)."""

    build: Callable[[np.ndarray, np.ndarray, Path], VectorIndex]
    empty: Callable[[Path], VectorIndex]
    change: Callable[[VectorIndex, np.ndarray, np.ndarray, Path], VectorIndex] | None = None

    def add(self, index: VectorIndex, keys: np.ndarray, folder: Path) -> VectorIndex:
        if self.change is not None:
            return self.change(index, keys, np.zeros(0, np.int64), folder)
        index.add(SOURCE[keys], keys)
        return index

    def remove(self, index: VectorIndex, keys: np.ndarray, folder: Path) -> VectorIndex:
        if self.change is not None:
            return self.change(index, np.zeros(0, np.int64), keys, folder)
        index.remove(keys)
        return index


def disk_index(keys: np.ndarray, folder: Path) -> VectorIndex:
    """IVF-PQ written list by list to disk, memory-mapped, re-ranking from ``SOURCE``."""
    trained = IVFPQIndex.train(VECTORS, rerank_source="external")
    write_ivfpq(folder / "disk.ivfpq", trained, SOURCE, keys)
    return reopen_disk(folder)


def reopen_disk(folder: Path) -> VectorIndex:
    index = load_index(folder / "disk.ivfpq", mmap=True)
    index.attach(SOURCE)  # type: ignore[attr-defined]
    return index


def change_disk(index: VectorIndex, add: np.ndarray, remove: np.ndarray,
                folder: Path) -> VectorIndex:
    write_ivfpq(folder / "disk.ivfpq", index, SOURCE, add, remove=remove)  # type: ignore[arg-type]
    return reopen_disk(folder)


KINDS = {
    "flat": Kind(lambda v, k, _: build_index("flat", v, k), lambda _: FlatIndex.create(DIM)),
    "hnsw": Kind(lambda v, k, _: build_index("hnsw", v, k), lambda _: HNSWIndex.create(DIM)),
    "ivfpq": Kind(lambda v, k, _: build_index("ivfpq", v, k),
                  lambda _: IVFPQIndex.train(VECTORS)),
    "annoy": Kind(lambda v, k, _: build_index("annoy", v, k),
                  lambda _: AnnoyIndex.build(VECTORS[:0], KEYS[:0])),
    "ivfpq-on-disk": Kind(lambda v, k, folder: disk_index(k, folder),
                          lambda folder: disk_index(KEYS[:0], folder), change_disk),
}
PARAMS = [pytest.param(name, marks=[requires_annoy] if name == "annoy" else [])
          for name in KINDS]


@pytest.fixture(params=PARAMS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def built(kind: str, folder: Path) -> VectorIndex:
    index = KINDS[kind].build(VECTORS, KEYS, folder)
    assert index.kind == kind.removesuffix("-on-disk")
    return index


def assert_well_formed(scores: np.ndarray, keys: np.ndarray, m: int, k: int) -> None:
    assert scores.dtype == np.float32 and keys.dtype == np.int64
    assert scores.shape == keys.shape == (m, k)
    found = keys >= 0
    assert (np.diff(np.where(found, scores, -2.0), axis=1) <= 1e-6).all()  # best first
    assert np.isneginf(scores[~found]).all()


def test_every_indexed_vector_finds_itself_first(kind: str, tmp_path: Path) -> None:
    index = built(kind, tmp_path)
    rows = np.arange(0, N, 37)
    scores, keys = index.search(VECTORS[rows], 5)
    assert_well_formed(scores, keys, len(rows), 5)
    np.testing.assert_array_equal(keys[:, 0], KEYS[rows])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-3)
    assert np.isin(keys, KEYS).all()


def test_keys_are_kept_as_given(kind: str, tmp_path: Path) -> None:
    index = built(kind, tmp_path)
    assert len(index) == N and index.dim == DIM
    np.testing.assert_array_equal(index.keys(), KEYS)


def test_saved_index_loads_answering_the_same(kind: str, tmp_path: Path) -> None:
    index = built(kind, tmp_path)
    queries = ROWS[N:]  # not indexed: exercises the ranking, not only the self-match
    before = index.search(queries, 10)
    if kind == "ivfpq-on-disk":  # it lives on disk: opening it again is the round trip
        loaded = reopen_disk(tmp_path)
    else:
        index.save(tmp_path / "saved.index")
        loaded = load_index(tmp_path / "saved.index")
    assert type(loaded) is type(index) and loaded.params == index.params
    np.testing.assert_array_equal(loaded.keys(), KEYS)
    after = loaded.search(queries, 10)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_allclose(after[0], before[0], atol=1e-6)


def test_empty_index_answers_with_padding(kind: str, tmp_path: Path) -> None:
    index = KINDS[kind].empty(tmp_path)
    assert len(index) == 0 and index.keys().size == 0
    scores, keys = index.search(VECTORS[:3], 4)
    assert_well_formed(scores, keys, 3, 4)
    assert (keys == -1).all()


def test_fewer_vectors_than_k_are_padded(kind: str, tmp_path: Path) -> None:
    index = built(kind, tmp_path)
    scores, keys = index.search(VECTORS[:2], N + 20)
    assert_well_formed(scores, keys, 2, N + 20)
    assert (keys[:, N:] == -1).all()


def test_added_vectors_are_found(kind: str, tmp_path: Path) -> None:
    index = built(kind, tmp_path)
    if not index.supports_add:
        pytest.skip(f"{kind} indexes are immutable: rebuilt instead")
    index = KINDS[kind].add(index, NEW_KEYS, tmp_path)
    assert len(index) == N + NEW
    np.testing.assert_array_equal(index.keys(), ALL_KEYS)
    _, keys = index.search(NEW_VECTORS, 1)
    np.testing.assert_array_equal(keys[:, 0], NEW_KEYS)
    with pytest.raises(ValueError, match="already in the index"):
        index.add(VECTORS[:1], KEYS[:1])


def test_removed_vectors_are_never_returned(kind: str, tmp_path: Path) -> None:
    index = built(kind, tmp_path)
    if not index.supports_remove:
        with pytest.raises(NotImplementedError):
            index.remove(KEYS[:1])
        return
    gone = KEYS[::10]
    index = KINDS[kind].remove(index, gone, tmp_path)
    assert len(index) == N - len(gone)
    np.testing.assert_array_equal(index.keys(), np.setdiff1d(KEYS, gone))
    _, keys = index.search(VECTORS[::10], 10)
    assert not np.isin(keys, gone).any()
