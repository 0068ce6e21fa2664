from __future__ import annotations

import numpy as np

from lookalike.analyse.exemplars import assign_to_exemplars


def _unit(rows: list[list[float]]) -> np.ndarray:
    array = np.asarray(rows, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


VECTORS = _unit([[1, 0.1, 0], [1, 0.3, 0], [0, 1, 0.1], [0.2, 1, 0], [0, 0, 1], [1, 0.5, 0]])
EXEMPLARS = _unit([[1, 0, 0], [0, 1, 0]])


def test_every_image_goes_to_its_nearest_exemplar_without_limits() -> None:
    result = assign_to_exemplars(VECTORS, EXEMPLARS)
    assert result.labels[5] == 0 and result.labels[4] != -1
    assert result.labels[:4].tolist() == [0, 0, 1, 1]
    assert result.members(1).tolist() == [2, 3]


def test_threshold_leaves_far_images_in_place() -> None:
    result = assign_to_exemplars(VECTORS, EXEMPLARS, threshold=0.9)
    assert result.labels.tolist() == [0, 0, 1, 1, -1, -1]  # [1, .5, 0] has cosine .89
    np.testing.assert_allclose(result.scores[0], 1 / np.sqrt(1.01), rtol=1e-5)


def test_top_k_keeps_each_exemplars_closest_images() -> None:
    result = assign_to_exemplars(VECTORS, EXEMPLARS, top_k=1)
    assert result.labels.tolist() == [0, -1, 1, -1, -1, -1]


def test_no_exemplars_assigns_nothing() -> None:
    result = assign_to_exemplars(VECTORS, np.zeros((0, 3), dtype=np.float32))
    assert (result.labels == -1).all()
