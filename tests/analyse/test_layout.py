"""The 2-D map: deterministic, and neighbours in the embedding stay neighbours on it."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.analyse.layout import EPOCHS, map_2d
from lookalike.knn import KnnGraph


def planted(clusters: int = 6, size: int = 80, dim: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Tight clusters around random unit centres, shuffled."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(clusters, dim))
    labels = np.repeat(np.arange(clusters), size)
    vectors = centres[labels] + rng.normal(scale=0.35, size=(len(labels), dim))
    order = rng.permutation(len(labels))
    return vectors[order].astype(np.float32), labels[order]


def nearest(points: np.ndarray, k: int) -> np.ndarray:
    distances = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


def test_graph_layout_is_deterministic_and_keeps_clusters_apart() -> None:
    vectors, labels = planted()
    layout, used = map_2d(vectors)
    again, _ = map_2d(vectors)
    assert used == "graph" and layout.shape == (len(vectors), 2)
    np.testing.assert_array_equal(layout, again)
    assert layout.min() == 0 and layout.max() == 1
    low = nearest(layout, 10)
    # every image's 10 nearest on the map are of its own cluster
    assert np.mean(labels[low] == labels[:, None]) > 0.98
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    # and the layout keeps more of each image's own nearest neighbours than PCA does
    cosine_nearest = np.argsort(-(unit @ unit.T) + 2 * np.eye(len(unit)), axis=1)[:, :10]
    kept = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(cosine_nearest, low)])
    pca_low = nearest(map_2d(vectors, "pca")[0], 10)
    pca_kept = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(cosine_nearest, pca_low)])
    assert kept > 0.2 and kept > 1.5 * pca_kept


def test_a_given_graph_is_used_and_progress_counts_epochs() -> None:
    vectors, labels = planted(clusters=2, size=30)
    # a graph linking each image to the others of its own cluster only
    neighbours = np.array([np.flatnonzero(labels == label)[:15] for label in labels])
    graph = KnnGraph(neighbours, np.full(neighbours.shape, 0.9, dtype=np.float32))
    seen: list[tuple[str, int, int]] = []
    layout, _ = map_2d(vectors, "graph", graph=graph,
                       progress=lambda *update: seen.append(update))
    assert seen[-1] == ("layout", EPOCHS, EPOCHS) and all(stage == "layout" for stage, _, _ in seen)
    low = nearest(layout, 5)
    assert np.all(labels[low] == labels[:, None])


def test_few_points_fall_back_to_pca_and_unknown_methods_are_refused() -> None:
    layout, used = map_2d(np.eye(4, dtype=np.float32))
    assert used == "pca" and layout.shape == (4, 2)
    with pytest.raises(ValueError, match="map method"):
        map_2d(np.eye(4, dtype=np.float32), "isomap")
