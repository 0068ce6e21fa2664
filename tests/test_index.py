"""Tests of the vector-index stage against brute-force numpy search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lookalike import index as index_module
from lookalike.index import (
    INDEX_KINDS,
    IndexDamaged,
    VectorIndex,
    build_index,
    choose_kind,
    load_index,
)
from lookalike.ownership import checksum
from tests.conftest import ANNOY, index_kind, requires_annoy

DIM = 32
N = 2000
# Keys deliberately differ from row numbers, so a row/key mix-up cannot pass.
KEYS = np.arange(N, dtype=np.int64) * 3 + 5
# Parameters for which the approximate kinds are near-exact on this small data.
PARAMS: dict[str, dict] = {
    "flat": {},
    "hnsw": {},
    "ivfpq": {"m": 16, "nprobe": 32},
    "annoy": {"n_trees": 50, "search_k": 20_000},
}


def unit_rows(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return unit_rows(N, seed=0)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return unit_rows(50, seed=1)


def brute_force(
    vectors: np.ndarray, keys: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ vectors.T
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, best, 1), keys[best]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def test_flat_is_exact(vectors: np.ndarray, queries: np.ndarray) -> None:
    index = build_index("flat", vectors, KEYS)
    scores, keys = index.search(queries, 10)
    true_scores, true_keys = brute_force(vectors, KEYS, queries, 10)
    assert scores.dtype == np.float32 and keys.dtype == np.int64
    np.testing.assert_array_equal(keys, true_keys)
    np.testing.assert_allclose(scores, true_scores, atol=1e-5)


@pytest.mark.slow
def test_float16_memmap_is_converted_in_chunks(
    vectors: np.ndarray, queries: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "_CHUNK_ROWS", 300)
    stored = np.lib.format.open_memmap(tmp_path / "v.npy", "w+", np.float16, vectors.shape)
    stored[:] = vectors
    stored.flush()
    half = np.load(tmp_path / "v.npy", mmap_mode="r")
    index = build_index("flat", half, KEYS)
    true_scores, true_keys = brute_force(half.astype(np.float32), KEYS, queries, 10)
    scores, keys = index.search(queries, 10)
    np.testing.assert_array_equal(keys, true_keys)
    np.testing.assert_allclose(scores, true_scores, atol=1e-5)
    ivfpq = build_index("ivfpq", half, KEYS, **PARAMS["ivfpq"])  # trains on a chunked sample
    assert recall(ivfpq.search(queries, 10)[1], true_keys) >= 0.9


@requires_annoy
def test_annoy_agrees_with_flat(vectors: np.ndarray, queries: np.ndarray) -> None:
    annoy_scores, annoy_keys = build_index("annoy", vectors, KEYS, **PARAMS["annoy"]).search(
        queries, 10
    )
    flat_scores, flat_keys = build_index("flat", vectors, KEYS).search(queries, 10)
    assert recall(annoy_keys, flat_keys) >= 0.98
    np.testing.assert_array_equal(annoy_keys[:, 0], flat_keys[:, 0])
    # Angular distance converted back to cosine.
    np.testing.assert_allclose(annoy_scores[:, 0], flat_scores[:, 0], atol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_kinds_reach_recall(
    kind: str, vectors: np.ndarray, queries: np.ndarray
) -> None:
    index = build_index(kind, vectors, KEYS, **PARAMS[kind])
    assert index.kind == kind
    scores, keys = index.search(queries, 10)
    true_scores, true_keys = brute_force(vectors, KEYS, queries, 10)
    assert recall(keys, true_keys) >= 0.9
    # Both score candidates exactly (ivfpq from a float16 copy), so they are true cosines.
    exact = np.einsum("mkd,md->mk", vectors[(keys - 5) // 3], queries)
    np.testing.assert_allclose(scores, exact, atol=1e-5 if kind == "hnsw" else 1e-3)


@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
@pytest.mark.slow
def test_add_then_remove(kind: str, vectors: np.ndarray, queries: np.ndarray) -> None:
    index = build_index(kind, vectors[:1500], KEYS[:1500], **PARAMS[kind])
    assert index.kind == kind and index.supports_add and index.supports_remove
    index.add(vectors[1500:], KEYS[1500:])
    assert len(index) == N
    np.testing.assert_array_equal(index.keys(), KEYS)
    # An added vector is its own nearest neighbour.
    scores, keys = index.search(vectors[1500:1510], 1)
    np.testing.assert_array_equal(keys[:, 0], KEYS[1500:1510])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5 if kind == "flat" else 1e-3)

    before = index.search(queries, 10)[1]
    gone = np.union1d(before[:, :3].ravel(), KEYS[1500:1600])
    index.remove(np.append(gone, 10**9))  # an absent key is ignored
    kept = ~np.isin(KEYS, gone)
    assert len(index) == kept.sum()
    np.testing.assert_array_equal(index.keys(), KEYS[kept])
    after = index.search(np.concatenate([queries, vectors[1500:1600]]), 10)[1]
    assert not np.isin(after, gone).any()
    true_keys = brute_force(vectors[kept], KEYS[kept], queries, 10)[1]
    assert recall(after[: len(queries)], true_keys) >= (1.0 if kind == "flat" else 0.9)


def test_add_rejects_existing_keys(vectors: np.ndarray) -> None:
    index = build_index("flat", vectors[:10], KEYS[:10])
    with pytest.raises(ValueError, match="already"):
        index.add(vectors[10:12], KEYS[9:11])
    with pytest.raises(ValueError, match="unique"):
        build_index("flat", vectors[:2], np.array([4, 4]))
    with pytest.raises(ValueError, match="non-negative"):
        build_index("flat", vectors[:2], np.array([-1, 4]))
    assert len(index) == 10


@pytest.mark.parametrize(
    ("kind", "params"),
    [index_kind(kind, PARAMS[kind]) for kind in INDEX_KINDS] + [("ivfpq", {"rerank": 0})],
)
@pytest.mark.slow
def test_save_load_round_trip(
    kind: str, params: dict, vectors: np.ndarray, queries: np.ndarray, tmp_path: Path
) -> None:
    index = build_index(kind, vectors, KEYS, **params)
    path = tmp_path / "vectors.index"
    index.save(path)
    index.save(path)  # overwriting an existing index works too
    meta = json.loads(path.with_name("vectors.index.json").read_text())
    checksums = meta.pop("checksums")
    assert meta == {"kind": kind, "dim": DIM, "params": index.params, "count": N}
    assert checksums["vectors.index"] == checksum(path)
    assert not list(tmp_path.glob(".*.tmp"))

    loaded = load_index(path)
    assert (type(loaded), loaded.params, len(loaded)) == (type(index), index.params, N)
    np.testing.assert_array_equal(loaded.keys(), KEYS)
    for got, expected in zip(loaded.search(queries, 10), index.search(queries, 10), strict=True):
        np.testing.assert_array_equal(got, expected)
    if loaded.supports_add:
        loaded.add(queries[:1], np.array([1]))
        assert loaded.search(queries[:1], 1)[1][0, 0] == 1


def test_load_detects_a_sidecar_from_another_save(vectors: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "vectors.index"
    build_index("flat", vectors, KEYS).save(path)
    sidecar = path.with_name("vectors.index.json")
    sidecar.write_text(sidecar.read_text().replace(f'"count": {N}', '"count": 7'))
    with pytest.raises(ValueError, match="interrupted save"):
        load_index(path)


# 700 vectors are enough to train a (4-bit) IVF-PQ; on them, HNSW stops short of all 700.
@pytest.mark.parametrize(("kind", "n"), [("flat", 5), ("hnsw", 5), ("ivfpq", 700),
                                             index_kind("annoy", 5)])
def test_results_are_padded_when_k_exceeds_count(kind: str, n: int, vectors: np.ndarray) -> None:
    k = n + 300
    index = build_index(kind, vectors[:n], KEYS[:n])
    assert index.kind == kind
    scores, keys = index.search(vectors[:3], k)
    assert scores.shape == keys.shape == (3, k)
    found = keys >= 0
    assert (found.sum(axis=1) == n).all()
    assert (keys[:, n:] == -1).all() and np.isneginf(scores[:, n:]).all()
    assert (np.diff(scores[:, :n], axis=1) <= 1e-6).all()


def test_empty_index_returns_only_padding(vectors: np.ndarray) -> None:
    index = build_index("auto", vectors[:0], KEYS[:0])
    assert index.kind == "flat" and len(index) == 0 and index.keys().size == 0
    scores, keys = index.search(vectors[:2], 3)
    assert (keys == -1).all() and np.isneginf(scores).all()


def test_choose_kind_thresholds() -> None:
    assert choose_kind(0) == choose_kind(49_999) == "flat"
    assert choose_kind(50_000) == choose_kind(5_000_000) == "hnsw"
    assert choose_kind(5_000_001) == "ivfpq"
    with pytest.raises(ValueError):
        choose_kind(-1)


def test_too_small_for_ivfpq_falls_back_to_flat(vectors: np.ndarray) -> None:
    index = build_index("ivfpq", vectors[:100], KEYS[:100])
    assert index.kind == "flat"


@pytest.mark.parametrize("kind", ["hnsw", ANNOY])
def test_unsupported_operations_raise(kind: str, vectors: np.ndarray) -> None:
    index: VectorIndex = build_index(kind, vectors[:100], KEYS[:100])
    assert not index.supports_remove
    with pytest.raises(NotImplementedError):
        index.remove(KEYS[:1])
    assert index.supports_add == (kind == "hnsw")
    if kind == "annoy":
        with pytest.raises(NotImplementedError):
            index.add(vectors[100:101], KEYS[100:101])


def test_bad_arguments_are_rejected(vectors: np.ndarray) -> None:
    with pytest.raises(ValueError, match="unknown index kind"):
        build_index("lsh", vectors, KEYS)
    with pytest.raises(TypeError):
        build_index("hnsw", vectors[:10], KEYS[:10], nprobe=3)
    index = build_index("flat", vectors[:10], KEYS[:10])
    with pytest.raises(ValueError, match="shape"):
        index.search(vectors[:2, :16], 3)
    with pytest.raises(ValueError, match="k must be"):
        index.search(vectors[:2], 0)


@pytest.mark.slow
def test_ivfpq_reranks_from_an_attached_memmap(vectors, queries, tmp_path: Path) -> None:
    """``rerank_source="external"``: no copy inside the index; re-ranking reads the caller's
    float16 array by key and gives the same answer as the built-in copy."""
    stored = np.lib.format.open_memmap(tmp_path / "rows.npy", mode="w+", dtype=np.float16,
                                       shape=(int(KEYS.max()) + 1, DIM))
    stored[KEYS] = vectors
    stored.flush()
    copy = build_index("ivfpq", vectors, KEYS, **PARAMS["ivfpq"])
    external = build_index("ivfpq", vectors, KEYS, rerank_source="external",
                           **PARAMS["ivfpq"])
    with pytest.raises(ValueError, match="attach"):
        external.search(queries, 10)
    external.attach(np.load(tmp_path / "rows.npy", mmap_mode="r"))
    expected_scores, expected_keys = copy.search(queries, 10)
    scores, keys = external.search(queries, 10)
    assert (keys == expected_keys).mean() > 0.98  # same PQ candidates, same exact re-rank
    np.testing.assert_allclose(scores[keys == expected_keys],
                               expected_scores[keys == expected_keys], atol=1e-6)
    external.save(tmp_path / "index")
    assert (tmp_path / "index").stat().st_size < 0.6 * (tmp_path / "rows.npy").stat().st_size
    loaded = load_index(tmp_path / "index")
    assert loaded.params["rerank_source"] == "external"
    loaded.attach(np.load(tmp_path / "rows.npy", mmap_mode="r"))
    np.testing.assert_array_equal(loaded.search(queries, 10)[1], keys)

    # memory-mapped: the same answers from the page cache, and no change let through
    # (FAISS would abort the whole process on one)
    mapped = load_index(tmp_path / "index", mmap=True)
    assert mapped.memory_mapped and not loaded.memory_mapped
    mapped.attach(np.load(tmp_path / "rows.npy", mmap_mode="r"))
    np.testing.assert_array_equal(mapped.search(queries, 10)[1], keys)
    np.testing.assert_array_equal(mapped.keys(), np.sort(KEYS))
    with pytest.raises(RuntimeError, match="read-only"):
        mapped.add(vectors[:1], np.array([10**9]))
    with pytest.raises(RuntimeError, match="read-only"):
        mapped.remove(KEYS[:1])
    assert len(mapped) == len(KEYS)


@pytest.mark.slow
def test_large_nlist_routes_through_an_hnsw_quantizer(vectors, queries) -> None:
    import faiss

    true_keys = KEYS[np.argsort(-(queries @ vectors.T), axis=1)[:, :10]]
    scanned = build_index("ivfpq", vectors, KEYS, nlist=16, m=16, nprobe=8)
    routed = build_index("ivfpq", vectors, KEYS, nlist=16, m=16, nprobe=8,
                         hnsw_quantizer_nlist=8)
    assert isinstance(faiss.downcast_index(routed._ivf.quantizer), faiss.IndexHNSWFlat)
    assert recall(routed.search(queries, 10)[1], true_keys) >= recall(
        scanned.search(queries, 10)[1], true_keys) - 0.02


def test_max_memory_moves_auto_to_ivfpq() -> None:
    from lookalike.index import index_memory

    assert choose_kind(1_000_000, 384) == "hnsw"
    assert index_memory("hnsw", 1_000_000, 384) > 1.5e9
    assert choose_kind(1_000_000, 384, max_memory=2 * 2**30) == "hnsw"
    assert choose_kind(1_000_000, 384, max_memory=1 * 2**30) == "ivfpq"
    assert choose_kind(30_000, 384, max_memory=10 * 2**20) == "ivfpq"  # even below 50k
    assert choose_kind(100, 384, max_memory=1) == "flat"  # too few to train IVF-PQ


@pytest.mark.parametrize("kind", [index_kind(kind) for kind in INDEX_KINDS])
@pytest.mark.slow
def test_build_reports_progress_per_chunk(vectors: np.ndarray, monkeypatch, kind: str) -> None:
    monkeypatch.setattr(index_module, "_CHUNK_ROWS", 700)
    calls: list[tuple[int, int]] = []
    index = build_index(kind, vectors, KEYS, progress=lambda *call: calls.append(call),
                        **PARAMS[kind])
    assert calls == [(700, N), (1400, N), (N, N)] and len(index) == N


@pytest.mark.parametrize("kind", [index_kind(kind) for kind in INDEX_KINDS])
@pytest.mark.slow
def test_damaged_index_is_refused_not_read(kind: str, vectors: np.ndarray,
                                           tmp_path: Path) -> None:
    path = tmp_path / "vectors.index"
    build_index(kind, vectors, KEYS, **PARAMS[kind]).save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: a search would silently rank garbage
    path.write_bytes(bytes(data))
    with pytest.raises(IndexDamaged, match="damaged"):
        load_index(path)
    path.write_bytes(bytes(data[: len(data) // 3]))  # truncated
    with pytest.raises(IndexDamaged, match="damaged"):
        load_index(path)
