from __future__ import annotations

import numpy as np
import pytest

from lookalike.eval.protocols import stratified_split


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


