"""Label-noise suspects on planted neighbourhoods: the misfiled items rank first."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.analyse.label_noise import find_label_suspects
from lookalike.knn import KnnGraph, knn_graph


def planted(seed: int = 0) -> tuple[np.ndarray, list[str | None]]:
    """Three tight classes of 30 points; labels say so except for 4 swapped ones."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 32))
    points = np.concatenate([c + 0.15 * rng.normal(size=(30, 32)) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labels: list[str | None] = [name for name in "abc" for _ in range(30)]
    return points.astype(np.float32), labels


def test_swapped_labels_rank_first_with_the_right_suggestion() -> None:
    vectors, labels = planted()
    for position, wrong in ((3, "b"), (17, "c"), (40, "a"), (77, "a")):
        labels[position] = wrong
    graph = knn_graph(vectors, 8)
    found = find_label_suspects(graph, labels, np.arange(100, 190), [f"f{i}" for i in range(90)])
    assert sorted(found.top(4).tolist()) == [3, 17, 40, 77]
    truth = {3: "a", 17: "a", 40: "b", 77: "c"}
    assert all(found.suggested[p] == truth[p] for p in truth)
    assert all(found.agreement[p] < 0.2 for p in truth)
    assert found.agreement[found.ranking[4]] >= 0.7  # the rest: at most 2 wrong votes of 8
    rows = found.rows(2)
    assert [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["id"] == 100 + int(rows[0]["path"][1:])
    # a's votes go mostly to a; the swapped b-labelled item in a's cloud sends b's votes to a
    assert found.confusion["a"]["a"] > 0.85
    assert found.confusion["b"]["a"] > 0.0


def test_unlabelled_items_never_vote_nor_rank() -> None:
    vectors, labels = planted(1)
    labels[5] = None
    labels[6] = "b"
    graph = knn_graph(vectors, 6)
    found = find_label_suspects(graph, labels, np.arange(90), [str(i) for i in range(90)])
    assert 5 not in found.ranking.tolist() and len(found.ranking) == 89
    assert found.ranking[0] == 6 and found.suggested[6] == "a"


def test_missing_neighbours_and_lone_items_agree_fully() -> None:
    graph = KnnGraph(np.array([[1, -1], [0, -1], [-1, -1]]),
                     np.array([[0.9, 0.0], [0.9, 0.0], [0.0, 0.0]], dtype=np.float32))
    found = find_label_suspects(graph, ["a", "b", "a"], np.arange(3), ["x", "y", "z"])
    assert found.agreement.tolist() == [0.0, 0.0, 1.0]
    assert found.suggested == ["b", "a", None]
    with pytest.raises(ValueError, match="3 graph rows but 2 labels"):
        find_label_suspects(graph, ["a", "b"], np.arange(3), ["x", "y", "z"])
