"""Ensembles of backbones: ``a:0.6+b:0.4`` embeds with every member and concatenates.

Each member's L2-normalised embedding is scaled by sqrt(weight) before concatenation, so
the inner product of two ensemble embeddings is the weighted sum of the members' cosines;
the result is normalised again so that it is a cosine too. Members may preprocess
differently (sizes, normalisation): ``preprocess`` packs every member's input into one flat
row, so the indexing pipeline batches ensembles like any backbone, and ``embed`` unpacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .base import Backbone, l2_normalize


def parse_ensemble(spec: str) -> list[tuple[str, float]]:
    """``a``, ``a+b`` or ``a:0.6+b:0.4`` -> ``[(spec, weight), ...]``, weights summing to 1.

    A ``:weight`` suffix counts only when it parses as a number, so ``onnx:PATH`` needs no
    quoting.
    """
    members = []
    for part in spec.split("+"):
        name, weight = part.strip(), 1.0
        head, _, tail = name.rpartition(":")
        if head and _is_number(tail):
            name, weight = head, float(tail)
        if not name:
            raise ValueError(f"empty model in {spec!r}")
        if weight <= 0:
            raise ValueError(f"ensemble weights must be positive: {spec!r}")
        members.append((name, weight))
    total = sum(weight for _, weight in members)
    return [(name, weight / total) for name, weight in members]


def member_preprocess(spec: str, options: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The preprocessing ``--preprocess`` gives ensemble member ``spec``: its own
    ``SPEC=JSON``, else the one for every model (``*``); only ONNX members take any."""
    chosen = options.get(spec, options.get("*"))
    return chosen if chosen is not None and spec.startswith("onnx:") else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def concatenate(parts: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted concatenation of L2-normalised embeddings: the result's inner product is
    ``sum(w_i * cos_i)``, and rows are L2-normalised again (so it is a cosine too)."""
    scaled = [l2_normalize(p) * np.float32(np.sqrt(w)) for p, w in zip(parts, weights)]
    return l2_normalize(np.concatenate(scaled, axis=1))


@dataclass(eq=False)
class EnsembleBackbone(Backbone):
    """Several backbones as one; see the module docstring."""

    members: list[tuple[Backbone, float]] = field(default_factory=list, repr=False)
    _shapes: list[tuple[int, ...]] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, members: list[tuple[Backbone, float]]) -> EnsembleBackbone:
        probe = Image.new("RGB", (64, 64))
        shapes = [tuple(member.preprocess(probe).shape) for member, _ in members]
        name = "+".join(f"{m.name}:{w:g}" for m, w in members)
        return cls(name=name, dim=sum(m.dim for m, _ in members),
                   decode_size=max(m.decode_size for m, _ in members),
                   batch_size=min(m.batch_size for m, _ in members),
                   # each member runs inside one embed call: as many calls at once as the
                   # least parallel member allows (CPU ONNX sessions are single-threaded)
                   concurrency=min(m.concurrency for m, _ in members),
                   embeds_text=all(m.embeds_text for m, _ in members),
                   details={"members": [[m.identity(), w] for m, w in members]},
                   members=members, _shapes=shapes)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return np.concatenate([member.preprocess(image).astype(np.float32).ravel()
                               for member, _ in self.members])

    def embed(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, dtype=np.float32)
        parts, start = [], 0
        for (member, _), shape in zip(self.members, self._shapes):
            size = int(np.prod(shape))
            parts.append(member.embed(batch[:, start:start + size].reshape(-1, *shape)))
            start += size
        return concatenate(parts, [weight for _, weight in self.members])

    def embed_text(self, texts: list[str]) -> np.ndarray:
        parts = [member.embed_text(texts) for member, _ in self.members]
        return concatenate(parts, [weight for _, weight in self.members])

    def identity(self) -> dict[str, Any]:
        return {"name": "ensemble", "dim": self.dim, **self.details}
