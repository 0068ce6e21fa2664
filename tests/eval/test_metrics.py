from __future__ import annotations

import numpy as np
import pytest

from lookalike.eval.metrics import (
    average_precision_at_k,
    rank,
    reciprocal_rank_fusion,
    retrieval_confusion,
    retrieval_scores,
)


@pytest.mark.parametrize(
    ("relevant", "total", "k", "expected"),
    [
        ([1, 0, 1], 2, 3, (1 / 1 + 2 / 3) / 2),
        ([0, 1], 1, 2, 0.5),
        ([1, 1, 1], 5, 3, 1.0),  # normaliser min(5, 3): a perfect top 3 scores 1
        ([1, 0, 0, 0], 4, 4, 0.25),
        ([0, 0, 0], 3, 3, 0.0),
        ([1, 1, 0, 1, 0], 10, 5, (1 + 1 + 3 / 4) / 5),
        ([1, 1], 0, 2, 0.0),
        ([0, 1, 1, 1], 3, 2, 0.5 / 2),  # only the top k count
    ],
)
def test_average_precision_hand_computed(relevant: list[int], total: int, k: int,
                                         expected: float) -> None:
    assert average_precision_at_k(np.array(relevant, bool), total, k) == pytest.approx(expected)


def two_clusters() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = np.array([1.0, 0, 0]) + rng.normal(0, 0.01, (5, 3))
    b = np.array([0, 1.0, 0]) + rng.normal(0, 0.01, (5, 3))
    vectors = np.concatenate([a, b]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, np.array(["a"] * 5 + ["b"] * 5)


def test_separated_classes_score_exactly_one() -> None:
    vectors, labels = two_clusters()
    neighbours, scores = rank(vectors, vectors, 4, exclude=np.arange(10))
    assert not (neighbours == np.arange(10)[:, None]).any()  # never the query itself
    assert np.all(np.diff(scores, axis=1) <= 0)
    result = retrieval_scores(neighbours, labels, labels, 4, leave_one_out=True)
    assert result.summary() == {"mAP@4": 1.0, "P@4": 1.0, "R@4": 1.0, "top-1": 1.0,
                                "top-4 acc": 1.0}
    assert set(result.per_class()) == {"a", "b"}


def test_results_all_from_other_classes_score_exactly_zero() -> None:
    labels = np.array(["a", "a", "b", "b"])
    neighbours = np.array([[2, 3], [2, 3], [0, 1], [0, 1]])  # every result is wrong
    result = retrieval_scores(neighbours, labels, labels, 2, leave_one_out=True)
    assert all(value == 0.0 for value in result.summary().values())


def test_recall_topk_and_skipped_queries() -> None:
    gallery = np.array(["a", "a", "a", "b"])
    queries = np.array(["a", "b", "c"])
    neighbours = np.array([[0, 3, 1], [3, 0, 1], [0, 1, 2]])
    result = retrieval_scores(neighbours, queries, gallery, 3)
    assert result.skipped == 1  # class c has no gallery item
    assert result.recall.tolist() == pytest.approx([2 / 3, 1.0])
    assert result.precision.tolist() == pytest.approx([2 / 3, 1 / 3])
    assert result.topk.tolist() == [1.0, 0.0]  # b's top 3 is mostly a
    assert result.ap.tolist() == pytest.approx([(1 + 2 / 3) / 3, 1.0])


def test_majority_tie_goes_to_the_better_ranked_class() -> None:
    gallery = np.array(["a", "b", "b", "a"])
    result = retrieval_scores(np.array([[1, 0, 2, 3]]), np.array(["b"]), gallery, 4)
    assert result.topk.tolist() == [1.0]
    result = retrieval_scores(np.array([[0, 1, 2, 3]]), np.array(["b"]), gallery, 4)
    assert result.topk.tolist() == [0.0]


def test_confusion_rows_are_shares() -> None:
    labels = np.array(["a", "a", "b", "b"])
    neighbours = np.array([[1, 2], [0, 3], [3, 0], [2, 1]])
    matrix = retrieval_confusion(neighbours, labels, labels, ["a", "b"], 2)
    assert matrix.tolist() == [[0.5, 0.5], [0.5, 0.5]]
    neighbours = np.array([[1, 0], [0, 1], [3, 2], [2, 3]])
    assert retrieval_confusion(neighbours, labels, labels, ["a", "b"], 2).tolist() == [
        [1.0, 0.0], [0.0, 1.0]]


def test_reciprocal_rank_fusion_hand_case() -> None:
    first = np.array([[0, 1, 2]])
    second = np.array([[2, 1, 3]])
    fused = reciprocal_rank_fusion([first, second], 3, constant=0)
    # scores: 0 -> 1, 1 -> 1/2 + 1/2 = 1, 2 -> 1/3 + 1 = 4/3, 3 -> 1/3
    assert fused.tolist() == [[2, 0, 1]]  # ties by position
    weighted = reciprocal_rank_fusion([first, second], 2, weights=[3, 1], constant=0)
    assert weighted.tolist() == [[0, 1]]
