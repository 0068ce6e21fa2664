"""Quality flags on planted measurements: each problem flagged, the ordinary spread of a
collection not."""

from __future__ import annotations

import dataclasses

import numpy as np

from lookalike.analyse.quality import FLAGS, flag_quality
from lookalike.measure import ImageStats


def ordinary(rng: np.random.Generator, count: int) -> list[ImageStats]:
    return [ImageStats(width=int(rng.integers(400, 640)), height=int(rng.integers(300, 480)),
                       brightness=float(rng.uniform(0.3, 0.55)),
                       contrast=float(rng.uniform(0.15, 0.3)),
                       shadows=0.0, highlights=float(rng.uniform(0, 0.01)),
                       lower=float(rng.uniform(0.0, 0.15)), upper=float(rng.uniform(0.7, 1.0)),
                       information=float(rng.uniform(5.0, 5.8)),
                       sharpness=float(rng.uniform(2.3, 3.2))) for _ in range(count)]


def test_each_planted_problem_carries_its_flag_and_nothing_else_is_flagged() -> None:
    rng = np.random.default_rng(0)
    stats: list[ImageStats | None] = list(ordinary(rng, 200))
    base = stats[0]
    assert base is not None
    planted = {
        "blurry": dataclasses.replace(base, sharpness=0.5),
        "dark": dataclasses.replace(base, brightness=0.08, upper=0.2),
        "overexposed": dataclasses.replace(base, brightness=0.8, highlights=0.3),
        "low_information": dataclasses.replace(base, contrast=0.02, information=2.0),
        "tiny": dataclasses.replace(base, width=40, height=30),
        "odd_shape": dataclasses.replace(base, width=2000, height=400),
    }
    stats += list(planted.values()) + [None]
    found = flag_quality(stats, np.arange(len(stats)), [str(i) for i in range(len(stats))])
    for offset, flag in enumerate(planted):
        assert found.flags[flag].tolist() == [200 + offset], flag
    assert found.flagged() == set(range(200, 206))
    assert {row["flag"] for row in found.rows()} == set(FLAGS)
    assert found.to_dict()["counts"] == dict.fromkeys(FLAGS, 1)


def test_flags_are_relative_to_the_collection() -> None:
    rng = np.random.default_rng(1)
    soft = [dataclasses.replace(s, sharpness=s.sharpness - 1.0) for s in ordinary(rng, 100)]
    found = flag_quality(soft, np.arange(100), [str(i) for i in range(100)])
    assert len(found.flags["blurry"]) == 0  # a soft collection: none unlike the rest
