"""What ``--model`` names: one model with its preprocessing, or a weighted ensemble, and
the embeddings of a labelled set under it (from the cache, or as a collection sees them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..collection import Collection
from ..discover import is_remote
from ..embed import load_backbone
from ..embed.base import Backbone
from ..embed.ensemble import concatenate, member_preprocess, parse_ensemble
from ..pipeline import Progress
from .cache import embed_files, embed_set
from .datasets import LabelledSet


@dataclass(frozen=True)
class ModelSpec:
    """One backbone with its preprocessing options (``--preprocess``, crop, TTA)."""

    spec: str
    preprocess: dict[str, Any] | None = None
    border_crop: bool = False
    flip: bool = False

    def load(self) -> Backbone:
        return load_backbone(self.spec, border_crop=self.border_crop, flip=self.flip,
                             preprocess=self.preprocess or None)

    @property
    def short(self) -> str:
        """A readable name: ``mobilenetv2-int8`` for ``onnx:.../mobilenetv2-int8/model.onnx``."""
        name = self.spec
        if name.startswith("onnx:"):
            path = Path(name[5:])
            name = path.parent.name if path.stem == "model" else path.stem
        suffix = ("+crop" if self.border_crop else "") + ("+flip" if self.flip else "")
        return f"{name}{'[' + suffix[1:] + ']' if suffix else ''}"


@dataclass(frozen=True)
class Configuration:
    """What ``--model`` names: one model, or a weighted ensemble ``a:0.6+b:0.4``.

    ``fusion``: ``concat`` (weighted concatenation of L2-normalised embeddings, each scaled
    by sqrt(weight) so that the inner product is the weighted sum of the members' cosines)
    or ``rrf`` (reciprocal-rank fusion of the members' rankings at search time).
    """

    label: str
    members: tuple[tuple[ModelSpec, float], ...]
    fusion: str = "concat"


def parse_configuration(
    text: str,
    preprocess: dict[str, dict[str, Any]] | None = None,
    *,
    border_crop: bool = False,
    flip: bool = False,
    fusion: str = "concat",
) -> Configuration:
    """``a``, ``a+b`` or ``a:0.6+b:0.4`` -> a :class:`Configuration`.

    ``preprocess`` maps a model spec (or ``*`` for all) to its preprocessing dict. A
    ``:weight`` suffix is recognised only when it parses as a number, so ``onnx:PATH``
    specs need no quoting.
    """
    preprocess = preprocess or {}
    members = []
    for spec, weight in parse_ensemble(text):
        members.append((ModelSpec(spec, member_preprocess(spec, preprocess), border_crop,
                                  flip), weight))
    label = "+".join(m.short if len(members) == 1 or w == 1 / len(members) else
                     f"{m.short}:{w:g}" for m, w in members)
    if fusion not in ("concat", "rrf"):
        raise ValueError(f"fusion must be concat or rrf, not {fusion!r}")
    if fusion == "rrf" and len(members) > 1:
        label += " (rrf)"
    return Configuration(label, tuple(members), fusion if len(members) > 1 else "concat")


@dataclass
class ConfigurationVectors:
    label: str
    parts: list[np.ndarray]  # one [n, dim_i] per member
    weights: list[float]
    fusion: str
    valid: np.ndarray
    images_per_second: float
    cached: bool
    notes: list[str] = field(default_factory=list)

    def combined(self, parts: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """The members' vectors (``parts``: rows or projections of them) as one, by the
        configuration's weights."""
        parts = self.parts if parts is None else parts
        return parts[0] if len(parts) == 1 else concatenate(parts, self.weights)


def embed_configuration(
    labelled: LabelledSet,
    configuration: Configuration,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> ConfigurationVectors:
    """Embeddings of ``labelled`` for each member of ``configuration`` (from the cache).

    The speed of an ensemble is that of running all its members on one image."""
    parts, valid, seconds_per_image, cached = [], np.ones(len(labelled), bool), 0.0, True
    for model, _ in configuration.members:
        embedded = embed_set(labelled, model.load(), model.short, cache, progress=progress)
        parts.append(embedded.vectors)
        valid &= embedded.valid
        cached &= embedded.cached
        seconds_per_image += 1 / embedded.images_per_second if embedded.images_per_second else 0
    speed = 1 / seconds_per_image if seconds_per_image else 0.0
    return ConfigurationVectors(configuration.label, parts,
                                [w for _, w in configuration.members], configuration.fusion,
                                valid, speed, cached)


def collection_vectors(
    collection: Collection,
    labelled: LabelledSet,
    *,
    raw: bool = False,
    progress: Progress | None = None,
) -> ConfigurationVectors:
    """Embeddings of ``labelled`` as ``collection`` sees them: stored vectors for images it
    holds, its model (and learned transform, unless ``raw``) for the others. Nothing is
    embedded twice and the numbers describe exactly what ``search`` ranks with."""
    record = collection.require_model()
    file_ids, stored = collection.vectors(raw=raw, copy=False)  # only held rows are read
    row_of = {path: row for row, path in enumerate(collection.paths(file_ids))}
    vectors = np.zeros((len(labelled), stored.shape[1]), dtype=np.float32)
    held: dict[int, int] = {}  # position in the set -> row of ``stored``
    # a labelled set is local: a collection on object storage holds none of it
    root = collection.root
    for position, relative in enumerate(labelled.paths):
        if is_remote(root):
            break
        try:
            inside = (labelled.root / relative).resolve().relative_to(root)
        except ValueError:
            continue
        if inside.as_posix() in row_of:
            held[position] = row_of[inside.as_posix()]
    missing = [position for position in range(len(labelled)) if position not in held]
    if held:
        vectors[list(held)] = stored[list(held.values())]
    valid = np.ones(len(labelled), dtype=bool)
    seconds = 0.0
    if missing:  # embedded as eval embeds any set: threaded decode, batched model
        fresh, failed, seconds = embed_files(
            collection.backbone, labelled.root, [labelled.paths[i] for i in missing],
            progress)
        vectors[missing] = fresh if raw else collection.project(fresh)
        valid[[missing[i] for i in failed]] = False
    embedded = len(missing)
    label = ModelSpec(record.spec).short
    transform = None if raw else collection.transform
    if transform is not None:
        label += f" [{transform.description}]"
    notes = [f"{len(labelled) - embedded} of {len(labelled)} images read from the collection"]
    return ConfigurationVectors(f"collection: {label}", [vectors], [1.0], "concat", valid,
                                embedded / seconds if seconds else 0.0, cached=embedded == 0,
                                notes=notes)
