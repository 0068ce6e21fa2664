"""``lookalike learn``: fit a transform (regularised LDA, LDA, KISSME, a metric-loss head,
PCA) on labelled embeddings, and optionally score raw against learned on held-out images
of the fitted classes and on held-out classes."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
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
    (``rest`` or ``held-out``: images of the fitted classes; ``held-out classes``: images
    of classes the transform was not fitted on, leave-one-out among them)."""

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
    protocol: str | None  # "split F, classes G, seed S", or None without a split
    held_out: list[HeldOutScores]
    output_dim: int

    def figures(self, gallery: str) -> tuple[float, float] | None:
        """``(raw, learned)`` first metric (mAP@k) on ``gallery``, or None if not scored."""
        rows = [row for row in self.held_out if row.gallery == gallery]
        if not rows:
            return None
        return tuple(next(iter(row.summary.values())) for row in rows)  # type: ignore[return-value]

    def warning(self) -> str:
        """What applying the transform to a collection risks, in figures: a collection
        nearly always holds classes the labels do not."""
        seen, unseen = self.figures("rest"), self.figures("held-out classes")
        metric = next(iter(self.held_out[0].summary)) if self.held_out else "mAP@k"
        parts = []
        if seen is not None:
            parts.append(f"held-out images of the labelled classes {seen[0]:.3f} raw -> "
                         f"{seen[1]:.3f} learned")
        if unseen is not None:
            parts.append(f"classes it was not fitted on {unseen[0]:.3f} raw -> "
                         f"{unseen[1]:.3f} learned")
        measured = "; ".join(parts) if parts else "not measured (no split)"
        return (f"the collection now searches in a learned space. {metric}: {measured}. "
                "Images of classes the labels do not hold search like the second figure; "
                "lookalike learn --db COLLECTION --clear undoes it.")


def fit_collection_pca(
    collection: Collection, *, dim: int | None = None, whiten: float = 0.0
) -> TransformChain:
    """PCA (``dim``, ``whiten``) fitted on the collection's own embeddings, no labels
    needed, and set on the collection."""
    record = collection.require_model()
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
    split_classes: float | None = None,
    measure: float | None = None,
    seed: int = 0,
    k: int = 10,
    classes: Sequence[str] | None = None,
    cache: Path | None = None,
    out: Path | None = None,
    collection: Collection | None = None,
) -> LearnResult:
    """Fit ``method`` on the labelled embeddings and save the chain to ``out``.

    ``split``: fit on 1 - ``split`` of each class and score raw vs learned on the held-out
    rest, both against the rest and leave-one-out among the held-out images.
    ``split_classes``: also fit a second chain on the images of 1 - ``split_classes`` of
    the classes and score raw vs learned on the others (:class:`.protocols.ClassDisjoint`);
    that chain is only measured, never saved, and needs three classes (with fewer, it is
    not measured). ``measure``: without ``split``, measure the image split with this
    fraction all the same, on a chain fitted for that alone (the saved one is fitted on
    every image). ``classes``: only these labels.

    With a ``collection``, the embeddings are the collection's own (its model; stored
    vectors where it holds the images) and the fitted chain is set on it, so that its
    index, analyses and every later query use the learned space."""
    if configuration.fusion != "concat":
        raise ValueError("learn needs a concatenated ensemble, not rrf")
    labelled = load_labelled(dataset)
    if classes:
        labelled = labelled.only_classes(classes)
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
    unfitted = functools.partial(chain_for, method, dim=dim, whiten=whiten)
    started = time.perf_counter()
    chain = fit_chain(unfitted(), combined[fit_rows], labels[fit_rows])
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
    image_split = split if split is not None else measure
    learned = {"transform": chain} if split is not None else {"learn": unfitted}
    measured = [(gallery, EvalOptions(k=k, split=image_split, seed=seed, gallery=gallery),
                 learned) for gallery in ("rest", "held-out") if image_split is not None]
    if split_classes is not None and len(np.unique(labels)) >= 3:  # else nothing to hold out
        measured.append(("held-out classes",
                         EvalOptions(k=k, split_classes=split_classes, seed=seed),
                         {"learn": unfitted}))
    held_out: list[HeldOutScores] = []
    for gallery, raw, fitted in measured:
        for options in (raw, replace(raw, **fitted)):
            result = evaluate_vectors(labelled, vectors, options)
            held_out.append(HeldOutScores(result.label, gallery, result.protocol,
                                          result.summary))
    parts = []
    if image_split is not None:
        parts.append(f"split {image_split:g}")
    if split_classes is not None:
        parts.append(f"classes {split_classes:g}")
    protocol = f"{', '.join(parts)}, seed {seed}" if parts else None
    return LearnResult(chain.description, int(len(fit_rows)), seconds, ", ".join(saved),
                       protocol, held_out, int(chain.transform(combined[:1]).shape[1]))
