"""Evaluation jobs: labelled image sets -> cached embeddings -> configurations -> metrics.

The pure metrics live in :mod:`lookalike.evaluate`; this module does the I/O around them:
reading a labelled set (a folder of class sub-folders, or a ``path,label`` CSV), embedding
it once per (image set, model, preprocessing) into an on-disk cache so that comparing five
configurations embeds each image once per model, combining models into ensembles, fitting
learned transforms on a training split, and writing the PNG figures.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .decode import DRAFT_SLACK
from .discover import discover, is_remote
from .embed import load_backbone
from .embed.base import Backbone, cache_dir
from .embed.ensemble import concatenate, parse_ensemble
from .pipeline import Progress, embed_batches, prepare_file

if TYPE_CHECKING:
    from .collection import Collection
    from .embed.transform import TransformChain


# -- labelled sets --------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledSet:
    """Images with class labels: ``root / paths[i]`` has label ``labels[i]``."""

    root: Path
    paths: list[str]
    labels: np.ndarray  # str [n]

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, positions: np.ndarray) -> LabelledSet:
        positions = np.asarray(positions, dtype=np.int64)
        return LabelledSet(self.root, [self.paths[p] for p in positions], self.labels[positions])

    def only_classes(self, classes: Sequence[str]) -> LabelledSet:
        wanted = set(classes)
        missing = wanted - set(self.labels.tolist())
        if missing:
            raise ValueError(f"no images of class {', '.join(sorted(missing))}")
        return self.subset(np.flatnonzero([label in wanted for label in self.labels]))


def load_labelled(source: str | os.PathLike[str]) -> LabelledSet:
    """A folder whose sub-folders are classes (``<class>/.../<file>``), or a CSV with
    ``path`` and ``label`` columns (paths relative to the CSV's folder, or to the folder
    named by a ``root`` column-less convention: see below).

    CSV paths are tried relative to the CSV's folder, then its parent's sibling data folder
    named like the CSV (``manifests/flowers17.csv`` -> ``../flowers17/``), so the shared
    manifests work as they are.
    """
    source = Path(source).expanduser().absolute()
    if source.is_dir():
        return _from_folder(source)
    if source.is_file():
        return _from_csv(source)
    raise ValueError(f"{source} is neither a folder of class folders nor a CSV file")


def _from_folder(root: Path) -> LabelledSet:
    paths, labels = [], []
    for candidate in discover(root):
        if candidate.reason is not None:
            continue
        relative = Path(candidate.path).as_posix()
        parts = Path(relative).parts
        if len(parts) < 2:
            continue  # a file at the top level has no class
        paths.append(relative)
        labels.append(parts[0])
    if not paths:
        raise ValueError(f"{root} holds no images inside class sub-folders (<class>/<file>)")
    order = np.argsort(paths, kind="stable")
    return LabelledSet(root, [paths[i] for i in order], np.asarray(labels, dtype=str)[order])


def _from_csv(path: Path) -> LabelledSet:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a CSV with 'path' and 'label' columns")
    candidates = [path.parent, path.parent.parent / path.stem]
    root = next((c for c in candidates if (c / rows[0]["path"]).exists()), None)
    if root is None:
        raise ValueError(f"{path}: cannot find {rows[0]['path']!r} relative to "
                         f"{' or '.join(str(c) for c in candidates)}")
    return LabelledSet(root, [r["path"] for r in rows], np.asarray([r["label"] for r in rows],
                                                                    dtype=str))


# -- models and the embedding cache ----------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """One backbone with its preprocessing options (``--preprocess``, crop, TTA)."""

    spec: str
    preprocess: dict[str, Any] | None = None
    border_crop: bool = False
    flip: bool = False

    def load(self) -> Backbone:
        options = {"preprocess": self.preprocess} if self.preprocess else {}
        return load_backbone(self.spec, border_crop=self.border_crop, flip=self.flip,
                             **options)

    @property
    def short(self) -> str:
        """A readable name: ``mobilenetv2-int8`` for ``onnx:.../mobilenetv2-int8/model.onnx``."""
        name = self.spec
        if name.startswith("onnx:"):
            path = Path(name[5:])
            name = path.parent.name if path.stem == "model" else path.stem
        suffix = ("+crop" if self.border_crop else "") + ("+flip" if self.flip else "")
        return f"{name}{'[' + suffix[1:] + ']' if suffix else ''}"


@dataclass
class Embedded:
    """Embeddings of a labelled set by one model; ``seconds``/``images`` describe the run
    that made them (cached rows cost nothing now, so the speed is from when they were made)."""

    vectors: np.ndarray  # float32 [n, dim], L2-normalised, in the set's order
    valid: np.ndarray  # bool [n]: False where the image could not be decoded
    images_per_second: float
    cached: bool


def default_cache() -> Path:
    return cache_dir() / "eval-cache"


def embed_set(
    labelled: LabelledSet,
    model: ModelSpec,
    cache: Path | None = None,
    *,
    progress: Progress | None = None,
) -> Embedded:
    """Embeddings of every image of ``labelled`` with ``model``, from the cache where the
    file (path, size, mtime) is unchanged; only the missing ones are embedded and added."""
    backbone = model.load()
    identity = json.dumps(backbone.identity(), sort_keys=True)
    cache = Path(cache) if cache is not None else default_cache()
    slug = re.sub(r"[^a-z0-9]+", "-", f"{labelled.root.name}-{model.short}".lower()).strip("-")
    # the decoder's settings shape the pixels the model sees, so they key the cache too
    digest = hashlib.sha1(f"{labelled.root}\n{identity}\ndraft {DRAFT_SLACK}".encode()
                          ).hexdigest()[:12]
    file = cache / f"{slug[-60:]}-{digest}.npz"
    stamps = [_stamp(labelled.root / p) for p in labelled.paths]
    known: dict[str, tuple[str, np.ndarray]] = {}
    speed = 0.0
    if file.exists():
        with np.load(file, allow_pickle=False) as saved:
            speed = float(saved["images_per_second"])
            for path, stamp, vector in zip(saved["paths"], saved["stamps"], saved["vectors"]):
                known[str(path)] = (str(stamp), vector)
    todo = [i for i, (p, s) in enumerate(zip(labelled.paths, stamps))
            if p not in known or known[p][0] != s]
    if todo:
        fresh, failed, seconds = _embed_files(backbone, labelled.root,
                                              [labelled.paths[i] for i in todo], progress)
        for i, vector in zip(todo, fresh):
            known[labelled.paths[i]] = (stamps[i], vector)
        for i in failed:
            known[labelled.paths[todo[i]]] = (stamps[todo[i]], np.full(backbone.dim, np.nan,
                                                                      dtype=np.float32))
        speed = len(todo) / seconds if seconds else 0.0
        _save_cache(file, known, speed, identity)
    vectors = np.stack([known[p][1] for p in labelled.paths]).astype(np.float32)
    valid = ~np.isnan(vectors).any(axis=1)
    vectors[~valid] = 0.0
    return Embedded(vectors, valid, speed, cached=not todo)


def _stamp(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _embed_files(
    backbone: Backbone, root: Path, paths: list[str], progress: Progress | None,
) -> tuple[np.ndarray, list[int], float]:
    """``(vectors, failed positions, seconds)``: decoded and embedded by the indexing loop
    (:func:`~lookalike.pipeline.embed_batches`: ``backbone.concurrency`` batches at once,
    since CPU ONNX sessions are single-threaded). Failed images get a zero row here (the
    caller marks them)."""
    started = time.perf_counter()
    out = np.zeros((len(paths), backbone.dim), dtype=np.float32)
    failed: list[int] = []

    def prepare(position: int) -> tuple[int, np.ndarray]:
        return position, prepare_file(root / paths[position], position, backbone)[1]

    def embed(batch: list[tuple[int, np.ndarray]]) -> np.ndarray:
        return backbone.embed(np.stack([pixels for _, pixels in batch]))

    for failures, batch, vectors in embed_batches(
            range(len(paths)), prepare, embed, batch_size=backbone.batch_size,
            concurrency=backbone.concurrency, progress=progress):
        failed.extend(position for position, _ in failures)
        if vectors is not None:
            out[[position for position, _ in batch]] = vectors
    return out, failed, time.perf_counter() - started


def _save_cache(file: Path, known: dict[str, tuple[str, np.ndarray]], speed: float,
                identity: str) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    paths = sorted(known)
    temporary = file.with_suffix(".tmp.npz")
    np.savez(temporary, paths=np.asarray(paths, dtype=str),
             stamps=np.asarray([known[p][0] for p in paths], dtype=str),
             vectors=np.stack([known[p][1] for p in paths]).astype(np.float32),
             images_per_second=np.float64(speed), identity=np.asarray(identity))
    os.replace(temporary, file)


# -- configurations: single models and ensembles ----------------------------------------------


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
        options = preprocess.get(spec, preprocess.get("*"))
        if options is not None and not spec.startswith(("onnx:",)):
            options = None  # preprocessing settings only apply to ONNX models
        members.append((ModelSpec(spec, options, border_crop, flip), weight))
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
        embedded = embed_set(labelled, model, cache, progress=progress)
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
    record = collection.model
    if record is None:
        raise ValueError("the collection has no embeddings yet: run lookalike index first")
    file_ids, stored = collection.vectors(raw=raw, copy=False)  # only held rows are read
    row_of = {path: row for row, path in enumerate(collection.paths(file_ids))}
    vectors = np.zeros((len(labelled), stored.shape[1]), dtype=np.float32)
    held: dict[int, int] = {}  # position in the set -> row of ``stored``
    # a labelled set is local: a collection on object storage holds none of it
    for position, relative in enumerate([] if is_remote(collection.root) else labelled.paths):
        try:
            inside = (labelled.root / relative).resolve().relative_to(collection.root)
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
        fresh, failed, seconds = _embed_files(
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


# -- running an evaluation -------------------------------------------------------------------


@dataclass(frozen=True)
class EvalOptions:
    """How queries and gallery are chosen, and what is measured.

    Protocols: ``queries`` given -> those queries against the whole dataset; ``split`` (or
    ``per_class``) -> a stratified held-out query set, against the rest (``gallery="rest"``)
    or against the other held-out images only (``gallery="held-out"``, leave-one-out among
    images no learned stage has seen); neither -> leave-one-out over the whole dataset.
    ``learn``: a transform chain fitted on the non-held-out images only (needs a split).
    """

    k: int = 10
    split: float | None = None
    per_class: int | None = None
    seed: int = 0
    gallery: str = "rest"
    cluster: int | None = None
    learn: Any = None  # a callable () -> unfitted TransformChain, or None
    transform: Any = None  # an already fitted TransformChain, or None
    rrf_depth: int = 100


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
    from .analyse.clusters import evaluate as cluster_scores
    from .analyse.clusters import kmeans
    from .evaluate import (
        rank,
        reciprocal_rank_fusion,
        retrieval_confusion,
        retrieval_scores,
        stratified_split,
    )

    valid = vectors.valid
    labels = labelled.labels
    positions = np.flatnonzero(valid)
    parts = [p[positions] for p in vectors.parts]
    labels = labels[positions]
    if query_vectors is not None and query_set is not None:
        q_valid = np.flatnonzero(query_vectors.valid)
        query_parts = [p[q_valid] for p in query_vectors.parts]
        query_labels = query_set.labels[q_valid]
        gallery_index = np.arange(len(labels))
        train_index = gallery_index
        loo = False
        protocol = f"{len(query_labels)} separate queries vs the dataset"
    elif options.split is not None or options.per_class is not None:
        rest, held = stratified_split(labels, options.split or 0.0, options.seed,
                                      per_class=options.per_class)
        amount = (f"{options.per_class}/class" if options.per_class is not None
                  else f"{options.split:g}")
        train_index = rest
        query_parts = [p[held] for p in parts]
        query_labels = labels[held]
        if options.gallery == "held-out":
            gallery_index, loo = held, True
            protocol = f"held-out {amount} (seed {options.seed}), leave-one-out among them"
        else:
            gallery_index, loo = rest, False
            protocol = f"held-out {amount} (seed {options.seed}) vs the rest"
    else:
        if options.learn is not None:
            raise ValueError("a learned transform needs held-out queries: use --split or "
                             "--queries (fitting and scoring on the same images flatters it)")
        train_index = gallery_index = np.arange(len(labels))
        query_parts, query_labels, loo = parts, labels, True
        protocol = "leave-one-out over all images"
    chain = options.transform
    # refused before fitting, which (an MLP) can take minutes
    if vectors.fusion == "rrf" and (chain is not None or options.learn is not None):
        raise ValueError("learned transforms apply to concatenated ensembles, not rrf")
    if options.learn is not None:
        chain = options.learn()
        from .embed.transform import fit_chain

        combined_train = vectors.combined([p[train_index] for p in parts])
        fit_chain(chain, combined_train, labels[train_index])
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
        if chain is None:  # nothing learned: every image is fair game
            data, truth = vectors.combined(parts), labels
        elif loo:
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
        protocol=protocol, queries=scores.queries, gallery=len(gallery_index),
        summary=scores.summary(), per_class=scores.per_class(), classes=classes,
        confusion=confusion, clustering=clustering,
        images_per_second=vectors.images_per_second, cached=vectors.cached,
        transform=chain.description if chain is not None else None,
        skipped_queries=scores.skipped, invalid_images=int((~valid).sum()),
    )


# -- figures ----------------------------------------------------------------------------------


def plot_summary(results: Sequence[ConfigResult], path: Path) -> Path:
    """A grouped bar chart: every retrieval metric for every configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(results[0].summary)
    width = 0.8 / len(results)
    figure, axes = plt.subplots(figsize=(max(6, 1.6 * len(metrics) + len(results)), 4.5))
    for i, result in enumerate(results):
        offsets = np.arange(len(metrics)) + (i - (len(results) - 1) / 2) * width
        bars = axes.bar(offsets, [result.summary[m] for m in metrics], width,
                        label=result.label)
        axes.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
    axes.set_xticks(np.arange(len(metrics)), metrics)
    axes.set_ylim(0, 1.08)
    axes.set_title(results[0].protocol, fontsize=9)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_confusion(result: ConfigResult, path: Path) -> Path:
    """Heat map of the class-to-class retrieval confusion (rows: query class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.classes)
    size = max(4.0, 0.45 * n + 2)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(result.confusion, cmap="viridis", vmin=0, vmax=1)
    axes.set_xticks(range(n), result.classes, rotation=90, fontsize=7)
    axes.set_yticks(range(n), result.classes, fontsize=7)
    axes.set_xlabel("class of the retrieved image")
    axes.set_ylabel("query class")
    axes.set_title(f"{result.label}: share of top-k results", fontsize=9)
    if n <= 20:
        for row in range(n):
            for col in range(n):
                value = result.confusion[row, col]
                if value >= 0.005:
                    axes.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=6,
                              color="black" if value > 0.6 else "white")
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:80] or "config"


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
    a ``collection``, score it (its stored embeddings and learned transform) first."""
    from .evaluate import DEFINITIONS

    labelled = load_labelled(dataset)
    query_set = load_labelled(queries) if queries is not None else None
    if classes:
        labelled = labelled.only_classes(classes)
        if query_set is not None:
            query_set = query_set.only_classes(classes)
    results = []
    if collection is not None:
        def collection_step(done: int, total: int) -> None:
            if progress:
                progress("reading the collection", done, total)

        vectors = collection_vectors(collection, labelled, progress=collection_step)
        query_vectors = (collection_vectors(collection, query_set, progress=collection_step)
                         if query_set is not None else None)
        results.append(evaluate_vectors(labelled, vectors, options, query_set, query_vectors))
    for configuration in configurations:
        def step(done: int, total: int, name: str = configuration.label) -> None:
            if progress:
                progress(f"embedding {name}", done, total)

        vectors = embed_configuration(labelled, configuration, cache, step)
        query_vectors = (embed_configuration(query_set, configuration, cache, step)
                         if query_set is not None else None)
        results.append(evaluate_vectors(labelled, vectors, options, query_set, query_vectors))
    run = EvalRun(str(dataset), len(labelled), len(set(labelled.labels.tolist())), options.k,
                  DEFINITIONS.replace("k:", f"k (k={options.k}):", 1), results)
    if plots is not None:
        run.figures.append(str(plot_summary(results, Path(plots) / "metrics.png")))
        for result in results:
            target = Path(plots) / f"confusion-{slug(result.label)}.png"
            run.figures.append(str(plot_confusion(result, target)))
    return run


# -- learn ------------------------------------------------------------------------------------


def fit_collection_pca(
    collection: Collection, *, dim: int | None = None, whiten: float = 0.0
) -> TransformChain:
    """PCA (``dim``, ``whiten``) fitted on the collection's own embeddings, no labels
    needed, and set on the collection."""
    from .embed.transform import chain_for

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
) -> dict[str, Any]:
    """Fit ``method`` on the labelled embeddings (on 1 - ``split`` of each class when
    ``split`` is given, and then score raw vs learned on the held-out rest, both against
    the rest and leave-one-out among the held-out images) and save the chain to ``out``.

    With a ``collection``, the embeddings are the collection's own (its model; stored
    vectors where it holds the images) and the fitted chain is set on it, so that its
    index, analyses and every later query use the learned space."""
    from .embed.transform import chain_for, fit_chain
    from .evaluate import stratified_split

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
    held_out: list[dict[str, Any]] = []
    protocol = None
    if split is not None:
        for gallery in ("rest", "held-out"):
            options = EvalOptions(k=k, split=split, seed=seed, gallery=gallery)
            raw = evaluate_vectors(labelled, vectors, options)
            learned = evaluate_vectors(labelled, vectors,
                                       EvalOptions(k=k, split=split, seed=seed,
                                                   gallery=gallery, transform=chain))
            protocol = f"split {split:g}, seed {seed}"
            for result in (raw, learned):
                held_out.append({"label": result.label, "gallery": gallery,
                                 "protocol": result.protocol, "summary": result.summary})
    return {"transform": chain.description, "fitted_on": int(len(fit_rows)),
            "seconds": seconds, "saved": ", ".join(saved), "protocol": protocol,
            "held_out": held_out, "output_dim": int(chain.transform(combined[:1]).shape[1])}


# -- duplicates -------------------------------------------------------------------------------


@dataclass
class DuplicateEval:
    images: int
    model: str
    verified: bool
    overall: dict[str, float]
    by_edit: dict[str, dict[str, float]]
    groups_found: int
    seconds: float


def evaluate_duplicates(
    groups_csv: str | os.PathLike[str],
    configuration: Configuration,
    *,
    cache: Path | None = None,
    verify: bool = True,
) -> DuplicateEval:
    """Pairwise precision / recall / F1 of ``lookalike duplicates`` against a groups CSV
    (``file,group[,edit]``; group -1 = a duplicate of nothing), overall and per edit type.

    The images are indexed into a cache collection (one per folder and model) with the
    configuration's first model, and found by the same code as ``lookalike duplicates``."""
    from .analyse.duplicates import pair_scores, pair_scores_by_tag
    from .collection import Collection

    groups_csv = Path(groups_csv).expanduser().absolute()
    with groups_csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"file", "group"} <= set(rows[0]):
        raise ValueError(f"{groups_csv}: expected a CSV with 'file' and 'group' columns")
    folder = next((f for f in (groups_csv.parent / "images", groups_csv.parent)
                   if (f / rows[0]["file"]).exists()), None)
    if folder is None:
        raise ValueError(f"{groups_csv}: cannot find {rows[0]['file']!r} beside it")
    model, _ = configuration.members[0]
    if model.border_crop or model.flip:
        raise ValueError("--duplicates uses the collection pipeline: no --crop-borders/--flip")
    started = time.perf_counter()
    base = Path(cache) if cache is not None else default_cache()
    db = base / "collections" / slug(f"{folder.parent.name}-{folder.name}-{model.short}")
    options = {"preprocess": model.preprocess} if model.preprocess else {}
    collection, _ = Collection.index_folder(folder, db, model=model.spec, rebuild=False,
                                            **options)
    try:
        report = collection.duplicates(verify=verify)
    finally:
        collection.close()
    position = {path: i for i, path in enumerate(report.paths)}
    truth = np.full(len(report.paths), -1, dtype=np.int64)
    edits = [""] * len(report.paths)
    for row in rows:
        where = position.get(row["file"])
        if where is not None:
            truth[where] = int(row["group"])
            edits[where] = row.get("edit") or row.get("kind") or ""
    groups = report.groups()

    def as_dict(scores: Any) -> dict[str, float]:
        return {"precision": scores.precision, "recall": scores.recall, "f1": scores.f1,
                "true_pairs": scores.true_positives + scores.false_negatives}

    by_edit = {}
    if any(edits):
        by_edit = {tag: as_dict(s) for tag, s in pair_scores_by_tag(groups, truth, edits).items()
                   if tag}
    return DuplicateEval(len(report.paths), model.short, verify,
                         as_dict(pair_scores(groups, truth)), by_edit, len(groups),
                         time.perf_counter() - started)


