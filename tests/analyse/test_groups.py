"""Threshold groups: tight blobs become groups, chains of look-alikes do not."""

from __future__ import annotations

import numpy as np

from lookalike.analyse.groups import Group, threshold_groups
from lookalike.knn import knn_graph

DIM = 16


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def arc(degrees: list[float], axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Unit vectors at the given angles in the plane of two coordinate axes."""
    out = np.zeros((len(degrees), DIM), dtype=np.float32)
    radians = np.radians(degrees)
    out[:, axes[0]], out[:, axes[1]] = np.cos(radians), np.sin(radians)
    return out


def blob(axis: int, count: int, rng: np.random.Generator, spread: float = 0.05) -> np.ndarray:
    centre = np.zeros(DIM, dtype=np.float32)
    centre[axis] = 1.0
    return unit(centre + spread * rng.standard_normal((count, DIM)))


def scene() -> np.ndarray:
    """Rows 0-3: a chain a~b~c~d, 25 degrees apart (adjacent cos .906, a-c .643, a-d .259);
    rows 4-8 and 9-13: two tight blobs; rows 14-19: scattered singletons."""
    rng = np.random.default_rng(0)
    chain = arc([0, 25, 50, 75])
    singles = unit(rng.standard_normal((6, DIM)) * np.r_[0, 0, 0, 0, np.ones(DIM - 4)])
    return np.concatenate([chain, blob(2, 5, rng), blob(3, 5, rng), singles])


def by_members(groups: list[Group]) -> list[set[int]]:
    return [set(group.members.tolist()) for group in groups]


def test_chain_is_split_while_tight_blobs_stay_whole() -> None:
    vectors = scene()
    graph = knn_graph(vectors, k=5)
    groups = threshold_groups(vectors, graph, 0.85)
    sets = by_members(groups)
    assert set(range(4, 9)) in sets
    assert set(range(9, 14)) in sets
    assert not any({0, 3} <= members for members in sets)
    assert all(len(members & {0, 1, 2, 3}) <= 3 for members in sets)
    for group in groups:
        assert (vectors[group.members] @ vectors[group.medoid] >= 0.85 - 1e-6).all()


def test_without_the_guards_the_chain_is_one_component() -> None:
    """Plain single linkage (what the guards prevent) joins a to d through b and c."""
    vectors = scene()
    graph = knn_graph(vectors, k=5)
    groups = threshold_groups(vectors, graph, 0.85, mutual=False, medoid_threshold=-1.0)
    assert {0, 1, 2, 3} in by_members(groups)


def test_long_chain_pieces_are_compact() -> None:
    """40 points 8 degrees apart: one single-linkage component at cos(10 degrees)."""
    vectors = arc(list(np.arange(40) * 8.0))
    threshold = float(np.cos(np.radians(10)))
    graph = knn_graph(vectors, k=4)
    groups = threshold_groups(vectors, graph, threshold)
    assert len(groups) >= 10
    for group in groups:
        assert group.size <= 3  # within 10 degrees of a medoid: at most 3 neighbours in a row
        assert (vectors[group.members] @ vectors[group.medoid] >= threshold - 1e-6).all()
    covered = np.concatenate([group.members for group in groups])
    assert len(covered) == len(set(covered.tolist()))


def test_group_fields() -> None:
    vectors = scene()
    groups = threshold_groups(vectors, knn_graph(vectors, k=5), 0.85)
    sizes = [group.size for group in groups]
    assert sizes == sorted(sizes, reverse=True)
    for group in groups:
        members = group.members
        assert group.size == len(members) >= 2
        assert members[0] == group.medoid
        block = vectors[members]
        pairwise = block @ block.T
        mean = (pairwise.sum() - np.trace(pairwise)) / (group.size * (group.size - 1))
        assert abs(group.mean_similarity - mean) < 1e-5
        # The medoid maximises the total similarity to the other members.
        assert pairwise.sum(axis=1).argmax() == 0
        to_medoid = pairwise[0]
        assert (np.diff(to_medoid[1:]) <= 1e-6).all()


def test_min_size_and_float16_input() -> None:
    vectors = scene()
    graph = knn_graph(vectors, k=5)
    half = vectors.astype(np.float16)
    assert by_members(threshold_groups(half, graph, 0.85)) == by_members(
        threshold_groups(vectors, graph, 0.85)
    )
    singles = threshold_groups(vectors, graph, 0.85, min_size=1)
    assert sum(group.size for group in singles) == len(vectors)
    assert all(group.size >= 5 for group in threshold_groups(vectors, graph, 0.85, min_size=5))


def test_nothing_above_threshold() -> None:
    vectors = unit(np.eye(DIM)[:8])
    assert threshold_groups(vectors, knn_graph(vectors, k=3), 0.5) == []
