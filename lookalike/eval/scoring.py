"""Scoring one configuration's embeddings of a labelled set: queries and gallery by a
protocol, ranking, retrieval metrics, confusion and (optionally) clustering."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analyse.clusters import evaluate as cluster_scores
from ..analyse.clusters import kmeans
from ..embed.transform import fit_chain
from .configurations import ConfigurationVectors
from .datasets import LabelledSet
from .metrics import (
    rank,
    reciprocal_rank_fusion,
    retrieval_confusion,
    retrieval_scores,
)
from .protocols import ClassDisjoint, HeldOut, LeaveOneOut, SeparateQueries, Splitter


@dataclass(frozen=True)
class EvalOptions:
    """How queries and gallery are chosen, and what is measured.

    Protocols: ``queries`` given -> those queries against the whole dataset; ``split`` (or
    ``per_class``) -> a stratified held-out query set, against the rest (``gallery="rest"``)
    or against the other held-out images only (``gallery="held-out"``, leave-one-out among
    images no learned stage has seen); ``split_classes`` -> whole classes held out,
    leave-one-out among them, a learned stage fitted on the other classes; none of these ->
    leave-one-out over the whole dataset.
    ``learn``: a transform chain fitted on the non-held-out images only (needs a split).
    """

    k: int = 10
    split: float | None = None
    per_class: int | None = None
    split_classes: float | None = None
    seed: int = 0
    gallery: str = "rest"
    cluster: int | None = None
    learn: Any = None  # a callable () -> unfitted TransformChain, or None
    transform: Any = None  # an already fitted TransformChain, or None
    rrf_depth: int = 100

    def protocol(self, separate_queries: int | None = None) -> Splitter:
        """The splitter these options name; ``separate_queries``: the size of a separate
        query set, which overrides the split options."""
        if separate_queries is not None:
            return SeparateQueries(separate_queries)
        if self.split_classes is not None:
            if self.split is not None or self.per_class is not None:
                raise ValueError("choose one held-out split: images (--split, --per-class) "
                                 "or classes (--split-classes)")
            return ClassDisjoint(self.split_classes, self.seed)
        if self.split is not None or self.per_class is not None:
            return HeldOut(self.split or 0.0, self.per_class, self.seed, self.gallery)
        return LeaveOneOut()


@dataclass
class ConfigResult:
    label: str
    protocol: str
    queries: int
    gallery: int
    summary: dict[str, float]
    per_class: dict[str, dict[str, float]]
    classes: list[str]
    confusion: np.ndarray
    clustering: dict[str, float] | None
    images_per_second: float
    cached: bool
    transform: str | None
    skipped_queries: int
    invalid_images: int


def evaluate_vectors(
    labelled: LabelledSet,
    vectors: ConfigurationVectors,
    options: EvalOptions,
    query_set: LabelledSet | None = None,
    query_vectors: ConfigurationVectors | None = None,
) -> ConfigResult:
    """Score one configuration's embeddings under ``options``' protocol."""
    valid = vectors.valid
    positions = np.flatnonzero(valid)
    parts = [p[positions] for p in vectors.parts]
    labels = labelled.labels[positions]
    dataset = len(labels)  # the pool's first rows; a separate query set's follow
    separate = None
    if query_vectors is not None and query_set is not None:
        q_valid = np.flatnonzero(query_vectors.valid)
        parts = [np.concatenate([p, q[q_valid]]) for p, q in zip(parts, query_vectors.parts)]
        labels = np.concatenate([labels, query_set.labels[q_valid]])
        separate = len(q_valid)
    protocol = options.protocol(separate)
    if options.learn is not None and not protocol.holds_out:
        raise ValueError("a learned transform needs held-out queries: use --split or "
                         "--queries (fitting and scoring on the same images flatters it)")
    split = protocol.split(labels)
    loo, gallery_index = split.leave_one_out, split.gallery
    query_parts, query_labels = [p[split.queries] for p in parts], labels[split.queries]
    chain = options.transform
    # refused before fitting, which (an MLP) can take minutes
    if vectors.fusion == "rrf" and (chain is not None or options.learn is not None):
        raise ValueError("learned transforms apply to concatenated ensembles, not rrf")
    if options.learn is not None:
        chain = options.learn()
        fit_chain(chain, vectors.combined([p[split.fit] for p in parts]), labels[split.fit])
    if vectors.fusion == "rrf":
        depth = min(len(gallery_index) - (1 if loo else 0), max(options.rrf_depth,
                                                               options.k * 10))
        rankings = [rank(q, p[gallery_index], depth,
                         exclude=np.arange(len(q)) if loo else None)[0]
                    for q, p in zip(query_parts, parts)]
        neighbours = reciprocal_rank_fusion(rankings, options.k, weights=vectors.weights)
        gallery_vectors = None
    else:
        queries = vectors.combined(query_parts)
        gallery_vectors = vectors.combined([p[gallery_index] for p in parts])
        if chain is not None:
            queries, gallery_vectors = chain.transform(queries), chain.transform(
                gallery_vectors)
        neighbours, _ = rank(queries, gallery_vectors, options.k,
                             exclude=np.arange(len(queries)) if loo else None)
    gallery_labels = labels[gallery_index]
    scores = retrieval_scores(neighbours, query_labels, gallery_labels, options.k,
                              leave_one_out=loo)
    classes = sorted(set(query_labels.tolist()) | set(gallery_labels.tolist()))
    confusion = retrieval_confusion(neighbours, query_labels, gallery_labels, classes,
                                    options.k)
    clustering = None
    if options.cluster is not None:
        # Cluster the images no learned stage saw: the held-out ones under a split.
        if chain is None:  # nothing learned: every image of the dataset is fair game
            data = vectors.combined([p[:dataset] for p in parts])
            truth = labels[:dataset]
        elif loo:
            assert gallery_vectors is not None  # rank fusion is refused with a transform
            data, truth = gallery_vectors, gallery_labels
        else:
            data, truth = queries, query_labels
        found = kmeans(data, options.cluster, seed=options.seed)
        result = cluster_scores(truth, found.labels)
        clustering = {"ACC": result.accuracy, "NMI": result.nmi, "ARI": result.ari,
                      "purity": result.purity, "k": float(options.cluster),
                      "images": float(len(truth))}
    return ConfigResult(
        label=vectors.label + (f" + {chain.description}" if chain is not None else ""),
        protocol=protocol.description, queries=scores.queries, gallery=len(gallery_index),
        summary=scores.summary(), per_class=scores.per_class(), classes=classes,
        confusion=confusion, clustering=clustering,
        images_per_second=vectors.images_per_second, cached=vectors.cached,
        transform=chain.description if chain is not None else None,
        skipped_queries=scores.skipped, invalid_images=int((~valid).sum()),
    )
