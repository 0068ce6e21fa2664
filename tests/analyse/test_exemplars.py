from __future__ import annotations

import numpy as np
import pytest

from lookalike.analyse.exemplars import assign_to_classes


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three elongated classes in 16-d: an example at the far end of its class sits nearer
    to the next class's core than to its own."""
    rng = np.random.default_rng(seed)
    centres = np.eye(16, dtype=np.float32)[:3] * 3
    spread = np.eye(16, dtype=np.float32)[3:6] * 2.5  # each class stretched along its own axis
    labels = np.repeat(np.arange(3), 200)
    along = rng.uniform(-1, 1, (600, 1)).astype(np.float32)
    rows = centres[labels] + along * spread[labels] + 0.3 * rng.standard_normal((600, 16))
    rows = rows.astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True), labels


def test_classes_follow_the_collection_not_only_the_examples() -> None:
    vectors, truth = _blobs()
    # one example per class, each taken from the tail of its class
    tails = [int(np.argmax(np.where(truth == c, vectors[:, 3 + c], -np.inf))) for c in range(3)]
    result = assign_to_classes(vectors, vectors[tails], np.arange(3), dims=16)
    nearest = np.argmax(vectors @ vectors[tails].T, axis=1)
    assert (result.labels == truth).mean() > 0.97
    assert (result.labels == truth).mean() > (nearest == truth).mean()
    assert result.labels[tails].tolist() == [0, 1, 2]
    assert np.all(result.margins >= 0) and np.all(result.scores <= 1.0001)


def test_unsure_images_are_the_ones_between_classes() -> None:
    vectors, truth = _blobs()
    examples = np.stack([vectors[truth == c][:3] for c in range(3)]).reshape(9, -1)
    middle = vectors[truth == 0].mean(0) + vectors[truth == 1].mean(0)  # between two classes
    between = middle / np.linalg.norm(middle)
    result = assign_to_classes(np.vstack([vectors, between]), examples,
                               np.repeat(np.arange(3), 3), min_margin=0.05, dims=16)
    assert result.unsure[-1]
    assert result.unsure[:-1].mean() < 0.05
    assert set(result.members(0).tolist()) <= set(np.flatnonzero(result.labels == 0).tolist())
    assert len(result.members(0)) == int(((result.labels == 0) & ~result.unsure).sum())


def test_every_class_needs_an_example() -> None:
    vectors, _ = _blobs()
    with pytest.raises(ValueError, match="every class"):
        assign_to_classes(vectors, vectors[:2], np.array([0, 2]))
    with pytest.raises(ValueError, match="one label per example"):
        assign_to_classes(vectors, vectors[:2], np.array([0]))
