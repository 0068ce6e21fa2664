"""Pure duplicate logic on tiny hand-made arrays: grouping, keepers, exact keys, metrics."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.analyse.duplicates import (
    EDITED,
    SIMILAR,
    UNRELATED,
    DuplicateGroup,
    PairScores,
    agreement_from_samples,
    candidate_pairs,
    choose_keeper,
    components,
    exact_groups,
    link_groups,
    make_group,
    pair_scores,
    pair_scores_by_tag,
    pair_tiers,
    promote_shared_copies,
    thresholds_from_samples,
    visit_order,
)
from lookalike.knn import KnnGraph


def edges(*triples: tuple[int, int, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i, j, w = zip(*triples)
    return np.array(i), np.array(j), np.array(w, dtype=float)


# -- grouping -------------------------------------------------------------------------------


def test_a_chain_does_not_merge_its_ends() -> None:
    # a ~ b and b ~ c are strong, a and c share nothing: components would join all three.
    i, j, w = edges((0, 1, 0.9), (1, 2, 0.9))
    assert len(set(components(3, i, j).tolist())) == 1
    groups = link_groups(3, i, j, w)
    assert groups == [[0, 1]]
    assert not any({0, 2} <= set(group) for group in groups)


def test_the_stronger_link_of_a_chain_wins() -> None:
    i, j, w = edges((0, 1, 0.6), (1, 2, 0.95))
    assert link_groups(3, i, j, w) == [[1, 2]]


def test_a_missing_link_inside_a_dense_group_is_tolerated() -> None:
    # An original and three copies; one copy-to-copy pair failed (5 of 6 pairs linked).
    i, j, w = edges((0, 1, 0.9), (0, 2, 0.9), (0, 3, 0.9), (1, 2, 0.8), (1, 3, 0.8))
    assert link_groups(4, i, j, w) == [[0, 1, 2, 3]]


def test_one_strong_edge_does_not_glue_two_groups() -> None:
    triples = [(0, 1, 0.9), (0, 2, 0.9), (1, 2, 0.9), (3, 4, 0.9), (3, 5, 0.9), (4, 5, 0.9),
               (2, 3, 1.0)]
    assert link_groups(6, *edges(*triples)) == [[0, 1, 2], [3, 4, 5]]


def test_rejected_edges_and_self_loops_are_ignored() -> None:
    i, j, w = edges((0, 1, 0.0), (2, 2, 1.0), (3, 4, -1.0))
    assert link_groups(5, i, j, w) == []


def test_min_link_is_the_merge_bar() -> None:
    i, j, w = edges((0, 1, 0.4))
    assert link_groups(2, i, j, w, min_link=0.5) == []
    assert link_groups(2, i, j, w, min_link=0.3) == [[0, 1]]


def test_components_label_by_smallest_member() -> None:
    labels = components(6, np.array([4, 1]), np.array([2, 5]))
    assert labels.tolist() == [0, 1, 2, 3, 2, 1]


# -- candidates and thresholds --------------------------------------------------------------------


def test_candidate_pairs_apply_threshold_and_rank() -> None:
    graph = KnnGraph(
        neighbours=np.array([[1, 2], [0, 2], [1, 0]]),
        scores=np.array([[0.9, 0.5], [0.9, 0.8], [0.8, 0.5]], dtype=np.float32),
    )
    i, j, s = candidate_pairs(graph, 0.7)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 1), (1, 2)]
    i, j, _ = candidate_pairs(graph, 0.0, max_rank=1)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 1), (1, 2)]
    assert np.allclose(sorted(s.tolist()), [0.8, 0.9])


def test_thresholds_keep_recall_of_the_hardest_edit_kind() -> None:
    easy = np.linspace(0.90, 0.99, 50)
    hard = np.linspace(0.60, 0.90, 50)  # e.g. greyscale copies
    others = np.linspace(0.50, 0.85, 200)
    result = thresholds_from_samples(
        np.concatenate([easy, hard]), others, edit_kinds=["jpeg"] * 50 + ["grey"] * 50,
        recall=0.9,
    )
    assert result["candidate_threshold"] == pytest.approx(np.quantile(hard, 0.1), abs=1e-4)
    pooled = thresholds_from_samples(np.concatenate([easy, hard]), others, recall=0.9)
    assert pooled["candidate_threshold"] > result["candidate_threshold"]
    assert result["candidate_threshold"] <= result["near_threshold"] <= 0.9


def test_near_threshold_sits_between_the_two_distributions() -> None:
    edits = np.linspace(0.90, 1.0, 100)
    others = np.linspace(0.40, 0.80, 100)
    result = thresholds_from_samples(edits, others, recall=0.999)
    assert 0.80 < result["near_threshold"] <= 0.9001
    # the candidate gate is looser: it keeps 99.9 % of the edits
    assert result["candidate_threshold"] <= result["near_threshold"]


# -- keepers and exact groups ------------------------------------------------------------------


def test_keeper_is_largest_resolution_then_largest_file_then_first() -> None:
    width = np.array([100, 200, 200, 200])
    height = np.array([100, 100, 100, 100])
    size = np.array([9_000, 5_000, 7_000, 7_000])
    assert choose_keeper([0, 1, 2, 3], width, height, size) == 2
    assert choose_keeper([0, 1], width, height, size) == 1
    assert choose_keeper([0], width, height, size) == 0


def test_make_group_puts_the_keeper_first_and_orders_by_score() -> None:
    width, height = np.array([10, 30, 20]), np.array([10, 30, 20])
    size = np.array([1, 1, 1])
    group = make_group([0, 1, 2], "near", width, height, size, {0: 0.7, 2: 0.9})
    assert group == DuplicateGroup(members=[1, 2, 0], keeper=1, kind="near",
                                   scores=[1.0, 0.9, 0.7], tiers=["edited"] * 3,
                                   evidence=[None] * 3)
    assert len(group) == 3 and group.tier == "edited"


def test_make_group_asks_each_member_its_relation_to_the_keeper() -> None:
    width, height, size = np.array([10, 30, 20]), np.array([10, 30, 20]), np.ones(3)

    def relation(member: int, keeper: int) -> tuple[str, dict | None]:
        assert keeper == 1
        return ("similar", {"inliers": 40}) if member == 0 else ("edited", {"inliers": 90})

    group = make_group([0, 1, 2], "similar", width, height, size, relation=relation)
    assert group.members == [1, 0, 2] and group.tier == "similar"
    assert group.tiers == ["similar", "similar", "edited"]  # the keeper: the group's tier
    assert group.evidence == [None, {"inliers": 40}, {"inliers": 90}]


def test_pair_tiers_separate_copies_from_similar_shots() -> None:
    same = np.array([True, True, True, False, False])
    agreement = np.array([0.97, 0.55, np.nan, np.nan, np.nan])
    cosine = np.array([0.95, 0.93, 0.90, 0.92, 0.70])
    tiers = pair_tiers(same, agreement, cosine, agreement_threshold=0.85,
                       similar_cosine=0.9)
    # a dense match, a sparse one, a match with nothing to compare densely (the geometry
    # decides), strong embedding similarity alone, and nothing
    assert tiers.tolist() == [EDITED, SIMILAR, EDITED, SIMILAR, UNRELATED]


def test_two_copies_of_one_photo_are_copies_of_each_other() -> None:
    # 0 ~ 1 and 0 ~ 2 edited copies; 1 ~ 2 agree less (two edits apart): promoted.
    # 3 ~ 4 is a similar shot with no common photo: stays; no chain through 2 ~ 5.
    i, j = np.array([0, 0, 1, 3, 2]), np.array([1, 2, 2, 4, 5])
    tiers = np.array([EDITED, EDITED, SIMILAR, SIMILAR, SIMILAR])
    promoted = promote_shared_copies(i, j, tiers)
    assert promoted.tolist() == [EDITED, EDITED, EDITED, SIMILAR, SIMILAR]
    assert tiers[2] == SIMILAR  # the input is left as it was


def test_agreement_threshold_keeps_recall_of_every_verified_edit_kind() -> None:
    agreement = np.r_[np.linspace(0.95, 1.0, 20), np.linspace(0.8, 1.0, 20), np.nan, np.nan]
    kinds = ["jpeg"] * 20 + ["text"] * 20 + ["blur"] * 2  # blur never verified: no say
    found = agreement_from_samples(agreement, edit_kinds=kinds, recall=0.95)
    assert found["agreement_threshold"] == pytest.approx(0.8 + 0.2 * 0.95 / 19, abs=1e-4)
    assert set(found["agreement_by_edit"]) == {"jpeg", "text"}
    assert agreement_from_samples(np.array([np.nan]))["agreement_threshold"] == 0.0


def test_exact_groups_by_content_or_pixels_transitively() -> None:
    content = ["a", "b", "a", None, "c", "d"]
    pixels = [None, "p", None, "q", "p", None]
    assert exact_groups(content, pixels) == [[0, 2], [1, 4]]
    # 0 = 1 by bytes, 1 = 2 by pixels: all three are one picture
    assert exact_groups(["x", "x", "y"], [None, "p", "p"]) == [[0, 1, 2]]
    assert exact_groups(["x", "y", "z"]) == []
    with pytest.raises(ValueError):
        exact_groups(["x"], ["x", "y"])


# -- metrics -----------------------------------------------------------------------------------


def test_perfect_prediction_scores_exactly_one() -> None:
    truth = np.array([0, 0, 1, 1, 1, -1])
    scores = pair_scores([[0, 1], [2, 3, 4]], truth)
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)
    assert scores == PairScores(true_positives=4, false_positives=0, false_negatives=0)


def test_all_wrong_prediction_scores_exactly_zero() -> None:
    truth = np.array([0, 0, 1, 1])
    scores = pair_scores([[0, 2], [1, 3]], truth)
    assert (scores.precision, scores.recall, scores.f1) == (0.0, 0.0, 0.0)


def test_hand_computed_pair_scores() -> None:
    # true pairs: (0,1) (0,2) (1,2) (4,5) = 4; predicted: (0,1) (0,3) (1,3) (4,5) = 4
    truth = np.array([0, 0, 0, -1, 1, 1])
    scores = pair_scores([[0, 1, 3], [4, 5]], truth)
    assert scores == PairScores(true_positives=2, false_positives=2, false_negatives=2)
    assert (scores.precision, scores.recall, scores.f1) == (0.5, 0.5, 0.5)
    # 3 pairs predicted, 2 right; 4 true, 2 found: P 2/3, R 1/2, F1 4/7
    scores = pair_scores([[0, 1, 2]], np.array([0, 0, 1, 1, 1]))
    assert scores.precision == pytest.approx(1 / 3)
    scores = pair_scores([[0, 1, 3]], np.array([0, 0, 0, 0]))
    assert scores.precision == 1.0
    assert scores.recall == pytest.approx(3 / 6)
    assert scores.f1 == pytest.approx(2 / 3)


def test_no_prediction_and_no_truth_conventions() -> None:
    scores = pair_scores([], np.array([0, 0, -1]))
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 0.0, 0.0)
    scores = pair_scores([], np.array([-1, -1]))
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)


def test_scores_by_tag_count_pairs_touching_the_tag() -> None:
    truth = np.array([0, 0, 0, -1])
    tags = ["original", "crop", "grey", "distractor"]
    # predicted: (0,1) right, grey copy missed, distractor wrongly joined to the crop
    by_tag = pair_scores_by_tag([[0, 1, 3]], truth, tags)
    assert by_tag["crop"] == PairScores(1, 1, 1)  # (0,1) | (1,3) | (1,2)
    assert by_tag["grey"] == PairScores(0, 0, 2)  # misses (0,2), (1,2)
    assert by_tag["distractor"] == PairScores(0, 2, 0)
    assert by_tag["original"] == PairScores(1, 1, 1)


def test_a_position_listed_twice_is_an_error() -> None:
    with pytest.raises(ValueError):
        pair_scores([[0, 0]], np.array([0, 0]))


def test_visit_order_is_a_permutation_that_keeps_neighbours_close() -> None:
    # a path 0-5-1-4-2-3 given in scrambled order
    i = np.array([1, 0, 2, 4, 3])
    j = np.array([5, 5, 4, 1, 2])
    order = visit_order(6, i, j)
    assert sorted(order.tolist()) == [0, 1, 2, 3, 4]
    # consecutive pairs along the path share an image
    for left, right in zip(order[:-1], order[1:]):
        assert {i[left], j[left]} & {i[right], j[right]}
    assert visit_order(3, np.array([], dtype=int), np.array([], dtype=int)).tolist() == []
