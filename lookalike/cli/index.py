"""Building and inspecting a collection: ``index``, ``info``, ``check``, ``models``."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .common import (
    DbOption,
    JsonOption,
    console,
    errors,
    find_collection,
    friendly_errors,
    parse_size,
    preprocess_options,
    print_json,
    to_json,
)

if TYPE_CHECKING:
    from rich.progress import TaskID

    from ..collection import Collection
    from ..records import IndexReport


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
    preprocess: Annotated[list[str] | None, typer.Option(
        help='ONNX/torch preprocessing as JSON or a JSON file, e.g. {"size": 224, "resize": 224,'
             ' "mean": [0.5,0.5,0.5], "std": [0.5,0.5,0.5]}, or SPEC=JSON for one ensemble '
             "member (repeatable), as in lookalike eval.")] = None,
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
    watch: Annotated[bool, typer.Option(
        "--watch", help="Keep running: index again whenever files in FOLDER are added, "
        "changed or removed (until Ctrl-C).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Index FOLDER into a collection; re-running embeds only new or changed files."""
    from ..collection import Collection
    from ..embed import AUTO_DOWNLOAD, describe_model, download_progress
    from ..extras import require
    from .progress import bytes_progress, files_and_downloads

    if index_kind == "annoy":  # before embedding: say at once what is missing
        require("annoy", "--index annoy")
    if ray is not None:
        require("ray", "--ray")
    chosen = preprocess_options(preprocess)
    options: dict[str, Any] = ({"preprocess": chosen["*"]} if set(chosen) == {"*"} else
                               {"member_preprocess": chosen} if chosen else {})
    quiet = as_json or not console.is_terminal
    with files_and_downloads(disable=as_json) as bar, download_progress(
                      bytes_progress(bar, f"downloading {AUTO_DOWNLOAD}")):
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
        print_json({**to_json(report), "collection": str(collection.directory),
                    "skipped": report.skipped,
                    "images_per_second": report.embed.images_per_second})
    else:
        if report.new_model:
            console.print(describe_model(report.model), markup=False, highlight=False,
                          soft_wrap=True)
        _print_report(collection, report, quiet)
    if watch:
        _watch(collection, as_json, workers=workers, batch_size=batch_size)


def _watch(collection: Collection, as_json: bool, **options: Any) -> None:
    """Index again on every change of the folder, printing each run, until Ctrl-C."""
    from ..watch import FolderWatcher

    def report_run(report: IndexReport) -> None:
        if as_json:
            print_json({**to_json(report), "skipped": report.skipped})
        else:
            _print_report(collection, report, quiet=True)

    def report_error(error: Exception) -> None:
        errors.print(f"[yellow]warning:[/] index run failed, trying again: {error}",
                     highlight=False)

    watcher = FolderWatcher(collection, on_update=report_run, on_error=report_error,
                            **options)
    # Ctrl-C is the way to stop watching, not an error: it ends the watch after the
    # current poll (an index run in progress finishes and commits), wherever it lands;
    # a second Ctrl-C interrupts at once.
    def stop(*_: object) -> None:
        watcher.request_stop()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        if not as_json:
            console.print(f"watching {collection.root} for changes (Ctrl-C to stop)")
        watcher.run()
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_report(collection: Collection, report: IndexReport, quiet: bool) -> None:
    changes = report.changes
    console.print(
        f"[bold]{collection.directory}[/]: {changes.added} new, {changes.changed} changed, "
        f"{changes.removed} removed, {changes.unchanged} unchanged"
        + (f" ({changes.moved} found under a new name: not embedded again)"
           if changes.moved else "")
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


def _print_skipped(skipped: list[tuple[str, str]], title: str) -> None:
    table = Table(title=f"{len(skipped)} files {title}", title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("reason", overflow="fold")
    for path, reason in skipped:
        table.add_row(path, reason)
    console.print(table)


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
    from ..embed import list_backbones

    if download:
        _download_models(download, as_json)
        return
    infos = list_backbones()
    if as_json:
        print_json(infos)
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
    from ..embed import download_weights
    from .progress import bytes_progress, downloads

    fetched = []
    for name in names:
        with downloads(disable=as_json) as bar:
            path = download_weights(name, progress=bytes_progress(bar, f"downloading {name}"))
        fetched.append({"name": name, "path": str(path)})
        if not as_json:
            console.print(f"{name}: weights cached at {path}", highlight=False, soft_wrap=True)
    if as_json:
        print_json(fetched)


@friendly_errors
def info(
    folder: Annotated[Path | None, typer.Argument(help="Image folder or collection.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a collection: images, skipped files and why, model, index, sizes."""
    from ..collection import Collection

    collection = Collection.open(find_collection(db or folder))
    details = collection.info()
    if as_json:
        print_json(details)
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
    from ..collection import Collection
    from ..store import StoreError

    directory = find_collection(db or folder)
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


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
