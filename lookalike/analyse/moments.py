""""Same place, same moment" groups from similarity *and* capture time: the bursts of a
photographer's library, with the best shot of each suggested.

Two photos are one moment when they were taken within a few seconds of each other, look
alike, and (when both carry a GPS position) were taken near each other. Time bounds the
pairs to compare: each photo is compared only with those taken within the window after
it, so the work grows with the photos per window, never with the square of the library.
Moments are the connected components of those links (a burst is a chain in time).
Pure functions over arrays: L2-normalised embeddings, capture times in seconds, positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .duplicates import components

EARTH_RADIUS_M = 6_371_000.0


@dataclass(frozen=True)
class Moment:
    """Photos of one moment, in capture order; ``best``: the suggested shot (a position),
    with the ``reasons`` it was chosen."""

    members: list[int]
    best: int
    reasons: list[str]
    start: float  # capture time of the first and last photo, in seconds
    end: float


@dataclass(frozen=True)
class Moments:
    """The moments of a collection (groups of two photos or more, largest first).

    ``undated``: positions without a capture time, which no moment can hold.
    """

    file_ids: np.ndarray
    paths: list[str]
    moments: list[Moment]
    undated: list[int]

    def rows(self) -> list[dict[str, Any]]:
        """One row per photo of a moment, for CSV."""
        return [{"moment": number, "id": int(self.file_ids[p]), "path": self.paths[p],
                 "best": p == moment.best}
                for number, moment in enumerate(self.moments, start=1) for p in moment.members]

    def to_dict(self) -> dict[str, Any]:
        return {"moments": [{
            "size": len(m.members), "seconds": round(m.end - m.start, 3),
            "best": {"id": int(self.file_ids[m.best]), "path": self.paths[m.best],
                     "reasons": m.reasons},
            "members": [{"id": int(self.file_ids[p]), "path": self.paths[p]}
                        for p in m.members]} for m in self.moments],
            "undated": len(self.undated)}


def distance_m(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
               ) -> np.ndarray:
    """Great-circle distance in metres (haversine); NaN where a position is missing."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def moment_links(
    vectors: np.ndarray, times: np.ndarray, *, window: float, threshold: float,
    latitude: np.ndarray | None = None, longitude: np.ndarray | None = None,
    max_distance: float = 100.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(i, j)``: pairs taken at most ``window`` seconds apart whose cosine is at least
    ``threshold`` and, when both have a position, at most ``max_distance`` metres apart.
    NaN times link nothing."""
    dated = np.flatnonzero(np.isfinite(times))
    order = dated[np.argsort(times[dated], kind="stable")]
    sorted_times = times[order]
    firsts, seconds = [], []
    for offset in range(1, len(order)):
        # pairs offset apart in time order, while any is still inside the window
        close = np.flatnonzero(sorted_times[offset:] - sorted_times[:-offset] <= window)
        if not len(close):
            break
        firsts.append(order[close])
        seconds.append(order[close + offset])
    if not firsts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    i, j = np.concatenate(firsts), np.concatenate(seconds)
    cosine = np.einsum("ij,ij->i", np.asarray(vectors[i], np.float32),
                       np.asarray(vectors[j], np.float32))
    keep = cosine >= threshold
    if latitude is not None and longitude is not None:
        far = distance_m(latitude[i], longitude[i], latitude[j], longitude[j]) > max_distance
        keep &= ~np.nan_to_num(far, nan=0.0).astype(bool)
    return i[keep], j[keep]


def best_shot(members: Sequence[int], sharpness: np.ndarray, brightness: np.ndarray,
              highlights: np.ndarray, shadows: np.ndarray) -> tuple[int, list[str]]:
    """The sharpest well-exposed photo of a moment: sharpness (log10 Laplacian variance)
    less a penalty for clipped highlights and shadows and for a mean level far from mid
    grey; the first in time on a tie."""
    positions = np.asarray(members)
    clipped = highlights[positions] + shadows[positions]
    exposure = np.abs(brightness[positions] - 0.45)
    score = sharpness[positions] - 2.0 * clipped - exposure
    chosen = int(np.argmax(score))
    reasons = []
    if sharpness[positions[chosen]] >= sharpness[positions].max() - 1e-9:
        reasons.append("sharpest")
    if clipped[chosen] <= clipped.min() + 1e-9:
        reasons.append("least clipped")
    if exposure[chosen] <= exposure.min() + 1e-9:
        reasons.append("best exposed")
    return int(positions[chosen]), reasons or ["best balance of sharpness and exposure"]


def find_moments(
    vectors: np.ndarray, times: np.ndarray, file_ids: np.ndarray, paths: Sequence[str],
    *, sharpness: np.ndarray, brightness: np.ndarray, highlights: np.ndarray,
    shadows: np.ndarray, window: float = 10.0, threshold: float = 0.6,
    latitude: np.ndarray | None = None, longitude: np.ndarray | None = None,
    max_distance: float = 100.0,
) -> Moments:
    """The moments of a collection: see :func:`moment_links`; each with its best shot."""
    n = len(times)
    i, j = moment_links(vectors, times, window=window, threshold=threshold,
                        latitude=latitude, longitude=longitude, max_distance=max_distance)
    labels = components(n, i, j)
    sizes = np.bincount(labels, minlength=n)
    found = []
    for label in np.unique(labels[sizes[labels] >= 2]):
        members = np.flatnonzero(labels == label)
        members = members[np.argsort(times[members], kind="stable")].tolist()
        best, reasons = best_shot(members, sharpness, brightness, highlights, shadows)
        found.append(Moment(members, best, reasons, float(times[members[0]]),
                            float(times[members[-1]])))
    found.sort(key=lambda m: (-len(m.members), m.start))
    return Moments(np.asarray(file_ids), list(paths), found,
                   np.flatnonzero(~np.isfinite(times)).tolist())
