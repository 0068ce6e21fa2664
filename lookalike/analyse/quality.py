"""Image-quality flags calibrated on the collection itself: blurry, dark, over-exposed,
low-information (near-uniform), tiny and odd-shaped images.

A fixed threshold fails somewhere: night scenes are dark, product shots are white, scans
are soft. Each flag compares an image with the collection it belongs to, in robust units
(the median and the scaled median absolute deviation of the measure over the
collection), and also needs an absolute sign of the problem, so that a collection of
sharp, well-exposed photos does not get its least sharp few per cent flagged. Pure
functions over the measurements of :mod:`lookalike.measure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..measure import ImageStats

FLAGS = ("blurry", "dark", "overexposed", "low_information", "tiny", "odd_shape")
# Robust z-score beyond which an image is unlike its collection (3 scaled MADs: 0.13 % of
# a normal distribution's tail).
OUTLYING = 3.0
# Absolute signs that each problem is real, whatever the collection.
MAX_BLURRY_SHARPNESS = 2.0  # log10 Laplacian variance at 256 px: a crisp photo is 2.5-3.5
DARK_UPPER = 0.3  # dark: even the lightest 2 % of the picture stays below this level...
MAX_DARK_BRIGHTNESS = 0.2  # ...and the mean level below this
CLIPPED_HIGHLIGHTS = 0.1  # over-exposed: this share of the picture burnt to white...
SOME_HIGHLIGHTS = 0.02  # ...or this much, in a picture much brighter than its collection
MAX_FLAT_CONTRAST = 0.06  # low information: levels spread less than this (std)...
FLAT_CONTRAST = 0.03  # ...and unlike the collection's, or less than this anyway
TINY_SIDE = 64  # pixels: always tiny below this short side
TINY_SHARE = 0.25  # ...and tiny below this share of the collection's median short side
ODD_ASPECT = 3.0  # long side over short side


@dataclass(frozen=True)
class QualityFlags:
    """Flagged positions per flag, worst first, with each image's severity per flag.

    ``scores[flag][p]``: how far position ``p`` lies beyond the collection on that flag's
    measure (robust z-score, or the ratio for ``tiny``/``odd_shape``); ``flags[flag]``:
    the flagged positions, most severe first. ``thresholds``: the values used, in the
    measure's own units, to show the user.
    """

    file_ids: np.ndarray
    paths: list[str]
    flags: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    thresholds: dict[str, float]

    def flagged(self) -> set[int]:
        return {int(p) for positions in self.flags.values() for p in positions}

    def rows(self) -> list[dict[str, Any]]:
        """One row per (flag, image), for CSV."""
        return [{"flag": flag, "id": int(self.file_ids[p]), "path": self.paths[p],
                 "severity": round(float(self.scores[flag][p]), 3)}
                for flag in FLAGS for p in self.flags[flag].tolist()]

    def to_dict(self) -> dict[str, Any]:
        return {"counts": {flag: int(len(self.flags[flag])) for flag in FLAGS},
                "thresholds": self.thresholds, "flags": self.rows()}


def _robust_z(values: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """(x - median) / (1.4826 MAD), the scale floored (at ``floor``, or 5 % of the
    median) so that a near-constant measure does not turn noise into outliers."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return np.zeros_like(values)
    median = float(np.median(finite))
    spread = 1.4826 * float(np.median(np.abs(finite - median)))
    spread = max(spread, 0.05 * abs(median), floor)
    return (values - median) / spread


def _column(stats: Sequence[ImageStats | None], name: str) -> np.ndarray:
    return np.array([np.nan if s is None else float(getattr(s, name)) for s in stats])


def _worst_first(flagged: np.ndarray, severity: np.ndarray) -> np.ndarray:
    positions = np.flatnonzero(flagged)
    return positions[np.argsort(-severity[positions], kind="stable")]


def flag_quality(stats: Sequence[ImageStats | None], file_ids: np.ndarray,
                 paths: Sequence[str], *, outlying: float = OUTLYING) -> QualityFlags:
    """The quality flags of a collection from its images' measurements (None: not
    measured, never flagged). ``outlying``: the robust z-score past which an image is
    unlike its collection."""
    sharp, bright = _column(stats, "sharpness"), _column(stats, "brightness")
    highlights, contrast = _column(stats, "highlights"), _column(stats, "contrast")
    information = _column(stats, "information")
    width, height = _column(stats, "width"), _column(stats, "height")
    short, long_ = np.fmin(width, height), np.fmax(width, height)
    scores = {
        "blurry": -_robust_z(sharp),
        "dark": -_robust_z(bright),
        "overexposed": _robust_z(highlights, floor=0.01),  # a share: 1 % is noise
        "low_information": -_robust_z(information),
        "tiny": np.nanmedian(short) / np.maximum(short, 1) if len(short) else short,
        "odd_shape": long_ / np.maximum(short, 1),
    }
    tiny_below = max(TINY_SIDE, TINY_SHARE * float(np.nanmedian(short))) if len(short) else 0
    upper = _column(stats, "upper")
    with np.errstate(invalid="ignore"):
        flagged = {
            "blurry": (scores["blurry"] > outlying) & (sharp < MAX_BLURRY_SHARPNESS),
            "dark": (upper < DARK_UPPER) & (bright < MAX_DARK_BRIGHTNESS),
            "overexposed": ((highlights > CLIPPED_HIGHLIGHTS) & (scores["overexposed"] > outlying))
            | ((highlights > SOME_HIGHLIGHTS) & (-scores["dark"] > outlying)),
            "low_information": (contrast < MAX_FLAT_CONTRAST)
            & ((scores["low_information"] > outlying) | (contrast < FLAT_CONTRAST)),
            "tiny": short < tiny_below,
            "odd_shape": scores["odd_shape"] > ODD_ASPECT,
        }
    measured = np.isfinite(sharp)
    return QualityFlags(
        file_ids=np.asarray(file_ids), paths=list(paths),
        flags={flag: _worst_first(flagged[flag] & measured, np.nan_to_num(scores[flag]))
               for flag in FLAGS},
        scores={flag: np.nan_to_num(scores[flag]) for flag in FLAGS},
        thresholds={"outlying_z": outlying, "max_blurry_sharpness": MAX_BLURRY_SHARPNESS,
                    "dark_upper": DARK_UPPER, "max_dark_brightness": MAX_DARK_BRIGHTNESS,
                    "clipped_highlights": CLIPPED_HIGHLIGHTS,
                    "max_flat_contrast": MAX_FLAT_CONTRAST,
                    "tiny_below_px": round(tiny_below, 1), "odd_aspect": ODD_ASPECT},
    )
