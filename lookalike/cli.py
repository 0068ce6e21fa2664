"""The ``lookalike`` command line: one small command per verb over the Python API.

Exit codes: 0 success; 1 a clear error was printed (no collection, bad query image,
model unavailable...); 2 bad usage.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import logging
import math
import os
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from .act.grids import SheetFolder, Tile, contact_sheet, save_image
from .act.report import Gallery, Section, write_report
from .act.sort import (
    SortError,
    choose_journal,
    describe_plan,
    duplicate_assignments,
    execute_plan,
    plan_sort,
)
from .act.sort import undo as undo_journal
from .analyse.layout import map_2d
from .analyse.outliers import top_outliers
from .collection import DEFAULT_DIRNAME, Collection, GroupThreshold, SearchHit, locate
from .decode import DecodeError
from .discover import discover, is_remote
from .duplicates_job import load_calibration
from .embed import (
    AUTO_DOWNLOAD,
    ModelUnavailable,
    describe_model,
    download_progress,
    download_weights,
    list_backbones,
)
from .ownership import NotOwnedError, OwnedFolder
from .pipeline_ray import RayUnavailable
from .store import StoreError

app = typer.Typer(
    help="Explore image collections by visual similarity.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        console.print(f"lookalike {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print lookalike's version and exit.")] = False) -> None:
    pass

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Collection directory (default: FOLDER/.lookalike, found from "
                 "the query's folder or the current directory)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
# Bounds of -k: memory grows with k per query (search) and per image (neighbour graphs).
MAX_MATCHES = 100_000
MAX_NEIGHBOURS = 1_000
MAX_FILE_ID = 2**63 - 1  # SQLite's largest integer: a larger id names no image


def friendly_errors(command: F) -> F:
    """Turn expected failures into one red line and exit code 1: no traceback for users."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (StoreError, ModelUnavailable, DecodeError, SortError, RayUnavailable,
                NotOwnedError, ValueError, OSError) as error:
            errors.print(f"[bold red]error:[/] {error}", highlight=False)
            raise typer.Exit(1) from None
        except sqlite3.DatabaseError as error:  # a page of the catalogue went bad under us
            errors.print(f"[bold red]error:[/] the collection's catalogue is damaged ({error}): "
                         "run lookalike check to see what to do", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


class _WarningLine(logging.Handler):
    """The library's warnings (a damaged file repaired, an index rebuilt) as one yellow
    line each on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        errors.print(f"[yellow]warning:[/] {record.getMessage()}", highlight=False)


logging.getLogger("lookalike").addHandler(_WarningLine(logging.WARNING))
logging.getLogger("lookalike").propagate = False


def parse_size(text: str) -> int:
    """``6G``, ``512M``, ``1.5GB``, ``2000000`` -> bytes (powers of 1024)."""
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = cleaned.rstrip("KMGT"), cleaned[len(cleaned.rstrip("KMGT")):]
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise ValueError(f"not a size: {text!r} (e.g. 6G, 512M)") from None
    if value <= 0:
        raise ValueError(f"size must be positive: {text!r}")
    return int(value)


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: _to_json(item) for key, item in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(key): _to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    if isinstance(value, Path) or is_remote(value):
        return str(value)
    return value


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_to_json(value), indent=2) + "\n")


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} files/s" if speed else "", style="cyan")


class _CountOrBytes(ProgressColumn):
    """``counts`` for a task of files, ``transfer`` for a download (a task with
    ``bytes=True``), so that weights can download under the same bars."""

    def __init__(self, counts: ProgressColumn, transfer: ProgressColumn) -> None:
        super().__init__()
        self.counts, self.transfer = counts, transfer

    def render(self, task: Task) -> Any:
        return (self.transfer if task.fields.get("bytes") else self.counts).render(task)


def _bytes_progress(bar: Progress, description: str) -> Callable[[int, int | None], None]:
    """A download's ``progress(done, total)`` as a bytes task on ``bar``, added at the
    first report (nothing shows when nothing downloads)."""
    task: list[TaskID] = []

    def progress(done: int, total: int | None) -> None:
        if not task:
            task.append(bar.add_task(description, total=total, bytes=True))
        bar.update(task[0], completed=done, total=total)

    return progress


def _find_collection(db: Path | None, *hints: Path | None) -> Path:
    if db is not None:
        return locate(db)
    for hint in [*hints, Path.cwd()]:
        if hint is None:
            continue
        start = Path(hint).expanduser().absolute()
        for folder in [start, *start.parents]:
            if (folder / DEFAULT_DIRNAME / "catalogue.sqlite").is_file():
                return folder / DEFAULT_DIRNAME
    raise StoreError("no collection found here: pass --db DIR, or run lookalike index FOLDER")


@app.command()
@friendly_errors
def index(
    folder: Annotated[str, typer.Argument(
        help="Folder of images (searched recursively), or an fsspec URL such as "
             "s3://bucket/photos (then --db DIR is required).")],
    db: DbOption = None,
    model: Annotated[str, typer.Option(
        help="Backbone: auto (the collection's own model; for a new one, the best model "
             "cached here, else dinov2-small downloaded now if torch is installed and the "
             "hub answers, else the bundled mobilenetv2; LOOKALIKE_NO_DOWNLOAD=1: never "
             "download), mobilenetv2, classic, onnx:PATH, dinov2-small, clip-vit-b-32, "
             "resnet50, ... (see lookalike models)")] = "auto",
    weights: Annotated[Path | None, typer.Option(help="Local weights file for the model.")]
    = None,
    preprocess: Annotated[str | None, typer.Option(
        help='ONNX/torch preprocessing as JSON or a JSON file, e.g. {"size": 224, "resize": 224,'
             ' "mean": [0.5,0.5,0.5], "std": [0.5,0.5,0.5]}')] = None,
    output: Annotated[str | None, typer.Option(help="ONNX output tensor to use.")] = None,
    random_init: Annotated[bool, typer.Option(
        "--random-init", help="Random weights (throughput tests only).")] = False,
    crop_borders: Annotated[bool, typer.Option(
        "--crop-borders", help="Remove uniform margins (letterboxes, scanner borders) "
        "before embedding; recorded with the model.")] = False,
    flip: Annotated[bool, typer.Option(
        "--flip", help="Test-time augmentation: average each embedding with the mirror "
        "image's; recorded with the model.")] = False,
    index_kind: Annotated[str | None, typer.Option(
        "--index", help="Vector index: auto, flat, hnsw, ivfpq or annoy.")] = None,
    rebuild: Annotated[bool, typer.Option(help="Re-embed everything (e.g. new model).")]
    = False,
    workers: Annotated[int | None, typer.Option(help="Decode threads (default: cores).")]
    = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per model batch.")] = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", help="Embed on a Ray cluster: its address, auto (the running cluster, or a "
        "local one) or local; --workers is then the number of model actors.")] = None,
    max_memory: Annotated[str | None, typer.Option(
        "--max-memory", help="RAM budget, e.g. 6G (remembered): beyond it the auto index "
        "is IVF-PQ, built and searched on disk and re-ranking from the store, and a k-NN "
        "graph over a quarter of it is built in memory-mapped files.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Index FOLDER into a collection; re-running embeds only new or changed files."""
    options = {} if preprocess is None else {"preprocess": _json_argument(preprocess)}
    quiet = as_json or not console.is_terminal
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  _CountOrBytes(MofNCompleteColumn(), DownloadColumn()),
                  _CountOrBytes(RateColumn(), TransferSpeedColumn()), TimeRemainingColumn(),
                  console=errors, disable=as_json) as bar, download_progress(
                      _bytes_progress(bar, f"downloading {AUTO_DOWNLOAD}")):
        embedding = bar.add_task("embedding", total=None)
        indexing: list[TaskID] = []  # a second bar, once the vector index takes vectors

        def progress(done: int, total: int) -> None:
            bar.update(embedding, completed=done, total=total)

        def index_progress(done: int, total: int) -> None:
            if not indexing:
                indexing.append(bar.add_task("indexing", total=total))
            bar.update(indexing[0], completed=done, total=total)

        collection, report = Collection.index_folder(
            folder, db, model=model, weights=weights, output=output, pretrained=not random_init,
            border_crop=crop_borders, flip=flip, index_kind=index_kind, rebuild=rebuild,
            workers=workers, batch_size=batch_size, progress=progress,
            index_progress=index_progress, ray=ray,
            max_memory=parse_size(max_memory) if max_memory else None, **options,
        )
    if as_json:
        _print_json({**_to_json(report), "collection": str(collection.directory),
                     "skipped": report.skipped,
                     "images_per_second": report.embed.images_per_second})
        return
    changes = report.changes
    if report.new_model:
        console.print(describe_model(report.model), highlight=False, soft_wrap=True)
    console.print(
        f"[bold]{collection.directory}[/]: {changes.added} new, {changes.changed} changed, "
        f"{changes.removed} removed, {changes.unchanged} unchanged"
    )
    console.print(
        f"embedded {report.embed.embedded} images with {report.model} in "
        f"{report.embed.seconds:.1f} s ({report.embed.images_per_second:,.1f} images/s); "
        f"index: {report.index_kind}; total {report.seconds:.1f} s"
    )
    if report.skipped:
        _print_skipped(report.skipped, "skipped in this run")
    elif report.skipped_total and not quiet:
        console.print(f"{report.skipped_total} files skipped earlier (see lookalike info)")


def _json_argument(value: str) -> dict[str, Any]:
    text = Path(value).read_text() if not value.lstrip().startswith("{") else value
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--preprocess is not valid JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise ValueError("--preprocess must be a JSON object")
    return parsed


def _print_skipped(skipped: list[tuple[str, str]], title: str) -> None:
    table = Table(title=f"{len(skipped)} files {title}", title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("reason", overflow="fold")
    for path, reason in skipped:
        table.add_row(path, reason)
    console.print(table)


@app.command()
@friendly_errors
def search(
    query: Annotated[str | None, typer.Argument(
        help="Image file (in the collection or not), a folder of query images, or a "
             "catalogue id.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=MAX_MATCHES,
                                   help="Number of matches.")] = 10,
    db: DbOption = None,
    text: Annotated[str | None, typer.Option(help="Search by text (CLIP models).")] = None,
    vector: Annotated[Path | None, typer.Option(help=".npy file holding a query vector.")]
    = None,
    model: Annotated[str | None, typer.Option(help="Refuse unless the collection uses it.")]
    = None,
    grid: Annotated[Path | None, typer.Option(
        help="Write a contact sheet (query + matches) to this PNG; for a folder of queries, "
             "one sheet per query in this folder.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Find the images that look most like QUERY."""
    sources = [s for s in (query, text, vector) if s is not None]
    if len(sources) != 1:
        raise ValueError("give exactly one of: QUERY, --text or --vector")
    query_path = Path(query).expanduser() if query is not None and not query.isdigit() else None
    collection = Collection.open(_find_collection(db, query_path))
    collection.check_model(model)
    labels: list[str]
    if text is not None:
        results, labels, query_files = [collection.search_text(text, k)], [text], [None]
    elif vector is not None:
        results = [collection.search(np.load(vector).astype(np.float32).ravel(), k)]
        labels, query_files = [str(vector)], [None]
    elif query_path is None:
        if int(query) > MAX_FILE_ID:
            raise StoreError(f"no embedded image with id {query}")
        results, labels = [collection.search(int(query), k)], [f"id {query}"]
        record = collection.store.file(int(query))
        query_files = [collection.root / record.path if record else None]
    elif query_path.is_dir():
        files = [query_path / c.path for c in discover(query_path) if c.reason is None]
        if not files:
            raise ValueError(f"no images in {query_path}")
        results = collection.search_many(files, k)
        labels, query_files = [str(f) for f in files], files
    else:
        if not query_path.exists():
            raise ValueError(f"query file {query_path} does not exist")
        results, labels, query_files = [collection.search(query_path, k)], [str(query)], [
            query_path]
    if grid is not None:
        _write_grids(grid, labels, query_files, results)
    if as_json:
        _print_json([{"query": label, "results": hits} for label, hits in zip(labels, results)])
        return
    for label, hits in zip(labels, results):
        table = Table(title=f"matches for {label}", title_justify="left")
        table.add_column("rank", justify="right")
        table.add_column("score", justify="right")
        table.add_column("id", justify="right")
        table.add_column("path", overflow="fold")
        for hit in hits:
            table.add_row(str(hit.rank), f"{hit.score:.4f}", str(hit.id), hit.path)
        console.print(table)
    if grid is not None:
        console.print(f"contact sheet: {grid}")


def _write_grids(
    grid: Path, labels: list[str], query_files: list[Path | None], results: list[list[SearchHit]]
) -> None:
    folder = SheetFolder(grid) if len(results) > 1 or grid.is_dir() else None
    for position, (label, query_file, hits) in enumerate(zip(labels, query_files, results)):
        tiles = [Tile(query_file, "query", Path(label).name, highlight=True)] if query_file else []
        tiles += [Tile(hit.absolute_path, f"#{hit.rank}  {hit.score:.3f}", Path(hit.path).name)
                  for hit in hits]
        sheet = contact_sheet(tiles, columns=min(6, len(tiles)))
        if folder is None:
            save_image(sheet, grid)  # a file the user named: replaced only if lookalike's
        else:
            folder.save(sheet, f"{position:04d}-{Path(label).stem}.png")
    if folder is not None:
        folder.finish()


@app.command()
@friendly_errors
def grid(
    images: Annotated[list[Path] | None, typer.Argument(
        help="Images of the collection to explore (default: every image).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the contact sheets.")] = Path("grids"),
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=MAX_NEIGHBOURS,
                                   help="Neighbours per sheet.")] = 24,
    db: DbOption = None,
) -> None:
    """Seed 000's exploration view: one sheet per image, it and its K nearest neighbours."""
    first = images[0] if images else None
    collection = Collection.open(_find_collection(db, first))
    sheets = SheetFolder(out)  # refuses a user's folder before any work
    if images:
        results = collection.search_many(images, k)
        queries = [Path(image).expanduser().absolute() for image in images]
    else:
        file_ids, graph = collection.knn_graph(k)
        paths = {record.id: record.path for record in collection.files("ok")}
        queries = [collection.root / paths[int(i)] for i in file_ids]
        results = [
            [SearchHit(rank + 1, float(score), int(file_ids[j]), paths[int(file_ids[j])],
                       collection.root / paths[int(file_ids[j])])
             for rank, (j, score) in enumerate(zip(row, scores)) if j >= 0]
            for row, scores in zip(graph.neighbours, graph.scores)
        ]
    with Progress(TextColumn("[bold]contact sheets"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=errors) as bar:
        for query, hits in bar.track(list(zip(queries, results)), description="sheets"):
            tiles = [Tile(query, "image", query.name, highlight=True)]
            tiles += [Tile(hit.absolute_path, f"#{hit.rank}  {hit.score:.3f}",
                           Path(hit.path).name) for hit in hits]
            sheets.save(contact_sheet(tiles, columns=5), f"{query.stem}.png")
    sheets.finish()
    console.print(f"{len(queries)} contact sheets in {out}")


# -- analyses ---------------------------------------------------------------------------------
GridOption = Annotated[Path | None, typer.Option(
    "--grid", help="Write one contact sheet per group into this folder.")]


def _group_sheets(folder: Path, collection: Collection, sheets: list[tuple[str, list[int],
                  list[str]]]) -> None:
    """One sheet per (name, file ids, captions); the first member is outlined."""
    paths = {record.id: record.path for record in collection.files()}
    owned = SheetFolder(folder)
    for name, file_ids, captions in sheets:
        tiles = [Tile(collection.root / paths[i], caption, Path(paths[i]).name,
                      highlight=position == 0)
                 for position, (i, caption) in enumerate(zip(file_ids, captions))]
        owned.save(contact_sheet(tiles, columns=min(6, len(tiles))), f"{name}.png")
    owned.finish()
    console.print(f"{len(sheets)} contact sheets in {folder}")


def _stage_progress() -> tuple[Progress, Callable[[str, int, int], None]]:
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=errors)
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, update


@app.command()
@friendly_errors
def duplicates(
    db: DbOption = None,
    threshold: Annotated[float | None, typer.Option(
        min=-1.0, max=1.0,
        help="Candidate cosine (default: calibrated for the collection's model).")] = None,
    verify: Annotated[bool, typer.Option(
        help="Confirm candidates with local features + geometry (recommended).")] = True,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=MAX_NEIGHBOURS,
                                   help="Neighbours per image.")] = 16,
    grid: GridOption = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: group,kind,keeper,id,path,score")]
    = False,
    as_json: JsonOption = False,
) -> None:
    """Exact and near duplicates, grouped without chaining look-alikes, keeper suggested."""
    collection = Collection.open(_find_collection(db))
    bar, update = _stage_progress()
    with bar:
        report = collection.duplicates(threshold=threshold, verify=verify, k=k,
                                       progress=None if as_json or as_csv else update)
    groups = [("exact", g) for g in report.exact] + [("near", g) for g in report.near]
    if as_json:
        _print_json(report.to_dict())
    elif as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["group", "kind", "keeper", "id", "path", "score"])
        for number, (kind, group) in enumerate(groups, start=1):
            for member, score in zip(group.members, group.scores):
                writer.writerow([number, kind, int(member == group.keeper),
                                 int(report.file_ids[member]), report.paths[member],
                                 f"{score:.4f}"])
    else:
        table = Table(title=f"{len(report.exact)} exact and {len(report.near)} near-duplicate "
                      f"groups (candidate cosine {report.threshold:.3f}, "
                      f"{'verified' if report.verified else 'not verified'})",
                      title_justify="left")
        for column in ("group", "kind", "keep", "copies (score)"):
            table.add_column(column, overflow="fold")
        for number, (kind, group) in enumerate(groups, start=1):
            copies = [f"{report.paths[m]} ({s:.3f})" for m, s in
                      zip(group.members, group.scores) if m != group.keeper]
            table.add_row(str(number), kind, report.paths[group.keeper], "\n".join(copies))
        console.print(table)
    if grid is not None:
        _group_sheets(grid, collection, [
            (f"{number:04d}-{kind}", [int(report.file_ids[m]) for m in group.members],
             ["keep" if m == group.keeper else f"{s:.3f}" for m, s in
              zip(group.members, group.scores)])
            for number, (kind, group) in enumerate(groups, start=1)])


def _positive_cosine(value: float | None) -> float | None:
    """A group threshold must be a cosine above 0 (at most 1 is the option's ``max``): at
    0 or below every pair of neighbours would be "the same place, the same moment"."""
    if value is not None and not value > 0:
        raise typer.BadParameter(f"must be above 0 and at most 1, not {value:g}")
    return value


def _describe_group_threshold(used: GroupThreshold) -> str:
    if math.isnan(used.value):
        return "threshold: none (fewer than two images to compare)"
    if used.calibrated:
        return (f"threshold {used.value:.3f} (calibrated for {used.model} on this collection;"
                " --threshold to change)")
    return f"threshold {used.value:g} (--threshold)"


@app.command()
@friendly_errors
def groups(
    threshold: Annotated[float | None, typer.Option(
        max=1.0, callback=_positive_cosine,
        help="Cosine two images need to share a group, above 0 and at most 1 (default: "
             "the near-duplicate threshold calibrated for the collection's model).")] = None,
    db: DbOption = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=MAX_NEIGHBOURS,
                                   help="Neighbours per image.")] = 16,
    grid: GridOption = None,
    as_json: JsonOption = False,
) -> None:
    """Seed 001's "same place, same moment" groups at a similarity threshold."""
    collection = Collection.open(_find_collection(db))
    if threshold is None and not as_json and collection.model is not None \
            and load_calibration(collection) is None:
        errors.print(f"calibrating {collection.model.spec} on this collection's images "
                     "(once: the result is stored)...", highlight=False, soft_wrap=True)
    used = collection.group_threshold(threshold)
    file_ids, found = collection.groups(used.value, k=k, raw=used.calibrated)
    paths = collection.paths(file_ids)
    if as_json:
        _print_json({
            "threshold": None if math.isnan(used.value) else used.value,
            "threshold_source": "calibrated" if used.calibrated else "given",
            "model": collection.model.spec if collection.model else None,
            "groups": [{"size": g.size, "mean_similarity": g.mean_similarity,
                        "medoid": {"id": int(file_ids[g.medoid]), "path": paths[g.medoid]},
                        "members": [{"id": int(file_ids[m]), "path": paths[m]}
                                    for m in g.members]} for g in found]})
    else:
        console.print(_describe_group_threshold(used), highlight=False, soft_wrap=True)
        table = Table(title=f"{len(found)} groups at cosine >= {used.value:.3f}",
                      title_justify="left")
        for column in ("group", "size", "similarity", "medoid", "members"):
            table.add_column(column, overflow="fold")
        for number, g in enumerate(found, start=1):
            table.add_row(str(number), str(g.size), f"{g.mean_similarity:.3f}",
                          paths[g.medoid], ", ".join(paths[m] for m in g.members[1:][:8])
                          + (" ..." if g.size > 9 else ""))
        console.print(table)
    if grid is not None:
        _group_sheets(grid, collection, [
            (f"group-{number:04d}", [int(file_ids[m]) for m in g.members[:30]],
             ["medoid"] + [""] * (min(g.size, 30) - 1))
            for number, g in enumerate(found, start=1)])


@app.command()
@friendly_errors
def cluster(
    k: Annotated[str, typer.Option("-k", "--k", help="Number of clusters, or auto.")] = "auto",
    db: DbOption = None,
    seed: Annotated[int, typer.Option(help="Random seed (results are reproducible).")] = 0,
    grid: GridOption = None,
    as_json: JsonOption = False,
) -> None:
    """k-means clusters (seed 002), with sizes, medoids and a confidence per image."""
    if k != "auto" and not k.isdigit():
        raise ValueError("--k must be a whole number or auto")
    collection = Collection.open(_find_collection(db))
    file_ids, result = collection.clusters(k if k == "auto" else int(k), seed=seed)
    paths = collection.paths(file_ids)
    if as_json:
        _print_json({
            "k": result.k,
            "clusters": [{"cluster": c, "size": int(result.sizes[c]),
                          "medoid": paths[result.medoids[c]] if result.medoids[c] >= 0 else None}
                         for c in range(result.k)],
            "images": [{"id": int(i), "path": p, "cluster": int(label),
                        "confidence": round(float(conf), 4)}
                       for i, p, label, conf in zip(file_ids, paths, result.labels,
                                                    result.confidence)],
        })
    else:
        table = Table(title=f"{result.k} clusters of {len(file_ids)} images",
                      title_justify="left")
        for column in ("cluster", "size", "medoid", "low-confidence members"):
            table.add_column(column, overflow="fold")
        for c in range(result.k):
            members = np.flatnonzero(result.labels == c)
            unsure = int((result.confidence[members] < 0.02).sum())
            medoid = paths[result.medoids[c]] if result.medoids[c] >= 0 else "-"
            table.add_row(str(c), str(int(result.sizes[c])), medoid, str(unsure))
        console.print(table)
    if grid is not None:
        sheets = []
        for c in range(result.k):
            central = result.members(c)[:30]
            sheets.append((f"cluster-{c:04d}", [int(file_ids[m]) for m in central],
                           [f"{result.similarity[m]:.3f}" for m in central]))
        _group_sheets(grid, collection, sheets)


@app.command()
@friendly_errors
def outliers(
    fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Top fraction to list.")]
    = 0.01,
    db: DbOption = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=MAX_NEIGHBOURS,
                                   help="Neighbours per image.")] = 16,
    grid: Annotated[Path | None, typer.Option(help="Contact sheet of the outliers (PNG).")]
    = None,
    as_json: JsonOption = False,
) -> None:
    """Images least like their neighbours: junk and edge cases to review (seed 000)."""
    collection = Collection.open(_find_collection(db))
    file_ids, scores = collection.outliers(k=k)
    top = top_outliers(scores, fraction)
    paths = collection.paths(file_ids[top])
    if as_json:
        _print_json([{"rank": r, "id": int(file_ids[p]), "path": path,
                      "score": float(scores[p])} for r, (p, path) in
                     enumerate(zip(top, paths), start=1)])
    else:
        table = Table(title=f"{len(top)} outliers (local outlier factor; ~1 is typical)",
                      title_justify="left")
        for column in ("rank", "score", "path"):
            table.add_column(column, overflow="fold")
        for r, (p, path) in enumerate(zip(top, paths), start=1):
            table.add_row(str(r), f"{scores[p]:.3f}", path)
        console.print(table)
    if grid is not None:
        tiles = [Tile(collection.root / path, f"#{r} {scores[p]:.2f}", Path(path).name)
                 for r, (p, path) in enumerate(zip(top, paths), start=1)]
        save_image(contact_sheet(tiles, columns=6), grid)


@app.command()
@friendly_errors
def report(
    out: Annotated[Path, typer.Option(help="Folder for the report.")] = Path("report"),
    db: DbOption = None,
    k: Annotated[str, typer.Option("-k", "--k", help="Clusters: a number or auto.")] = "auto",
    threshold: Annotated[float | None, typer.Option(
        min=-1.0, max=1.0, help="Cosine for threshold groups (default: the one calibrated "
        "for the collection's model, as in lookalike groups).")] = None,
    fraction: Annotated[float, typer.Option(min=0.0, max=1.0,
                                            help="Top fraction listed as outliers.")] = 0.01,
    verify: Annotated[bool, typer.Option(help="Verify near duplicates geometrically.")]
    = True,
    map_method: Annotated[str, typer.Option("--map", help="auto, umap, tsne or pca.")]
    = "auto",
) -> None:
    """A static HTML report (opens from disk): duplicates, groups, clusters, outliers, map."""
    collection = Collection.open(_find_collection(db))
    folder = OwnedFolder.claim(out, "report")  # refuses a user's folder before any work
    bar, update = _stage_progress()
    with bar:
        dups = collection.duplicates(verify=verify, progress=update)
        update("groups", 0, 1)
        file_ids, found = collection.groups(threshold)
        update("groups", 1, 1)
        update("clusters", 0, 1)
        _, clustering = collection.clusters(k if k == "auto" else int(k))
        update("clusters", 1, 1)
        _, scores = collection.outliers()
        _, vectors = collection.vectors()
        update("map", 0, 1)
        layout, method = map_2d(vectors, map_method)
        update("map", 1, 1)
        paths = [collection.root / p for p in collection.paths(file_ids)]
        index = write_report(
            folder, title=f"lookalike report: {collection.root.name}", paths=paths,
            overview={**_report_overview(collection, dups, found, clustering),
                      "group threshold": _describe_group_threshold(
                          collection.group_threshold(threshold))},
            sections=_report_sections(dups, found, clustering, scores, fraction),
            layout=layout, layout_method=method, colours=clustering.labels,
            progress=lambda done, total: update("thumbnails", done, total),
        )
    console.print(f"report: {index}")


def _report_overview(collection: Collection, dups: Any, found: list[Any],
                     clustering: Any) -> dict[str, Any]:
    details = collection.info()
    return {
        "images": details.embedded,
        "skipped files": len(details.skipped),
        "model": details.model_spec,
        "exact duplicate groups": len(dups.exact),
        "near-duplicate groups": len(dups.near),
        "threshold groups": len(found),
        "clusters": clustering.k,
    }


def _report_sections(dups: Any, found: list[Any], clustering: Any, scores: np.ndarray,
                     fraction: float) -> list[Section]:
    duplicate_galleries = [
        Gallery(f"{group.kind} duplicates #{n}", group.members,
                ["keep" if m == group.keeper else f"{s:.3f}"
                 for m, s in zip(group.members, group.scores)], highlight=group.keeper)
        for n, group in enumerate(dups.exact + dups.near, start=1)]
    group_galleries = [Gallery(f"group #{n}: {g.size} images, mean cosine "
                               f"{g.mean_similarity:.3f}", g.members[:40], highlight=g.medoid)
                       for n, g in enumerate(found, start=1)]
    cluster_galleries = []
    for c in range(clustering.k):
        central = clustering.members(c)[:24]
        cluster_galleries.append(Gallery(
            f"cluster {c}: {int(clustering.sizes[c])} images", central.tolist(),
            [f"{clustering.similarity[m]:.3f}" for m in central],
            highlight=int(clustering.medoids[c])))
    top = top_outliers(scores, fraction)
    return [
        Section("Duplicates", "Exact and near-duplicate groups; the outlined copy is the "
                "suggested keeper (largest resolution, then file size).", duplicate_galleries),
        Section("Threshold groups", "Images linked at the group threshold, without chaining; "
                "the outlined image is the medoid.", group_galleries),
        Section("Clusters", "k-means clusters: the most central members, medoid outlined.",
                cluster_galleries),
        Section("Outliers", "Images least like their neighbours (local outlier factor).",
                [Gallery("most unusual first", top.tolist(),
                         [f"{scores[p]:.2f}" for p in top])] if len(top) else []),
    ]


@app.command("sort")
@friendly_errors
def sort_files(
    to: Annotated[Path, typer.Option("--to", help="Destination folder for the sorted files.")],
    by: Annotated[str | None, typer.Option(
        "--by", help="clusters (one folder each), groups, or duplicates (copies beside "
        "their keeper's name; keepers stay).")] = None,
    k: Annotated[str, typer.Option("-k", "--k", help="With --by clusters: k or auto.")]
    = "auto",
    by_examples: Annotated[Path | None, typer.Option(
        "--by-examples", help="Folder of exemplar images: one destination folder each.")]
    = None,
    threshold: Annotated[float | None, typer.Option(
        help="Minimum cosine to the exemplar (else the image stays).")] = None,
    top_k: Annotated[int | None, typer.Option(
        "--top-k", help="At most this many images per exemplar (the closest).")] = None,
    copy: Annotated[bool, typer.Option("--copy", help="Copy files (default).")] = False,
    move: Annotated[bool, typer.Option("--move", help="Move files (verified).")] = False,
    symlink: Annotated[bool, typer.Option("--symlink", help="Symlink files.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Organise files into folders; journalled, verified, undoable (lookalike undo)."""
    modes = [name for name, chosen in (("copy", copy), ("move", move), ("symlink", symlink))
             if chosen]
    if len(modes) > 1:
        raise ValueError("choose one of --copy, --move, --symlink")
    if (by is None) == (by_examples is None):
        raise ValueError("say how to sort: --by clusters|groups|duplicates, or --by-examples DIR")
    collection = Collection.open(_find_collection(db))
    if by_examples is not None:
        assignments = collection.folders_by_exemplars(by_examples, threshold=threshold,
                                                      top_k=top_k)
    else:
        assignments = _folders_by(collection, by, k, threshold)
    plan = plan_sort(assignments, to.expanduser().absolute(), modes[0] if modes else "copy")
    if dry_run:
        lines = describe_plan(plan)
        if as_json:
            _print_json({"mode": plan.mode, "moves": [[str(m.source), str(m.destination)]
                                                      for m in plan.moves]})
        else:
            console.print("\n".join(lines), highlight=False)
        return
    with Progress(TextColumn(f"[bold]{plan.mode}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=errors, disable=as_json) as bar:
        task = bar.add_task(plan.mode, total=len(plan.moves))
        result = execute_plan(plan, collection.directory / "journals",
                              progress=lambda done, total: bar.update(task, completed=done))
    if as_json:
        _print_json({"journal": result.journal, "done": len(result.done),
                     "failed": [[str(m.source), reason] for m, reason in result.failed]})
    else:
        console.print(f"{plan.mode}: {len(result.done)} files into {to}; journal "
                      f"{result.journal} (undo: lookalike undo)")
        for failed, reason in result.failed:
            errors.print(f"[red]failed:[/] {failed.source}: {reason}", highlight=False)
    if result.disk_full:
        errors.print(f"[red]the disk is full:[/] {len(result.failed)} file(s) were not sorted. "
                     "Free some space and run the same sort again, or run lookalike undo to "
                     f"put back the {len(result.done)} file(s) sorted", highlight=False)
    if result.failed:
        raise typer.Exit(1)


def _folders_by(collection: Collection, by: str | None, k: str,
                threshold: float | None) -> dict[Path, str]:
    """File -> destination folder name for ``sort --by``."""
    root = collection.root
    if by == "clusters":
        file_ids, result = collection.clusters(k if k == "auto" else int(k))
        paths = collection.paths(file_ids)
        return {root / path: f"cluster_{label:03d}" for path, label in zip(paths, result.labels)}
    if by == "groups":
        file_ids, found = collection.groups(threshold)  # None: the calibrated threshold
        paths = collection.paths(file_ids)
        return {root / paths[m]: f"group_{n:03d}" for n, g in enumerate(found, start=1)
                for m in g.members}
    if by == "duplicates":
        report = collection.duplicates(threshold=threshold)
        in_near = {m for g in report.near for m in g.members}  # near groups hold exact copies
        chosen = report.near + [g for g in report.exact if not in_near.intersection(g.members)]
        # Links and hard links are one file under several names, not copies: the planner
        # compares files, never moves a link, and never moves a file a link points to.
        return duplicate_assignments(
            (f"duplicates_{n:03d}_{Path(report.paths[g.keeper]).stem}",
             [root / report.paths[m]
              for m in [g.keeper, *(m for m in g.members if m != g.keeper)]])
            for n, g in enumerate(chosen, start=1))
    raise ValueError(f"--by must be clusters, groups or duplicates, not {by!r}")


@app.command()
@friendly_errors
def undo(
    journal: Annotated[Path | None, typer.Argument(
        help="Journal of the run to undo (default: the newest).")] = None,
    db: DbOption = None,
) -> None:
    """Undo a sort run exactly, from its journal (safe to run again)."""
    if journal is None:  # the last run that changed something, and how to pick another
        journal, notes = choose_journal(_find_collection(db) / "journals")
        for note in notes:
            console.print(note, highlight=False)
        if journal is None:
            return
    result = undo_journal(journal)
    console.print(f"undone: {len(result.undone)} files restored from {journal}")
    if result.unrecorded:
        console.print(
            f"[yellow]note:[/] the journal ends before its run finished, {result.unrecorded} "
            "planned file(s) short: the run was interrupted, or the journal was cut short. "
            f"In that case files it sorted after that point are still in {result.destination}"
            ": look there", highlight=False)
    for path, reason in result.kept:
        console.print(f"[yellow]kept:[/] {path}: {reason}", highlight=False)
    for failed, reason in result.failed:
        errors.print(f"[red]failed:[/] {failed.source}: {reason}", highlight=False)
    if result.failed:
        raise typer.Exit(1)


@app.command()
@friendly_errors
def models(
    as_json: JsonOption = False,
    download: Annotated[list[str] | None, typer.Option(
        "--download", metavar="NAME", help="Download NAME's pretrained weights into the "
        "cache now, with a progress bar (e.g. dinov2-small; repeatable): then auto and "
        "--model NAME use them offline.")] = None,
) -> None:
    """List the backbones lookalike knows and whether each works offline here
    (never downloading); --download NAME fetches a model's weights."""
    if download:
        _download_models(download, as_json)
        return
    infos = list_backbones()
    if as_json:
        _print_json(infos)
        return
    table = Table(title="models")
    for column in ("name", "available", "description", "note"):
        table.add_column(column, overflow="fold")
    for info in infos:
        table.add_row(info.name + (" [bold](auto)[/]" if info.auto else ""),
                      "[green]yes[/]" if info.available else "[red]no[/]",
                      info.description, info.note)
    console.print(table)
    console.print("(auto): what --model auto picks for a new collection here; a collection "
                  "keeps the model it was indexed with", highlight=False)
    cache = os.environ.get("LOOKALIKE_HOME", "~/.cache/lookalike")
    console.print(f"weights cache: {cache} (set LOOKALIKE_HOME to move it); "
                  "lookalike models --download NAME fetches a model's weights now",
                  highlight=False)


def _download_models(names: list[str], as_json: bool) -> None:
    fetched = []
    for name in names:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), TimeRemainingColumn(), console=errors,
                      disable=as_json) as bar:
            path = download_weights(name, progress=_bytes_progress(bar, f"downloading {name}"))
        fetched.append({"name": name, "path": str(path)})
        if not as_json:
            console.print(f"{name}: weights cached at {path}", highlight=False, soft_wrap=True)
    if as_json:
        _print_json(fetched)


@app.command()
@friendly_errors
def info(
    folder: Annotated[Path | None, typer.Argument(help="Image folder or collection.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a collection: images, skipped files and why, model, index, sizes."""
    collection = Collection.open(_find_collection(db or folder))
    details = collection.info()
    if as_json:
        _print_json(details)
        return
    counts = details.counts
    freshness = "up to date" if details.index_fresh else "stale: rebuilt on next search"
    table = Table(show_header=False, title=str(details.directory), title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = {
        "images folder": str(details.root),
        "files": f"{sum(counts.values())} ({counts.get('ok', 0)} ok, "
                 f"{counts.get('pending', 0)} pending, {counts.get('skipped', 0)} skipped)",
        "embedded": str(details.embedded),
        "model": f"{details.model_spec} ({details.model})",
        "dimensions": str(details.dim),
        "preprocessing": details.augmentation,
        "learned transform": details.transform or "none",
        "index": f"{details.index_kind} ({freshness})",
        "disk": ", ".join(f"{part} {_size(n)}" for part, n in details.disk_bytes.items()),
    }
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)
    if details.skipped:
        _print_skipped(details.skipped, "skipped")


@app.command()
@friendly_errors
def check(
    folder: Annotated[Path | None, typer.Argument(help="Image folder or collection.")] = None,
    db: DbOption = None,
    repair: Annotated[bool, typer.Option(
        "--repair", help="Fix what can be fixed in place: forget broken embeddings (they "
        "are embedded again by the next index run), rebuild a damaged index, drop damaged "
        "cached graphs.")] = False,
) -> None:
    """Verify a collection (catalogue, embeddings, index, cached graphs) and say exactly
    what to run for each problem; exit code 1 while a problem remains."""
    directory = _find_collection(db or folder)
    try:
        collection = Collection.open(directory, writable=repair)
    except StoreError as error:
        errors.print(f"[bold red]problem:[/] {error}", highlight=False)
        raise typer.Exit(1) from None
    problems = collection.check(repair=repair)
    for problem in problems:
        label = "[green]repaired:[/]" if problem.repaired else "[bold red]problem:[/]"
        console.print(f"{label} {problem.what}\n  run: {problem.fix}", highlight=False)
    if not problems:
        console.print(f"{directory}: ok (catalogue, embeddings, index and cached graphs "
                      "verified)")
    if any(not problem.repaired for problem in problems):
        raise typer.Exit(1)


@app.command()
@friendly_errors
def serve(
    folder: Annotated[Path | None, typer.Argument(help="Image folder or collection.")] = None,
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to bind; other than loopback, anyone "
                                      "on the network can reach it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8765,
    token: Annotated[str | None, typer.Option(
        help="Require this token on every request (header, cookie, or ?token= for the page).",
        envvar="LOOKALIKE_TOKEN")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Server processes sharing the port: more requests per second on a "
        "busy server, one vector index in RAM per process.")] = 1,
) -> None:
    """A web page and HTTP API over a collection (OpenAPI docs at /docs); never deletes or
    moves a file."""
    from .serve import is_loopback
    from .serve import run as run_server

    directory = _find_collection(db or folder)
    if not is_loopback(host) and not token:
        errors.print(f"[bold yellow]warning:[/] serving on {host} without --token: anyone "
                     "who can reach this address can browse and download your images",
                     highlight=False)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"serving {directory} at http://{shown}:{port}/"
                  + ("?token=..." if token else "") + "  (API docs: /docs)  Ctrl+C stops")
    run_server(directory, host=host, port=port, token=token, workers=workers)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)



# -- evaluation against labels and metric learning ----------------------------------------------
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


def _preprocess_options(values: list[str] | None) -> dict[str, dict[str, Any]]:
    """``--preprocess`` values -> {model spec or "*": preprocess dict}."""
    options: dict[str, dict[str, Any]] = {}
    for value in values or []:
        spec, separator, text = value.partition("=")
        if separator and not spec.lstrip().startswith("{"):
            options[spec.strip()] = _json_argument(text)
        else:
            options["*"] = _json_argument(value)
    return options


def _configurations(models: list[str] | None, preprocess: list[str] | None, crop_borders: bool,
                    flip: bool, fusion: str) -> list[Any]:
    from .eval import parse_configuration

    options = _preprocess_options(preprocess)
    return [parse_configuration(_resolve_auto(text), options, border_crop=crop_borders,
                                flip=flip, fusion=fusion) for text in (models or ["auto"])]


def _resolve_auto(text: str) -> str:
    """``auto`` (alone or as an ensemble member) as the model it stands for now, so that
    results and cached embeddings are labelled with the real model."""
    if not re.search(r"(^|\+)\s*auto\s*(:|\+|$)", text):
        return text
    from .embed import resolve_auto

    return re.sub(r"(^|\+)(\s*)auto(?=\s*(:|\+|$))", rf"\g<1>\g<2>{resolve_auto()}", text)


@app.command("eval")
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
    seed: Annotated[int, typer.Option(help="Seed of the held-out split and k-means.")] = 0,
    gallery: Annotated[str, typer.Option(
        help="With a split, search the rest (rest) or the other held-out images (held-out).")]
    = "rest",
    classes: Annotated[str | None, typer.Option(
        help="Only these classes, comma-separated (e.g. seed 003's five rooms).")] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Results per query.")] = 10,
    cluster: Annotated[int | None, typer.Option(
        help="Also k-means into this many clusters: ACC, NMI, ARI, purity.")] = None,
    learn: Annotated[str | None, typer.Option(
        help="Fit kissme, lda, linear, mlp or pca on the non-held-out images first.")] = None,
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
    from .embed.transform import TransformChain, chain_for
    from .eval import EvalOptions, run_eval

    if gallery not in ("rest", "held-out"):
        raise ValueError("--gallery must be rest or held-out")
    learner = None
    if learn is not None or (dim is not None and transform is None):
        learner = functools.partial(chain_for, learn, dim=dim, whiten=whiten)
        learner()  # fail early on a bad method
    options = EvalOptions(k=k, split=split, per_class=per_class, seed=seed, gallery=gallery,
                          cluster=cluster, learn=learner,
                          transform=TransformChain.load(transform) if transform else None)
    collection = Collection.open(db) if db is not None else None
    configurations = ([] if collection is not None and not model else
                      _configurations(model, preprocess, crop_borders, flip, fusion))
    bar, update = _stage_progress()
    with bar:
        run = run_eval(dataset, configurations, options, queries=queries, cache=cache,
                       plots=plots,
                       classes=[c.strip() for c in classes.split(",")] if classes else None,
                       progress=update, collection=collection)
        dup = None
        if duplicates_csv is not None:
            from .eval import evaluate_duplicates

            first = _configurations(model, preprocess, crop_borders, flip, fusion)[0]
            dup = evaluate_duplicates(duplicates_csv, first, cache=cache)
    if as_json:
        payload = _to_json(run)
        for entry in payload["results"]:
            entry["confusion"] = np.asarray(entry["confusion"]).round(4).tolist()
        if dup is not None:
            payload["duplicates"] = _to_json(dup)
        _print_json(payload)
        return
    _print_eval(run, show_classes)
    if dup is not None:
        _print_duplicates_eval(dup)


def _print_eval(run: Any, show_classes: bool) -> None:
    first = run.results[0]
    table = Table(title=f"{run.dataset}: {run.images} images, {run.classes} classes; "
                  f"{first.protocol}", title_justify="left")
    metrics = list(first.summary)
    clustered = first.clustering is not None
    for column in ["configuration", *metrics,
                   *(["ACC", "NMI", "ARI", "purity"] if clustered else []), "queries",
                   "images/s"]:
        table.add_column(column, justify="left" if column == "configuration" else "right",
                         overflow="fold")
    for result in run.results:
        cells = [f"{result.summary[m]:.3f}" for m in metrics]
        if clustered:
            cells += [f"{result.clustering[m]:.3f}" for m in ("ACC", "NMI", "ARI", "purity")]
        speed = f"{result.images_per_second:,.1f}" + (" (cached)" if result.cached else "")
        table.add_row(result.label, *cells, str(result.queries), speed)
    console.print(table)
    console.print(f"[dim]{run.definitions}[/]", highlight=False)
    if show_classes:
        for result in run.results:
            per = Table(title=f"per class: {result.label}", title_justify="left")
            per.add_column("class")
            for column in ["queries", *metrics]:
                per.add_column(column, justify="right")
            for label, values in result.per_class.items():
                per.add_row(label, f"{values['queries']:.0f}",
                            *[f"{values[m]:.3f}" for m in metrics])
            console.print(per)
    for figure in run.figures:
        console.print(f"figure: {figure}")


def _print_duplicates_eval(dup: Any) -> None:
    table = Table(title=f"near duplicates: {dup.images} images, {dup.model}, "
                  f"verify={dup.verified}", title_justify="left")
    for column in ("pairs touching", "precision", "recall", "F1", "true pairs"):
        table.add_column(column, justify="right")
    for name, scores in [("all", dup.overall), *dup.by_edit.items()]:
        table.add_row(name, f"{scores['precision']:.3f}", f"{scores['recall']:.3f}",
                      f"{scores['f1']:.3f}", str(scores["true_pairs"]))
    console.print(table)


@app.command()
@friendly_errors
def learn(
    dataset: Annotated[str | None, typer.Argument(
        help="Labelled images: a folder of class sub-folders, or a CSV of path,label. "
             "Not needed for --method pca with --db (fitted on the collection).")] = None,
    method: Annotated[str, typer.Option(help="kissme, lda, linear, mlp or pca.")] = "lda",
    model: Annotated[str, typer.Option(
        help="Model spec or ensemble a+b (see eval); auto: the model a new collection gets. "
             "With --db, the collection's model.")] = "auto",
    preprocess: PreprocessOption = None,
    crop_borders: Annotated[bool, typer.Option("--crop-borders")] = False,
    flip: Annotated[bool, typer.Option("--flip")] = False,
    dim: Annotated[int | None, typer.Option(help="Output dimensions (PCA for pca).")] = None,
    whiten: Annotated[float, typer.Option(help="pca only: whitening power.")] = 0.0,
    split: Annotated[float | None, typer.Option(
        help="Fit on 1 - SPLIT of each class; report raw vs learned on the held-out rest.")]
    = None,
    seed: Annotated[int, typer.Option()] = 0,
    k: Annotated[int, typer.Option("-k", "--k", min=1)] = 10,
    out: Annotated[Path | None, typer.Option(
        help="Where to save the transform (PATH.npz + PATH.json).")] = None,
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
    from .eval import learn_transform

    collection = Collection.open(db, writable=True) if db is not None else None
    if clear:
        if collection is None:
            raise ValueError("--clear needs --db COLLECTION")
        collection.set_transform(None)
        console.print(f"{collection.directory}: learned transform removed")
        return
    if collection is not None:
        record = collection.model
        if record is None:
            raise ValueError("the collection has no embeddings yet: run lookalike index first")
        model = record.spec
    if dataset is None:
        if collection is None or method != "pca":
            raise ValueError("give a labelled DATASET (only --method pca with --db fits on "
                             "the collection's own images)")
        from .eval import fit_collection_pca

        chain = fit_collection_pca(collection, dim=dim, whiten=whiten)
        console.print(f"fitted {chain.description} on the collection's "
                      f"{chain.info['fitted_on']} embeddings ({chain.info['input_dim']} -> "
                      f"{chain.info['output_dim']} dimensions); applied to "
                      f"{collection.directory}")
        return
    (configuration,) = _configurations([model], preprocess, crop_borders, flip, "concat")
    target = out or (None if collection is not None else
                     Path(f"{Path(dataset).stem}-{method}"))
    outcome = learn_transform(dataset, configuration, method, dim=dim, whiten=whiten,
                              split=split, seed=seed, k=k, cache=cache, out=target,
                              collection=collection)
    if as_json:
        _print_json(outcome)
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
        from .eval import DEFINITIONS

        console.print(f"[dim]{DEFINITIONS}[/]", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    app()
