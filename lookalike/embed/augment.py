"""Preprocessing around any backbone: automatic border crop and flip test-time augmentation.

Both are wrappers, so they work with every backbone (classic, ONNX, torch) and change its
``identity()``: embeddings made with and without them are never mixed.

* Border crop: scanned photos, letterboxed frames and product shots
  often sit inside a uniform margin that carries no content but takes part of the network's
  input and drags every such image towards every other one. Rows and columns that are
  near-uniform and close to the edge colour are stripped before the backbone's own resize.
* Flip TTA: the embedding is the normalised mean of the image's and its mirror image's
  embeddings, which makes it invariant to horizontal flips and slightly less noisy, at
  twice the model cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from .base import Backbone, l2_normalize


@dataclass(frozen=True)
class BorderCrop:
    """How near-uniform margins are found.

    A border row (or column) is one where at least ``coverage`` of its pixels are within
    ``tolerance`` (0-255, max over channels) of the edge colour, the median colour of the
    outermost row/column on that side. At most ``max_fraction`` of each dimension is
    removed per side, so a plain image (a blank wall) is never cropped to nothing.
    """

    tolerance: int = 12
    coverage: float = 0.97
    max_fraction: float = 0.3


def border_box(pixels: np.ndarray, rule: BorderCrop = BorderCrop()) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the content inside uniform margins of an
    ``[h, w, 3]`` uint8 image (the whole image when there is no margin)."""
    data = np.asarray(pixels, dtype=np.int16)
    if data.ndim == 2:
        data = data[..., None]
    height, width = data.shape[:2]
    top = _margin(data, rule)
    bottom = _margin(data[::-1], rule)
    left = _margin(data.transpose(1, 0, 2), rule)
    right = _margin(data.transpose(1, 0, 2)[::-1], rule)
    return left, top, width - right, height - bottom


def _margin(data: np.ndarray, rule: BorderCrop) -> int:
    """Number of leading rows of ``data`` ([rows, cols, channels]) that are border."""
    limit = int(len(data) * rule.max_fraction)
    if limit == 0:
        return 0
    reference = np.median(data[0], axis=0)
    close = (np.abs(data[:limit] - reference).max(axis=2) <= rule.tolerance).mean(axis=1)
    inside = np.flatnonzero(close < rule.coverage)
    return int(inside[0]) if len(inside) else limit


def crop_borders(image: Image.Image, rule: BorderCrop = BorderCrop()) -> Image.Image:
    """The image without its near-uniform margins (unchanged when it has none)."""
    box = border_box(np.asarray(image.convert("RGB")), rule)
    if box == (0, 0, *image.size):
        return image
    return image.crop(box)


@dataclass(eq=False)
class AugmentedBackbone(Backbone):
    """``inner`` with border crop and/or flip TTA applied; see the module docstring."""

    inner: Backbone | None = field(default=None, repr=False)
    border_crop: bool = False
    flip: bool = False

    @classmethod
    def wrap(cls, inner: Backbone, *, border_crop: bool = False, flip: bool = False) -> Backbone:
        if not (border_crop or flip):
            return inner
        return cls(name=inner.name, dim=inner.dim, decode_size=inner.decode_size,
                   batch_size=max(1, inner.batch_size // (2 if flip else 1)),
                   embeds_text=inner.embeds_text, details=dict(inner.details),
                   concurrency=inner.concurrency, inner=inner,
                   border_crop=border_crop, flip=flip)

    def _inner(self) -> Backbone:
        assert self.inner is not None
        return self.inner

    def preprocess(self, image: Image.Image) -> np.ndarray:
        inner = self._inner()
        if self.border_crop:
            image = crop_borders(image)
        if not self.flip:
            return inner.preprocess(image)
        return np.stack([inner.preprocess(image), inner.preprocess(ImageOps.mirror(image))])

    def embed(self, batch: np.ndarray) -> np.ndarray:
        inner = self._inner()
        if not self.flip:
            return inner.embed(batch)
        batch = np.asarray(batch)
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        both = inner.embed(batch.reshape(-1, *batch.shape[2:]))
        return l2_normalize(both.reshape(len(batch), 2, -1).mean(axis=1))

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return self._inner().embed_text(texts)

    def identity(self) -> dict[str, Any]:
        return {**self._inner().identity(), "border_crop": self.border_crop,
                "flip_tta": self.flip}
