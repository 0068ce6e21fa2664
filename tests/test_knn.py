from __future__ import annotations

import numpy as np
import pytest

from lookalike.index import build_index
from lookalike.knn import cell_knn_graph, knn_graph


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_graph_equals_brute_force_and_excludes_self() -> None:
    vectors = _unit(np.random.default_rng(0).standard_normal((500, 16)))
    graph = knn_graph(vectors, k=5)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    expected = np.argsort(-similarity, axis=1)[:, :5]
    np.testing.assert_array_equal(graph.neighbours, expected)
    np.testing.assert_allclose(graph.scores, np.take_along_axis(similarity, expected, 1),
                               atol=1e-5)
    assert not (graph.neighbours == np.arange(500)[:, None]).any()


def test_exact_copies_are_neighbours_not_self() -> None:
    base = _unit(np.random.default_rng(1).standard_normal((50, 8)))
    vectors = np.concatenate([base, base[:5]])  # rows 50..54 duplicate rows 0..4
    graph = knn_graph(vectors, k=3)
    for copy, original in zip(range(50, 55), range(5)):
        assert graph.neighbours[copy, 0] == original
        assert graph.neighbours[original, 0] == copy
        assert graph.scores[copy, 0] > 0.9999


def test_existing_index_keyed_by_store_rows() -> None:
    vectors = _unit(np.random.default_rng(2).standard_normal((200, 8)))
    rows = np.arange(200, dtype=np.int64) * 3 + 7  # store rows are not positions
    index = build_index("flat", vectors, rows)
    from_index = knn_graph(vectors, k=4, index=index, keys=rows)
    fresh = knn_graph(vectors, k=4)
    np.testing.assert_array_equal(from_index.neighbours, fresh.neighbours)


def test_small_collections_pad_missing_neighbours() -> None:
    vectors = _unit(np.random.default_rng(3).standard_normal((3, 4)))
    graph = knn_graph(vectors, k=5)
    assert (graph.neighbours[:, 2:] == -1).all() and np.isneginf(graph.scores[:, 2:]).all()


def test_pairs_are_unique_undirected_and_mutuality() -> None:
    vectors = _unit(np.array([[1, 0], [0.99, 0.14], [0, 1], [-1, 0.05]], dtype=np.float32))
    graph = knn_graph(vectors, k=1)
    low, high, scores = graph.pairs()
    # nn(0)=1, nn(1)=0, nn(2)=1, nn(3)=2: the 0-1 edge appears once although found twice
    assert list(zip(low.tolist(), high.tolist())) == [(0, 1), (1, 2), (2, 3)]
    assert graph.is_mutual(low, high).tolist() == [True, False, False]
    strong = graph.pairs(min_score=0.9)
    assert list(zip(strong[0].tolist(), strong[1].tolist())) == [(0, 1)]


def clustered(n: int, dim: int = 32, centres: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centres, dim)).astype(np.float32)
    points = middle[rng.integers(0, centres, n)] + 0.5 * rng.standard_normal(
        (n, dim)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def test_cell_graph_finds_planted_copies_and_nearly_all_true_neighbours() -> None:
    vectors = clustered(6000)
    rng = np.random.default_rng(1)
    originals, copies = rng.choice(6000, 60, replace=False).reshape(2, 30)
    noisy = vectors[originals] + 0.01 * rng.standard_normal((30, 32)).astype(np.float32)
    vectors[copies] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    graph = cell_knn_graph(vectors, 10)
    exact = knn_graph(vectors, 10)  # below CELL_MIN: exact
    assert (graph.neighbours != np.arange(6000)[:, None]).all()  # never itself
    assert graph.is_mutual(originals, copies).all()
    assert np.allclose(graph.scores[copies, 0], exact.scores[copies, 0])
    found = [len(set(a) & set(b)) for a, b in zip(graph.neighbours, exact.neighbours)]
    assert np.mean(found) / 10 > 0.97
    assert (np.diff(graph.scores, axis=1) <= 0).all()  # best first


def test_large_inputs_take_the_cell_path(monkeypatch) -> None:
    import lookalike.knn as knn

    calls = []
    monkeypatch.setattr(knn, "CELL_MIN", 1000)
    monkeypatch.setattr(knn, "cell_knn_graph",
                        lambda vectors, k, **options: calls.append(len(vectors)))
    knn.knn_graph(clustered(999), 5)
    knn.knn_graph(clustered(1000), 5)
    assert calls == [1000]


@pytest.mark.parametrize("cell_min", [50_000, 500])
def test_graph_built_on_disk_equals_the_one_in_ram(tmp_path, monkeypatch, cell_min) -> None:
    import lookalike.knn as knn

    monkeypatch.setattr(knn, "CELL_MIN", cell_min)  # 500: the cell builder runs
    vectors = clustered(2000)
    in_ram = knn.knn_graph(vectors, 6)
    on_disk = knn.knn_graph(vectors, 6, out=tmp_path / "graph")
    assert isinstance(on_disk.neighbours, np.memmap) and isinstance(on_disk.scores, np.memmap)
    assert sorted(p.name for p in (tmp_path / "graph").iterdir()) == ["neighbours.npy",
                                                                      "scores.npy"]
    np.testing.assert_array_equal(on_disk.neighbours, in_ram.neighbours)
    np.testing.assert_array_equal(on_disk.scores, in_ram.scores)


def test_pairs_read_in_blocks_equal_pairs_read_whole(monkeypatch) -> None:
    import lookalike.knn as knn

    graph = knn.knn_graph(clustered(3000), 8)
    whole = graph.pairs(0.5)
    monkeypatch.setattr(knn, "PAIRS_BLOCK", 7)
    for got, expected in zip(graph.pairs(0.5), whole):
        np.testing.assert_array_equal(got, expected)
    assert len(whole[0]) > 3000  # the threshold keeps a real share of the edges
