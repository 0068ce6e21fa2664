"""Measuring quality against labels (``lookalike eval``) and learning a metric
(``lookalike learn``): labelled sets -> cached embeddings -> configurations -> metrics.

The modules, in the data's order: :mod:`.datasets` (labelled folders and CSV manifests),
:mod:`.cache` (embeddings, once per image and model), :mod:`.configurations` (models,
ensembles, a collection as it searches), :mod:`.protocols` (queries and gallery),
:mod:`.metrics` (pure numpy), :mod:`.scoring` (one configuration under a protocol),
:mod:`.plots`, :mod:`.learn` and :mod:`.duplicates`. This module holds the entry point
that runs a whole evaluation, and the names the CLI uses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..collection import Collection
from .configurations import (
    Configuration,
    collection_vectors,
    embed_configuration,
    parse_configuration,
)
from .datasets import load_labelled
from .duplicates import DuplicateEval, evaluate_duplicates
from .learn import fit_collection_pca, learn_transform
from .metrics import DEFINITIONS
from .plots import write_figures
from .scoring import ConfigResult, EvalOptions, evaluate_vectors

__all__ = [
    "DEFINITIONS", "ConfigResult", "DuplicateEval", "EvalOptions", "EvalRun",
    "evaluate_duplicates", "fit_collection_pca", "learn_transform", "parse_configuration",
    "run_eval",
]


@dataclass
class EvalRun:
    """Everything ``lookalike eval`` reports."""

    dataset: str
    images: int
    classes: int
    k: int
    definitions: str
    results: list[ConfigResult]
    figures: list[str] = field(default_factory=list)


def run_eval(
    dataset: str | os.PathLike[str],
    configurations: Sequence[Configuration],
    options: EvalOptions,
    *,
    queries: str | os.PathLike[str] | None = None,
    classes: Sequence[str] | None = None,
    cache: Path | None = None,
    plots: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    collection: Collection | None = None,
) -> EvalRun:
    """Embed (or read from the cache) and score every configuration on one dataset; with
    a ``collection``, score it (its stored embeddings and learned transform) first. A
    learned transform under an image split is also scored with that fraction of the
    classes held out (unless ``options`` name a class split, or there are fewer than three
    classes): results then hold both."""
    labelled = load_labelled(dataset)
    query_set = load_labelled(queries) if queries is not None else None
    if classes:
        labelled = labelled.only_classes(classes)
        if query_set is not None:
            query_set = query_set.only_classes(classes)
    protocols = [options]
    if (options.learn is not None and queries is None and options.split_classes is None
            and (options.split is not None or options.per_class is not None)
            and len(set(labelled.labels.tolist())) >= 3):
        # a learned metric can ruin retrieval on classes it never saw: say so beside
        protocols.append(replace(options, split=None, per_class=None,
                                 split_classes=options.split or 0.5))
    results = []
    if collection is not None:
        def collection_step(done: int, total: int) -> None:
            if progress:
                progress("reading the collection", done, total)

        vectors = collection_vectors(collection, labelled, progress=collection_step)
        query_vectors = (collection_vectors(collection, query_set, progress=collection_step)
                         if query_set is not None else None)
        results += [evaluate_vectors(labelled, vectors, protocol, query_set, query_vectors)
                    for protocol in protocols]
    for configuration in configurations:
        def step(done: int, total: int, name: str = configuration.label) -> None:
            if progress:
                progress(f"embedding {name}", done, total)

        vectors = embed_configuration(labelled, configuration, cache, step)
        query_vectors = (embed_configuration(query_set, configuration, cache, step)
                         if query_set is not None else None)
        results += [evaluate_vectors(labelled, vectors, protocol, query_set, query_vectors)
                    for protocol in protocols]
    run = EvalRun(str(dataset), len(labelled), len(set(labelled.labels.tolist())), options.k,
                  DEFINITIONS.replace("k:", f"k (k={options.k}):", 1), results)
    if plots is not None:
        run.figures.extend(write_figures(results, Path(plots)))
    return run
