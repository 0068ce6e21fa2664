"""The one small protocol every backbone implements, and the shared image preprocessing.

A backbone turns decoded RGB images into float32, L2-normalised rows. Work is split in two
so that the expensive half can overlap with decoding:

* ``preprocess(image)`` runs in the decode worker threads: PIL image -> one numpy array;
* ``embed(batch)`` runs on the main thread: stacked arrays -> ``float32 [n, dim]``.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModelUnavailable(RuntimeError):
    """A backbone cannot be loaded here (no weights offline, missing package, bad file)."""


def error_summary(error: BaseException) -> str:
    """The first line of a third-party exception: enough for a one-line user message."""
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a network input.

    ``resize``: short side is resized to this many pixels (``None``: to ``size``).
    ``crop``: ``"center"`` takes a ``size`` x ``size`` centre crop after the resize;
    ``"squash"`` resizes straight to ``size`` x ``size`` ignoring the aspect ratio.
    Pixel values are scaled to [0, 1], then ``(x - mean) / std`` per channel.
    """

    size: int = 224
    resize: int | None = 256
    crop: str = "center"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.crop not in ("center", "squash"):
            raise ValueError(f"crop must be 'center' or 'squash', not {self.crop!r}")
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', not {self.channel_order!r}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Preprocess:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown preprocessing keys: {', '.join(unknown)}")
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def decode_size(self) -> int:
        """Smallest short side the decoder must deliver (JPEG ``draft`` may go no lower)."""
        return max(self.size, self.resize or 0)


_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


def resize_and_crop(image: Image.Image, spec: Preprocess) -> Image.Image:
    """Resize (short side) and crop an RGB image to ``spec.size`` x ``spec.size``.

    Only the part that survives the centre crop is resampled (``resize(box=...)``): the
    same pixels as resizing everything and cropping after, for a fraction of the work.
    """
    resample = _RESAMPLE[spec.interpolation]
    size = spec.size
    if spec.crop == "squash":
        return image.resize((size, size), resample, reducing_gap=3.0)
    short = spec.resize or size
    width, height = image.size
    scale = short / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    left, top = (new_w - size) // 2, (new_h - size) // 2
    if (new_w, new_h) == (width, height):
        return image.crop((left, top, left + size, top + size))
    x_scale, y_scale = width / new_w, height / new_h
    box = (left * x_scale, top * y_scale, (left + size) * x_scale, (top + size) * y_scale)
    return image.resize((size, size), resample, box=box, reducing_gap=3.0)


def to_tensor(image: Image.Image, spec: Preprocess) -> np.ndarray:
    """RGB PIL image -> normalised float32 CHW array, ready for a CNN/ViT."""
    pixels = np.asarray(resize_and_crop(image, spec), dtype=np.float32)
    if spec.channel_order == "BGR":
        pixels = pixels[..., ::-1]
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    if spec.channel_order == "BGR":
        mean, std = mean[::-1], std[::-1]
    # (p / 255 - mean) / std as one multiply-add, in place on the CHW copy
    pixels = np.ascontiguousarray(pixels.transpose(2, 0, 1))
    pixels *= (1.0 / (255.0 * std))[:, None, None]
    pixels -= (mean / std)[:, None, None]
    return pixels


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation to float32; all-zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def file_digest(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of a weights file, recorded so a collection knows exactly what embedded it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Backbone(ABC):
    """An image (and maybe text) embedder.

    Subclasses set ``name``, ``dim`` and ``decode_size`` and implement ``preprocess`` and
    ``embed``. ``identity()`` is what a collection records; two backbones with equal
    identities produce interchangeable embeddings. ``concurrency``: how many ``embed``
    calls the indexing pipeline may run at once (a single-threaded CPU runtime scales
    better with one call per core than with one call spread over all cores).
    """

    name: str
    dim: int
    decode_size: int = 256
    batch_size: int = 32
    embeds_text: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 1

    @abstractmethod
    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One decoded RGB image -> one model input array (runs in worker threads)."""

    @abstractmethod
    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Stacked ``preprocess`` outputs -> float32 ``[n, dim]``, L2-normalised rows."""

    def embed_text(self, texts: list[str]) -> np.ndarray:
        raise ModelUnavailable(
            f"model {self.name!r} embeds images only; text search needs a CLIP model "
            "(e.g. --model clip-vit-b-32)"
        )

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """Convenience for callers holding PIL images (queries, tests)."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed(np.stack([self.preprocess(image.convert("RGB")) for image in images]))

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, **self.details}


def cache_dir() -> Path:
    """Where downloaded weights live: ``$LOOKALIKE_HOME`` or ``~/.cache/lookalike``."""
    home = os.environ.get("LOOKALIKE_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "lookalike"
