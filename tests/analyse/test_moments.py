"""Moments from time, looks and place, on planted arrays."""

from __future__ import annotations

import numpy as np

from lookalike.analyse.moments import distance_m, find_moments, moment_links


def unit(*rows: list[float]) -> np.ndarray:
    vectors = np.asarray(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_links_need_time_looks_and_place() -> None:
    vectors = unit([1, 0, 0], [1, 0.1, 0], [1, 0.05, 0], [0, 1, 0], [1, 0, 0.05])
    times = np.array([0.0, 2.0, 30.0, 1.0, np.nan])
    i, j = moment_links(vectors, times, window=10, threshold=0.9)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 1)]  # 2: too late; 3: unlike; 4: undated
    lat = np.array([48.8584, 48.8584 + 0.01, np.nan, np.nan, np.nan])  # ~1.1 km apart
    lon = np.array([2.2945, 2.2945, np.nan, np.nan, np.nan])
    i, _ = moment_links(vectors, times, window=10, threshold=0.9, latitude=lat, longitude=lon)
    assert len(i) == 0
    assert abs(distance_m(lat[:1], lon[:1], lat[1:2], lon[1:2])[0] - 1112) < 5


def test_a_burst_is_a_chain_in_time_and_the_best_shot_is_sharp_and_well_exposed() -> None:
    vectors = unit(*[[1, 0.02 * k, 0] for k in range(5)])
    times = np.array([0.0, 8.0, 16.0, 24.0, 500.0])  # each within 10 s of the next only
    sharpness = np.array([2.0, 2.9, 3.0, 2.5, 3.0])
    brightness = np.array([0.45, 0.45, 0.9, 0.45, 0.45])  # shot 2 is sharp but burnt
    highlights = np.array([0.0, 0.0, 0.4, 0.0, 0.0])
    found = find_moments(vectors, times, np.arange(5), [f"p{k}" for k in range(5)],
                         sharpness=sharpness, brightness=brightness, highlights=highlights,
                         shadows=np.zeros(5), window=10, threshold=0.9)
    assert [m.members for m in found.moments] == [[0, 1, 2, 3]]
    assert found.moments[0].best == 1
    assert found.moments[0].reasons == ["least clipped", "best exposed"]
    assert found.rows()[1] == {"moment": 1, "id": 1, "path": "p1", "best": True}
