"""Outlier scores: planted outliers rank first."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.analyse.outliers import outlier_scores, top_outliers
from lookalike.knn import knn_graph


def planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Six Gaussian blobs of 100 (two loose, four tight) and 12 uniformly random points."""
    rng = np.random.default_rng(seed)
    dim = 32
    parts = []
    for blob in range(6):
        centre = rng.standard_normal(dim)
        centre /= np.linalg.norm(centre)
        spread = 0.12 if blob < 2 else 0.04
        parts.append(centre + spread * rng.standard_normal((100, dim)))
    parts.append(rng.standard_normal((12, dim)))
    vectors = np.concatenate(parts).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    order = rng.permutation(len(vectors))
    outliers = np.flatnonzero(order >= 600)
    return vectors[order], outliers


@pytest.mark.parametrize("method", ["lof", "distance"])
def test_planted_outliers_rank_top(method: str) -> None:
    vectors, outliers = planted()
    scores = outlier_scores(knn_graph(vectors, k=10), method=method)
    assert scores.shape == (len(vectors),)
    top = top_outliers(scores, len(outliers) / len(vectors))
    assert set(top.tolist()) == set(outliers.tolist())


def test_lof_is_about_one_inside_clusters() -> None:
    vectors, outliers = planted(1)
    scores = outlier_scores(knn_graph(vectors, k=10))
    inliers = np.setdiff1d(np.arange(len(vectors)), outliers)
    assert 0.8 < np.median(scores[inliers]) < 1.2
    assert scores[outliers].min() > 1.5


def test_fewer_neighbours_than_k() -> None:
    vectors, _ = planted()
    graph = knn_graph(vectors[:5], k=10)  # only 4 others exist: columns padded with -1
    scores = outlier_scores(graph)
    assert np.isfinite(scores).all()
    assert outlier_scores(knn_graph(vectors, k=10), k=3).shape == (len(vectors),)
    with pytest.raises(ValueError):
        outlier_scores(graph, k=11)


def test_top_outliers_order_and_fraction() -> None:
    scores = np.array([0.5, 3.0, 1.0, 3.0, 2.0])
    assert top_outliers(scores, 0.4).tolist() == [1, 3]
    assert top_outliers(scores, 0.5).tolist() == [1, 3, 4]  # ceil(2.5)
    assert top_outliers(scores, 1.0).tolist() == [1, 3, 4, 2, 0]
    assert top_outliers(scores, 0.0).tolist() == []
    with pytest.raises(ValueError):
        top_outliers(scores, 1.5)
