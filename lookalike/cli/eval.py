"""Measuring against labels and metric learning: ``eval``, ``learn``."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .common import (
    JsonOption,
    console,
    friendly_errors,
    preprocess_options,
    print_json,
    to_json,
)

ModelsOption = Annotated[list[str] | None, typer.Option(
    "--model", help="A configuration to score (repeatable): a model spec, an ensemble "
    "a+b or a:0.6+b:0.4 (weighted concatenation of L2-normalised embeddings). Default: "
    "auto, the model a new collection gets (see lookalike models); with --db, only the "
    "collection.")]
PreprocessOption = Annotated[list[str] | None, typer.Option(
    "--preprocess", help="ONNX preprocessing JSON for every model, or SPEC=JSON for one "
    "model (repeatable).")]
CacheOption = Annotated[Path | None, typer.Option(
    help="Embedding cache folder (default: $LOOKALIKE_HOME/eval-cache).")]


def _configurations(models: list[str] | None, preprocess: list[str] | None, crop_borders: bool,
                    flip: bool, fusion: str) -> list[Any]:
    from ..eval import parse_configuration

    options = preprocess_options(preprocess)
    return [parse_configuration(_resolve_auto(text), options, border_crop=crop_borders,
                                flip=flip, fusion=fusion) for text in (models or ["auto"])]


def _resolve_auto(text: str) -> str:
    """``auto`` (alone or as an ensemble member) as the model it stands for now, so that
    results and cached embeddings are labelled with the real model."""
    if not re.search(r"(^|\+)\s*auto\s*(:|\+|$)", text):
        return text
    from ..embed import resolve_auto

    return re.sub(r"(^|\+)(\s*)auto(?=\s*(:|\+|$))", rf"\g<1>\g<2>{resolve_auto()}", text)


@friendly_errors
def eval_command(
    dataset: Annotated[str, typer.Argument(
        help="Labelled images: a folder of class sub-folders, or a CSV of path,label.")],
    model: ModelsOption = None,
    db: Annotated[Path | None, typer.Option(
        "--db", help="Also score this collection as it searches: its stored embeddings and "
        "learned transform (images it does not hold are embedded with its model).")] = None,
    queries: Annotated[str | None, typer.Option(
        help="A separate labelled query set (folder or CSV); default: leave-one-out.")] = None,
    split: Annotated[float | None, typer.Option(
        help="Hold out this fraction of each class as queries (reproducible with --seed).")]
    = None,
    per_class: Annotated[int | None, typer.Option(
        "--per-class", help="Hold out this many queries per class instead.")] = None,
    split_classes: Annotated[float | None, typer.Option(
        "--split-classes", help="Hold out this fraction of the classes instead (whole "
        "classes, in name order; --seed S shifts the block): how a learned transform does "
        "on classes it never saw, as in a collection the labels do not cover.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split and k-means.")] = 0,
    gallery: Annotated[str, typer.Option(
        help="With a split, search the rest (rest) or the other held-out images (held-out).")]
    = "rest",
    classes: Annotated[str | None, typer.Option(
        help="Only these classes, comma-separated (e.g. bedroom,kitchen,office).")] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Results per query.")] = 10,
    cluster: Annotated[int | None, typer.Option(
        help="Also k-means into this many clusters: ACC, NMI, ARI, purity.")] = None,
    learn: Annotated[str | None, typer.Option(
        help="Fit rlda, lda, kissme, linear, mlp or pca on the non-held-out images first; "
        "with --split, also scored with that fraction of the classes held out.")] = None,
    dim: Annotated[int | None, typer.Option(help="PCA / learned output dimensions.")] = None,
    whiten: Annotated[float, typer.Option(
        help="With --dim alone: PCA whitening power (0 none, 1 full).")] = 0.0,
    transform: Annotated[Path | None, typer.Option(
        help="Apply a transform saved by lookalike learn.")] = None,
    preprocess: PreprocessOption = None,
    crop_borders: Annotated[bool, typer.Option(
        "--crop-borders", help="Remove uniform margins before embedding.")] = False,
    flip: Annotated[bool, typer.Option(
        "--flip", help="Test-time augmentation: average with the mirror image.")] = False,
    fusion: Annotated[str, typer.Option(
        help="Ensembles: concat (weighted concatenation) or rrf (reciprocal-rank fusion).")]
    = "concat",
    duplicates_csv: Annotated[Path | None, typer.Option(
        "--duplicates", help="groups.csv (file,group[,edit]): score near-duplicate finding "
        "on the images beside it.")] = None,
    cache: CacheOption = None,
    plots: Annotated[Path | None, typer.Option(
        help="Write metrics.png and one confusion heat map per configuration here.")] = None,
    show_classes: Annotated[bool, typer.Option(
        "--classes-table", help="Print the per-class table.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Measure retrieval (mAP@k, P@k, R@k, top-1/top-k accuracy) and clustering quality
    of one or more model configurations against class labels."""
    from ..collection import Collection
    from ..embed.transform import TransformChain, chain_for
    from ..eval import EvalOptions, run_eval
    from .progress import stage_progress

    if gallery not in ("rest", "held-out"):
        raise ValueError("--gallery must be rest or held-out")
    learner = None
    if learn is not None or (dim is not None and transform is None):
        learner = functools.partial(chain_for, learn, dim=dim, whiten=whiten)
        learner()  # fail early on a bad method
    options = EvalOptions(k=k, split=split, per_class=per_class, split_classes=split_classes,
                          seed=seed, gallery=gallery, cluster=cluster, learn=learner,
                          transform=TransformChain.load(transform) if transform else None)
    collection = Collection.open(db) if db is not None else None
    configurations = ([] if collection is not None and not model else
                      _configurations(model, preprocess, crop_borders, flip, fusion))
    # with --duplicates, a set with no classes to retrieve (a flat folder, or one class)
    # gets no retrieval table: it would only score "every image is relevant to every query"
    skipped = (_no_retrieval_reason(dataset, queries, classes, collection)
               if duplicates_csv is not None else None)
    bar, update = stage_progress()
    with bar:
        run = None
        if skipped is None:
            run = run_eval(dataset, configurations, options, queries=queries, cache=cache,
                           plots=plots,
                           classes=[c.strip() for c in classes.split(",")] if classes
                           else None, progress=update, collection=collection)
        dups = []
        if duplicates_csv is not None:
            from ..eval import evaluate_duplicates

            # every --model configuration, one row each (as the retrieval tables)
            dups = [evaluate_duplicates(duplicates_csv, configuration, cache=cache)
                    for configuration in _configurations(model, preprocess, crop_borders,
                                                         flip, fusion)]
    if as_json:
        import numpy as np

        payload: dict[str, Any] = (to_json(run) if run is not None else
                                   {"dataset": str(dataset), "results": [],
                                    "retrieval_skipped": skipped})
        for entry in payload["results"]:
            entry["confusion"] = np.asarray(entry["confusion"]).round(4).tolist()
        if dups:
            payload["duplicates"] = [to_json(dup) for dup in dups]
        print_json(payload)
        return
    if run is not None:
        _print_eval(run, show_classes)
    else:
        console.print(f"[dim]retrieval not scored: {skipped}[/]", highlight=False)
    if dups:
        _print_duplicates_eval(dups)


def _no_retrieval_reason(dataset: str, queries: str | None, classes: str | None,
                         collection: Any) -> str | None:
    """Why ``dataset`` has nothing to retrieve (no class sub-folders, or one class), or
    None when it has classes (or a query set / collection was asked for explicitly)."""
    if queries is not None or collection is not None:
        return None
    from ..eval.datasets import load_labelled

    try:
        labelled = load_labelled(dataset)
    except ValueError:
        return f"{dataset} has no class sub-folders (near duplicates only)"
    if classes:
        labelled = labelled.only_classes([c.strip() for c in classes.split(",")])
    count = len(set(labelled.labels.tolist()))
    if count <= 1:
        return f"{dataset} has {count} class (near duplicates only)"
    return None


def _print_eval(run: Any, show_classes: bool) -> None:
    """One table per protocol (an image split and, beside it, a class split)."""
    for protocol in dict.fromkeys(result.protocol for result in run.results):
        _print_protocol(run, [r for r in run.results if r.protocol == protocol])
    console.print(f"[dim]{run.definitions}[/]", highlight=False)
    if show_classes:
        metrics = list(run.results[0].summary)
        for result in run.results:
            per = Table(title=f"per class: {result.label}; {result.protocol}",
                        title_justify="left")
            per.add_column("class")
            for column in ["queries", *metrics]:
                per.add_column(column, justify="right")
            for label, values in result.per_class.items():
                per.add_row(label, f"{values['queries']:.0f}",
                            *[f"{values[m]:.3f}" for m in metrics])
            console.print(per)
    for figure in run.figures:
        console.print(f"figure: {figure}")


def _print_protocol(run: Any, results: list[Any]) -> None:
    first = results[0]
    table = Table(title=f"{run.dataset}: {run.images} images, {run.classes} classes; "
                  f"{first.protocol}", title_justify="left")
    metrics = list(first.summary)
    clustered = first.clustering is not None
    for column in ["configuration", *metrics,
                   *(["ACC", "NMI", "ARI", "purity"] if clustered else []), "queries",
                   "images/s"]:
        table.add_column(column, justify="left" if column == "configuration" else "right",
                         overflow="fold")
    for result in results:
        cells = [f"{result.summary[m]:.3f}" for m in metrics]
        if clustered:
            cells += [f"{result.clustering[m]:.3f}" for m in ("ACC", "NMI", "ARI", "purity")]
        speed = f"{result.images_per_second:,.1f}" + (" (cached)" if result.cached else "")
        table.add_row(result.label, *cells, str(result.queries), speed)
    console.print(table)


def _print_duplicates_eval(dups: list[Any]) -> None:
    """One row per configuration (pairs over all images), then, per configuration, the
    pairs touching each edit type, and the look-alike pairs it wrongly joined."""
    first = dups[0]
    table = Table(title=f"near duplicates: {first.images} images, "
                  f"verify={first.verified}; pairs of files in one group",
                  title_justify="left")
    for column in ("configuration", "threshold", "precision", "recall", "F1", "true pairs",
                   "groups found", "look-alikes joined", "seconds"):
        table.add_column(column, justify="left" if column == "configuration" else "right",
                         overflow="fold")
    for dup in dups:
        scores = dup.overall
        joined = ", ".join(f"{n} ({tag})" for tag, n in dup.wrongly_joined.items()) or "-"
        table.add_row(dup.configuration or dup.model, f"{dup.threshold:.3f}",
                      f"{scores['precision']:.3f}", f"{scores['recall']:.3f}",
                      f"{scores['f1']:.3f}", str(scores["true_pairs"]), str(dup.groups_found),
                      joined, f"{dup.seconds:.1f}")
    console.print(table)
    edits = list(dict.fromkeys(tag for dup in dups for tag in dup.by_edit))
    if edits:
        by_edit = Table(title="near duplicates by edit: pairs touching a copy of that kind "
                        "(precision / recall)", title_justify="left")
        by_edit.add_column("edit")
        by_edit.add_column("true pairs", justify="right")
        for dup in dups:
            by_edit.add_column(dup.configuration or dup.model, justify="right",
                               overflow="fold")
        for tag in edits:
            pairs = next(d.by_edit[tag]["true_pairs"] for d in dups if tag in d.by_edit)
            by_edit.add_row(tag, str(pairs), *[
                f"{d.by_edit[tag]['precision']:.3f} / {d.by_edit[tag]['recall']:.3f}"
                if tag in d.by_edit else "-" for d in dups])
        console.print(by_edit)
    for dup in dups:
        for tag, count in dup.wrongly_joined.items():
            console.print(f"{dup.configuration or dup.model}: look-alike pairs wrongly "
                          f"joined: {count} ({tag}s: look-alikes, not copies; a pair "
                          "joining one to a file of another group is a false positive)",
                          highlight=False)


@friendly_errors
def learn(
    dataset: Annotated[str | None, typer.Argument(
        help="Labelled images: a folder of class sub-folders, or a CSV of path,label. "
             "Not needed for --method pca with --db (fitted on the collection).")] = None,
    method: Annotated[str, typer.Option(
        help="rlda (regularised LDA blended with the raw space: holds up on classes the "
        "labels lack), lda, kissme, linear, mlp or pca.")] = "rlda",
    model: Annotated[str, typer.Option(
        help="Model spec or ensemble a+b (see eval); auto: the model a new collection gets. "
             "With --db, the collection's model.")] = "auto",
    preprocess: PreprocessOption = None,
    crop_borders: Annotated[bool, typer.Option(
        "--crop-borders", help="Remove uniform margins before embedding (as index does).")]
    = False,
    flip: Annotated[bool, typer.Option(
        "--flip", help="Test-time augmentation: average with the mirror image.")] = False,
    classes: Annotated[str | None, typer.Option(
        help="Only these classes, comma-separated.")] = None,
    dim: Annotated[int | None, typer.Option(help="Output dimensions (PCA for pca).")] = None,
    whiten: Annotated[float, typer.Option(help="pca only: whitening power.")] = 0.0,
    split: Annotated[float | None, typer.Option(
        help="Fit on 1 - SPLIT of each class; report raw vs learned on the held-out rest "
        "(and, unless --split-classes says otherwise, on SPLIT of the classes held out).")]
    = None,
    split_classes: Annotated[float | None, typer.Option(
        "--split-classes", help="Also fit on 1 - F of the classes and report raw vs learned "
        "on the other classes (default: --split's fraction; 0.5 with --db).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the held-out splits.")] = 0,
    k: Annotated[int, typer.Option("-k", "--k", min=1)] = 10,
    out: Annotated[Path | None, typer.Option(
        help="Where to save the transform (PATH.npz + PATH.json). Default, without --db: "
        "a new folder DATASET-METHOD/ (refused if it holds files lookalike did not write).")]
    = None,
    db: Annotated[Path | None, typer.Option(
        "--db", help="Fit on this collection's embeddings and apply the transform to it: "
        "its index, analyses and queries then use the learned space (no re-embedding).")]
    = None,
    clear: Annotated[bool, typer.Option(
        "--clear", help="With --db: remove the collection's learned transform.")] = False,
    cache: CacheOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fit a projection on labelled embeddings (KISSME, LDA, a metric-loss head, PCA) and
    save it, or apply it to a collection (--db); with --split, print raw vs learned quality
    on the held-out images."""
    from ..collection import Collection
    from ..eval import learn_transform

    collection = Collection.open(db, writable=True) if db is not None else None
    if clear:
        if collection is None:
            raise ValueError("--clear needs --db COLLECTION")
        collection.set_transform(None)
        console.print(f"{collection.directory}: learned transform removed")
        return
    if collection is not None:
        model = collection.require_model().spec
    if dataset is None:
        if collection is None or method != "pca":
            raise ValueError("give a labelled DATASET (only --method pca with --db fits on "
                             "the collection's own images)")
        from ..eval import fit_collection_pca

        chain = fit_collection_pca(collection, dim=dim, whiten=whiten)
        console.print(f"fitted {chain.description} on the collection's "
                      f"{chain.info['fitted_on']} embeddings ({chain.info['input_dim']} -> "
                      f"{chain.info['output_dim']} dimensions); applied to "
                      f"{collection.directory}")
        return
    (configuration,) = _configurations([model], preprocess, crop_borders, flip, "concat")
    if split_classes is None and (split is not None or collection is not None):
        split_classes = split or 0.5  # what the warning below needs
    outcome = learn_transform(dataset, configuration, method, dim=dim, whiten=whiten,
                              split=split, split_classes=split_classes,
                              measure=0.5 if collection is not None else None, seed=seed, k=k,
                              classes=[c.strip() for c in classes.split(",")] if classes
                              else None, cache=cache,
                              out=_transform_target(out, dataset, method, collection),
                              collection=collection)
    if as_json:
        print_json(outcome)
        return
    console.print(f"fitted {outcome.transform} on {outcome.fitted_on} images of "
                  f"{configuration.label} in {outcome.seconds:.1f} s; saved {outcome.saved}")
    if outcome.held_out:
        table = Table(title=f"held-out images ({outcome.protocol})", title_justify="left")
        metrics = list(outcome.held_out[0].summary)
        for column in ["configuration", "gallery", *metrics]:
            table.add_column(column, justify="right")
        for row in outcome.held_out:
            table.add_row(row.label, row.gallery,
                          *[f"{row.summary[m]:.3f}" for m in metrics])
        console.print(table)
        from ..eval import DEFINITIONS

        console.print(f"[dim]{DEFINITIONS}[/]", highlight=False)
    if collection is not None:
        console.print(f"[yellow]warning:[/] {outcome.warning()}", highlight=False)


def _transform_target(out: Path | None, dataset: str, method: str,
                      collection: Any) -> Path | None:
    """Where ``learn`` saves: ``--out`` when given (never over a file that is not a saved
    transform); else, without --db, ``transform`` in a new lookalike-owned folder
    DATASET-METHOD/, so that no file of the user's is ever written over."""
    from ..ownership import NotOwnedError, OwnedFolder

    if out is not None:
        base = Path(out).with_suffix("")
        for existing in (base.with_suffix(".npz"), base.with_suffix(".json")):
            if existing.exists() and not _is_transform(base):
                raise NotOwnedError(f"{existing} exists and is not a transform lookalike "
                                    "saved: choose another --out")
        return out
    if collection is not None:
        return None
    folder = OwnedFolder.claim(Path(f"{Path(dataset).stem}-{method}"), purpose="transform")
    folder.reserve(["transform.npz", "transform.json"])
    return folder.target("transform.npz")


def _is_transform(base: Path) -> bool:
    import json

    try:
        meta = json.loads(base.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "stages" in meta
