"""``lookalike learn``: fit a transform (KISSME, LDA, a metric-loss head, PCA) on labelled
embeddings, and optionally score raw against learned on held-out images."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..collection import Collection
from ..embed.transform import TransformChain, chain_for, fit_chain
from .configurations import Configuration, collection_vectors, embed_configuration
from .datasets import load_labelled
from .protocols import stratified_split
from .scoring import EvalOptions, evaluate_vectors


@dataclass(frozen=True)
class HeldOutScores:
    """Raw or learned retrieval quality on the held-out images, against one gallery
    (``rest`` or ``held-out``)."""

    label: str
    gallery: str
    protocol: str
    summary: dict[str, float]


@dataclass(frozen=True)
class LearnResult:
    """What :func:`learn_transform` fitted, where it went, and (with a split) raw against
    learned quality on the held-out images: raw then learned, per gallery."""

    transform: str  # the fitted chain's description
    fitted_on: int  # images
    seconds: float  # fitting time
    saved: str  # where the chain went: a file, and/or the collection
    protocol: str | None  # "split F, seed S", or None without a split
    held_out: list[HeldOutScores]
    output_dim: int


def fit_collection_pca(
    collection: Collection, *, dim: int | None = None, whiten: float = 0.0
) -> TransformChain:
    """PCA (``dim``, ``whiten``) fitted on the collection's own embeddings, no labels
    needed, and set on the collection."""
    record = collection.model
    if record is None:
        raise ValueError("the collection has no embeddings yet: run lookalike index first")
    _, vectors = collection.vectors(raw=True)
    chain = chain_for("pca", dim=dim, whiten=whiten).fit(vectors)
    chain.info = {"model": record.spec, "dataset": str(collection.directory),
                  "fitted_on": len(vectors), "input_dim": int(vectors.shape[1]),
                  "output_dim": int(chain.transform(vectors[:1]).shape[1])}
    collection.set_transform(chain)
    return chain


def learn_transform(
    dataset: str | os.PathLike[str],
    configuration: Configuration,
    method: str,
    *,
    dim: int | None = None,
    whiten: float = 0.0,
    split: float | None = None,
    seed: int = 0,
    k: int = 10,
    cache: Path | None = None,
    out: Path | None = None,
    collection: Collection | None = None,
) -> LearnResult:
    """Fit ``method`` on the labelled embeddings (on 1 - ``split`` of each class when
    ``split`` is given, and then score raw vs learned on the held-out rest, both against
    the rest and leave-one-out among the held-out images) and save the chain to ``out``.

    With a ``collection``, the embeddings are the collection's own (its model; stored
    vectors where it holds the images) and the fitted chain is set on it, so that its
    index, analyses and every later query use the learned space."""
    if configuration.fusion != "concat":
        raise ValueError("learn needs a concatenated ensemble, not rrf")
    labelled = load_labelled(dataset)
    if collection is not None:
        vectors = collection_vectors(collection, labelled, raw=True)
    else:
        vectors = embed_configuration(labelled, configuration, cache)
    valid = np.flatnonzero(vectors.valid)
    combined = vectors.combined()[valid]
    labels = labelled.labels[valid]
    fit_rows = np.arange(len(labels))
    if split is not None:
        fit_rows, _ = stratified_split(labels, split, seed)
    started = time.perf_counter()
    chain = fit_chain(chain_for(method, dim=dim, whiten=whiten), combined[fit_rows],
                      labels[fit_rows])
    seconds = time.perf_counter() - started
    chain.info = {"model": vectors.label if collection is not None else configuration.label,
                  "members": [[m.spec, m.preprocess, m.border_crop, m.flip, w]
                              for m, w in configuration.members],
                  "dataset": str(dataset), "fitted_on": int(len(fit_rows)),
                  "split": split, "seed": seed, "input_dim": int(combined.shape[1])}
    saved = []
    if out is not None:
        saved.append(str(chain.save(out)))
    if collection is not None:
        collection.set_transform(chain)
        saved.append(f"{collection.directory} (applied to the collection)")
    held_out: list[HeldOutScores] = []
    protocol = None if split is None else f"split {split:g}, seed {seed}"
    if split is not None:
        for gallery in ("rest", "held-out"):
            raw = EvalOptions(k=k, split=split, seed=seed, gallery=gallery)
            for options in (raw, replace(raw, transform=chain)):
                result = evaluate_vectors(labelled, vectors, options)
                held_out.append(HeldOutScores(result.label, gallery, result.protocol,
                                              result.summary))
    return LearnResult(chain.description, int(len(fit_rows)), seconds, ", ".join(saved),
                       protocol, held_out, int(chain.transform(combined[:1]).shape[1]))
