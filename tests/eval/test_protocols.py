from __future__ import annotations

import numpy as np
import pytest

from lookalike.eval.protocols import (
    ClassDisjoint,
    HeldOut,
    LeaveOneOut,
    SeparateQueries,
    Split,
    class_split,
    held_out_classes,
    stratified_split,
)
from lookalike.eval.scoring import EvalOptions

# four a, three b, two c: positions 0-3, 4-6, 7-8
TOY = np.array(list("aaaabbbcc"))


def positions(split: Split) -> tuple[list[int], list[int], list[int], bool]:
    return (split.queries.tolist(), split.gallery.tolist(), split.fit.tolist(),
            split.leave_one_out)


def test_leave_one_out_queries_every_image_against_all() -> None:
    everything = list(range(9))
    assert positions(LeaveOneOut().split(TOY)) == (everything, everything, everything, True)
    assert LeaveOneOut().description == "leave-one-out over all images"
    assert not LeaveOneOut.holds_out


def test_held_out_vs_the_rest() -> None:
    # half of each class, rounded half to even: a 2, b 2, c 1
    splitter = HeldOut(0.5)
    assert positions(splitter.split(TOY)) == ([0, 2, 5, 6, 7], [1, 3, 4, 8], [1, 3, 4, 8],
                                              False)
    assert splitter.description == "held-out 0.5 (seed 0) vs the rest"


def test_held_out_leave_one_out_among_them_fits_on_the_rest() -> None:
    splitter = HeldOut(0.5, gallery="held-out")
    held = [0, 2, 5, 6, 7]
    assert positions(splitter.split(TOY)) == (held, held, [1, 3, 4, 8], True)
    assert splitter.description == "held-out 0.5 (seed 0), leave-one-out among them"


def test_held_out_per_class() -> None:
    splitter = HeldOut(per_class=1, seed=2)
    assert positions(splitter.split(TOY)) == ([3, 4, 7], [0, 1, 2, 5, 6, 8],
                                              [0, 1, 2, 5, 6, 8], False)
    assert splitter.description == "held-out 1/class (seed 2) vs the rest"


def test_held_out_refuses_an_unknown_gallery() -> None:
    with pytest.raises(ValueError, match="rest or held-out"):
        HeldOut(0.5, gallery="all")


def test_separate_queries_are_the_last_rows_of_the_pool() -> None:
    pool = np.concatenate([TOY, ["a", "b", "c"]])
    everything = list(range(9))
    splitter = SeparateQueries(3)
    assert positions(splitter.split(pool)) == ([9, 10, 11], everything, everything, False)
    assert splitter.description == "3 separate queries vs the dataset"


def test_options_name_their_splitter() -> None:
    assert EvalOptions().protocol() == LeaveOneOut()
    assert EvalOptions(split=0.3, seed=4).protocol() == HeldOut(0.3, seed=4)
    assert EvalOptions(per_class=5, gallery="held-out").protocol() == HeldOut(
        0.0, 5, gallery="held-out")
    assert EvalOptions(split=0.3).protocol(separate_queries=7) == SeparateQueries(7)



def test_stratified_split_is_reproducible_and_per_class() -> None:
    labels = np.array(["a"] * 10 + ["b"] * 20 + ["c"] * 1)
    rest, held = stratified_split(labels, 0.5, seed=3)
    again = stratified_split(labels, 0.5, seed=3)
    assert np.array_equal(held, again[1]) and np.array_equal(rest, again[0])
    assert not set(rest) & set(held) and len(rest) + len(held) == len(labels)
    counts = {c: int((labels[held] == c).sum()) for c in "abc"}
    assert counts == {"a": 5, "b": 10, "c": 1}
    assert not np.array_equal(held, stratified_split(labels, 0.5, seed=4)[1])
    _, five = stratified_split(labels, 0.0, per_class=5)
    assert {c: int((labels[five] == c).sum()) for c in "ab"} == {"a": 5, "b": 5}
    with pytest.raises(ValueError):
        stratified_split(labels, 1.5)




def test_class_disjoint_holds_out_whole_classes_in_name_order() -> None:
    labels = np.array(list("eabdcabcde"))  # five classes, order of appearance shuffled
    assert held_out_classes(labels, 0.4) == ["d", "e"]  # seed 0: the last ones by name
    assert held_out_classes(labels, 0.4, seed=1) == ["b", "c"]  # the block before
    assert held_out_classes(labels, 0.4, seed=2) == ["e", "a"]  # wrapping round
    assert held_out_classes(labels, 0.9) == ["c", "d", "e"]  # two classes left to fit on
    seen, unseen = class_split(labels, 0.4)
    assert unseen.tolist() == [0, 3, 8, 9] and seen.tolist() == [1, 2, 4, 5, 6, 7]
    split = ClassDisjoint(0.4).split(labels)
    assert positions(split) == ([0, 3, 8, 9], [0, 3, 8, 9], [1, 2, 4, 5, 6, 7], True)
    assert EvalOptions(split_classes=0.4).protocol() == ClassDisjoint(0.4, 0)
    with pytest.raises(ValueError, match="choose one held-out split"):
        EvalOptions(split=0.5, split_classes=0.4).protocol()
    with pytest.raises(ValueError, match="at least 3 classes"):
        class_split(np.array(list("aabb")), 0.5)
