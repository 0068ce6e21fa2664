"""A weight-free descriptor: works on any machine with no download.

Three parts, each L2-normalised, weighted, concatenated and normalised again:

* a joint HSV colour histogram (global, so it ignores flips and small crops),
* a coarse colour layout: mean Lab-like colour on a 4 x 4 grid,
* an edge-orientation histogram on a 2 x 2 grid (texture and shape, robust to lighting).

Colour histograms are what the threshold-grouping workflow tried first; they fail when the
lighting changes, so this is used only when asked for by name (``--model classic``), e.g.
for speed in tests. Histograms use the Hellinger (square-root) mapping so that
cosine similarity behaves like a histogram-intersection measure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .base import Backbone, l2_normalize

SIZE = 128
HUE_BINS, SAT_BINS, VAL_BINS = 12, 4, 4
LAYOUT_GRID = 4
EDGE_GRID, EDGE_BINS = 2, 8
WEIGHTS = {"colour": 1.0, "layout": 0.6, "edges": 0.8}


@dataclass
class ClassicBackbone(Backbone):
    name: str = "classic"
    dim: int = (
        HUE_BINS * SAT_BINS * VAL_BINS + 3 * LAYOUT_GRID**2 + EDGE_GRID**2 * EDGE_BINS
    )
    decode_size: int = SIZE
    batch_size: int = 64

    def __post_init__(self) -> None:
        self.details = {"version": 1, "size": SIZE, "weights": dict(WEIGHTS)}

    def preprocess(self, image: Image.Image) -> np.ndarray:
        small = image.resize((SIZE, SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0)
        hsv = np.asarray(small.convert("HSV"), dtype=np.uint8)
        rgb = np.asarray(small, dtype=np.uint8)
        return np.concatenate([rgb, hsv], axis=2)  # [SIZE, SIZE, 6] uint8

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return np.stack([_describe(sample) for sample in batch]).astype(np.float32)


def _describe(sample: np.ndarray) -> np.ndarray:
    rgb = sample[..., :3].astype(np.float32) / 255.0
    hsv = sample[..., 3:]
    parts = {
        "colour": np.sqrt(_colour_histogram(hsv)),
        "layout": _colour_layout(rgb),
        "edges": np.sqrt(_edge_histogram(rgb)),
    }
    weighted = [
        WEIGHTS[key] * l2_normalize(value[None, :])[0] for key, value in parts.items()
    ]
    return l2_normalize(np.concatenate(weighted)[None, :])[0]


def _colour_histogram(hsv: np.ndarray) -> np.ndarray:
    hue = (hsv[..., 0].astype(np.int32) * HUE_BINS) >> 8
    sat = (hsv[..., 1].astype(np.int32) * SAT_BINS) >> 8
    val = (hsv[..., 2].astype(np.int32) * VAL_BINS) >> 8
    codes = (hue * SAT_BINS + sat) * VAL_BINS + val
    counts = np.bincount(codes.ravel(), minlength=HUE_BINS * SAT_BINS * VAL_BINS)
    return counts.astype(np.float32) / codes.size


def _colour_layout(rgb: np.ndarray) -> np.ndarray:
    # Opponent colour space: brightness and two chroma axes, centred on zero.
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    opponent = np.stack(
        [(red + green + blue) / 3 - 0.5, (red - green) / 2, (red + green) / 4 - blue / 2], axis=2
    )
    cell = SIZE // LAYOUT_GRID
    blocks = opponent.reshape(LAYOUT_GRID, cell, LAYOUT_GRID, cell, 3).mean(axis=(1, 3))
    return blocks.ravel()


def _edge_histogram(rgb: np.ndarray) -> np.ndarray:
    grey = rgb.mean(axis=2)
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    # Unsigned orientation in [0, pi): a flip or a lighting change keeps the same bins.
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    bins = np.minimum((angle / np.pi * EDGE_BINS).astype(np.int32), EDGE_BINS - 1)
    cell = SIZE // EDGE_GRID
    cells = (np.arange(SIZE) // cell)
    cell_index = cells[:, None] * EDGE_GRID + cells[None, :]
    codes = cell_index * EDGE_BINS + bins
    histogram = np.bincount(
        codes.ravel(), weights=magnitude.ravel(), minlength=EDGE_GRID**2 * EDGE_BINS
    )
    return (histogram / max(histogram.sum(), 1e-12)).astype(np.float32)
