"""k-means, the choice of k and the label-based scores, on data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.analyse.clusters import (
    ari,
    auto_k,
    cluster_accuracy,
    evaluate,
    kmeans,
    nmi,
    pca_whitening,
    purity,
)


def blobs(k: int, per: int, dim: int = 64, spread: float = 0.05, seed: int = 0):
    """``k`` well separated Gaussian blobs on the unit sphere, shuffled; (vectors, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.permutation(np.repeat(np.arange(k), per))
    vectors = (centres[labels] + spread * rng.standard_normal((len(labels), dim))).astype(
        np.float32
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, labels


@pytest.mark.slow
def test_kmeans_recovers_separated_blobs() -> None:
    vectors, labels = blobs(8, 100)
    result = kmeans(vectors, 8, seed=0)
    assert cluster_accuracy(labels, result.labels) == 1.0
    assert nmi(labels, result.labels) == pytest.approx(1.0)
    assert ari(labels, result.labels) == pytest.approx(1.0)


def test_kmeans_result_fields() -> None:
    vectors, _ = blobs(5, 60, seed=3)
    result = kmeans(vectors, 5, seed=1)
    assert result.k == 5 and result.labels.shape == (300,)
    assert result.sizes.sum() == 300 and (result.sizes == 60).all()
    assert np.allclose(np.linalg.norm(result.centroids, axis=1), 1.0, atol=1e-5)
    for cluster, medoid in enumerate(result.medoids):
        members = np.flatnonzero(result.labels == cluster)
        assert medoid in members
        assert result.similarity[medoid] == result.similarity[members].max()
        ranked = result.members(cluster)  # the cluster's items, most central first
        assert sorted(ranked.tolist()) == members.tolist() and ranked[0] == medoid
        assert (np.diff(result.similarity[ranked]) <= 0).all()
    assert len(result.members(5)) == 0 and len(result.members(-1)) == 0
    assert (result.confidence >= 0).all() and result.confidence.min() > 0.3
    assert np.allclose(result.similarity, (vectors * result.centroids[result.labels]).sum(1))
    assert result.objective == pytest.approx(result.similarity.mean(), abs=1e-6)
    again = kmeans(vectors, 5, seed=1)
    assert np.array_equal(again.labels, result.labels)


def test_kmeans_float16_and_k_one() -> None:
    vectors, _ = blobs(3, 20)
    single = kmeans(vectors.astype(np.float16), 1)
    assert (single.labels == 0).all() and (single.confidence == 1.0).all()
    with pytest.raises(ValueError):
        kmeans(vectors, 61)


def test_kmeans_without_pca_and_the_projection() -> None:
    vectors, labels = blobs(6, 50, seed=2)
    assert cluster_accuracy(labels, kmeans(vectors, 6, pca=None).labels) == 1.0
    projection = pca_whitening(vectors, 8, eigen_power=-0.5)  # full whitening, 8 components
    projected = (vectors - projection.mean) @ projection.matrix
    covariance = np.cov(projected, rowvar=False)
    assert np.allclose(covariance, np.eye(8), atol=1e-3)
    assert np.allclose(np.linalg.norm(projection.transform(vectors), axis=1), 1.0, atol=1e-5)


def test_random_labelling_scores_near_zero() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 8, 5000)
    guess = rng.integers(0, 8, 5000)
    assert nmi(truth, guess) < 0.01
    assert abs(ari(truth, guess)) < 0.01
    assert cluster_accuracy(truth, guess) < 0.2


def test_cluster_accuracy_by_hand() -> None:
    truth = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_accuracy(truth, np.array([7, 7, 3, 3, 5, 5])) == 1.0  # relabelled
    # Classes x clusters: [[1, 2], [3, 0]] -> best matching 2 + 3 of 6.
    assert cluster_accuracy([0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 0, 0]) == pytest.approx(5 / 6)
    # More clusters than classes: the unmatched cluster counts as wrong.
    assert cluster_accuracy([0, 0, 1, 1], [0, 1, 2, 2]) == pytest.approx(3 / 4)
    assert purity([0, 0, 1, 1], [0, 1, 2, 2]) == 1.0
    assert purity([0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 0, 0]) == pytest.approx(5 / 6)
    scores = evaluate(truth, np.array([1, 1, 2, 2, 0, 0]))
    assert (scores.accuracy, scores.nmi, scores.ari, scores.purity) == pytest.approx((1, 1, 1, 1))
    with pytest.raises(ValueError):
        cluster_accuracy([0, 1], [0, 1, 2])


@pytest.mark.parametrize("planted", [4, 9])
def test_auto_k_finds_the_planted_k(planted: int) -> None:
    vectors, _ = blobs(planted, 60, seed=planted)
    chosen = auto_k(vectors, sample=2000)
    assert chosen.k == planted
    assert chosen.ks[np.argmax(chosen.scores)] == planted
    assert len(chosen.ks) == len(chosen.scores) > 5
