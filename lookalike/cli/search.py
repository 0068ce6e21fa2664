"""Looking: ``search`` (by image, folder, id, text or vector) and ``grid``."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from .common import (
    MAX_MATCHES,
    MAX_NEIGHBOURS,
    DbOption,
    JsonOption,
    console,
    find_collection,
    friendly_errors,
    print_json,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..act.grids import Tile
    from ..collection import SearchHit
    from ..correspondence import Correspondence
    from ..discover import Root
    from ..queries import QueryMatches

CSV_COLUMNS = ("query", "query_class", "rank", "score", "id", "path", "class", "match",
               "correspondence")


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
    class_from: Annotated[Literal["top", "parent"], typer.Option(
        "--class-from",
        help="A file's class: its first folder under the collection root (or the query "
             "folder), or the folder holding it.")] = "top",
    csv_file: Annotated[str | None, typer.Option(
        "--csv", metavar="FILE",
        help="Write one row per hit (query, query_class, rank, score, id, path, class, "
             "match, correspondence) to FILE, or to stdout with -.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Find the images that look most like QUERY; for queries/<class>/*.jpg, also the share of each query's hits in its class (P@k), top-1 and a class confusion table."""  # noqa: E501
    from ..collection import Collection
    from ..ownership import refuse_foreign_csv
    from ..queries import SearchQuery, summarise

    if csv_file == "-" and as_json:
        raise typer.BadParameter("--csv - and --json both write to stdout: choose one")
    request = SearchQuery(query, text, vector, class_from=class_from)
    if csv_file not in (None, "-"):
        refuse_foreign_csv(Path(csv_file).expanduser(), CSV_COLUMNS,  # before any work
                           "lookalike search")
    collection = Collection.open(find_collection(db, request.path))
    collection.check_model(model)
    found = request.search(collection, k)
    summary = summarise(found)
    if grid is not None:
        _write_grids(grid, found)
    if csv_file is not None:
        _write_csv(csv_file, found)
    if as_json:
        _print_json(found, summary)
    elif csv_file != "-":
        _print_tables(found, summary)
        for name, written in (("contact sheet", grid), ("csv", csv_file)):
            if written is not None:
                console.print(f"{name}: {written}")


def _print_json(found: list[QueryMatches], summary: Correspondence | None) -> None:
    """A list of queries with their results; with labelled queries, an object holding
    that list (``queries``) and the summary (``correspondence``)."""
    queries = [{"query": m.label, "query_class": m.query_class,
                "correspondence": m.correspondence, "results": m.hits} for m in found]
    print_json(queries if summary is None else
               {"queries": queries, "correspondence": summary})


def _print_tables(found: list[QueryMatches], summary: Correspondence | None) -> None:
    for matches in found:
        title = f"matches for {matches.label}"
        if matches.correspondence is not None:
            title += (f" (class {matches.query_class}: {matches.correspondence:.2f} of the "
                      "hits in it)")
        table = Table(title=title, title_justify="left")
        for column in ("rank", "score", "id"):
            table.add_column(column, justify="right")
        table.add_column("class")
        table.add_column("path", overflow="fold")
        for hit in matches.hits:
            table.add_row(str(hit.rank), f"{hit.score:.4f}", str(hit.id),
                          hit.class_name or "", hit.path)
        console.print(table)
    if summary is not None:
        _print_summary(summary, k=max(len(m.hits) for m in found))


def _print_summary(summary: Correspondence, k: int) -> None:
    console.print(f"{summary.queries} queries with a class: mean P@{k} "
                  f"{summary.mean_precision:.3f} (share of the hits in the query's class), "
                  f"top-1 {summary.top1:.3f}")
    columns = list(next(iter(summary.confusion.values())))
    table = Table(title="share of each query class's hits in each class",
                  title_justify="left")
    table.add_column("query class")
    for column in columns:
        table.add_column(column, justify="right")
    for query_class, row in summary.confusion.items():
        table.add_row(query_class, *(f"{row[c]:.2f}" for c in columns))
    console.print(table)


def _write_csv(destination: str, found: list[QueryMatches]) -> None:
    """One row per hit; ``match`` and ``correspondence`` are empty for a query without a
    class. Cells a spreadsheet would run as a formula start with ``'``."""
    from ..marks import spreadsheet_safe
    from ..ownership import atomic_write, refuse_foreign_csv

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for m in found:
        for hit in m.hits:
            match = "" if m.query_class is None else int(hit.class_name == m.query_class)
            writer.writerow([spreadsheet_safe(m.label), spreadsheet_safe(m.query_class or ""),
                             hit.rank, f"{hit.score:.4f}", hit.id, spreadsheet_safe(hit.path),
                             spreadsheet_safe(hit.class_name or ""), match,
                             "" if m.correspondence is None else f"{m.correspondence:.4f}"])
    if destination == "-":
        sys.stdout.write(text.getvalue())
    else:
        path = Path(destination).expanduser()
        refuse_foreign_csv(path, CSV_COLUMNS, "lookalike search")
        atomic_write(path, text.getvalue())


def _write_grids(grid: Path, found: list[QueryMatches]) -> None:
    """One sheet of the query and its matches: into the file ``grid``, or for several
    queries (or a folder ``grid``) one per query into that folder."""
    from ..act.grids import SheetFolder, Tile, contact_sheet, save_image

    folder = SheetFolder(grid) if len(found) > 1 or grid.is_dir() else None
    for position, matches in enumerate(found):
        tiles = ([Tile(matches.file, "query", Path(matches.label).name, highlight=True)]
                 if matches.file else [])
        tiles += _hit_tiles(matches.hits)
        sheet = contact_sheet(tiles, columns=min(6, len(tiles)))
        if folder is None:
            save_image(sheet, grid)  # a file the user named: replaced only if lookalike's
        else:
            folder.save(sheet, f"{position:04d}-{Path(matches.label).stem}.png")
    if folder is not None:
        folder.finish()


def _hit_tiles(hits: Sequence[SearchHit], full_path: bool = False) -> list[Tile]:
    """A contact sheet's tiles of matches: rank and score under each, and the file's name
    (or, with ``full_path``, its path under the collection root)."""
    from ..act.grids import Tile

    return [Tile(hit.absolute_path, f"#{hit.rank}  {hit.score:.3f}",
                 hit.path if full_path else Path(hit.path).name)
            for hit in hits]


@friendly_errors
def grid(
    images: Annotated[list[Path] | None, typer.Argument(
        help="Images of the collection to explore (default: every image).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the contact sheets.")] = Path("grids"),
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=MAX_NEIGHBOURS,
                                   help="Neighbours per sheet.")] = 24,
    db: DbOption = None,
    image_format: Annotated[Literal["jpg", "png"], typer.Option(
        "--format", help="Sheet format: JPEG (quality 85, a quarter of PNG's size) or "
                         "PNG (lossless).")] = "jpg",
    workers: Annotated[int | None, typer.Option(
        min=1, help="Threads rendering sheets (default: one per core).")] = None,
) -> None:
    """Exploration sheets: one per image, showing it and its K nearest neighbours, and an index.html linking them."""  # noqa: E501
    from ..act.grids import SheetFolder, Tile
    from ..collection import Collection
    from .progress import counted

    first = images[0] if images else None
    collection = Collection.open(find_collection(db, first))
    sheets = SheetFolder(out)  # refuses a user's folder before any work
    if images:
        results = collection.search_many(images, k)
        queries: Sequence[Root] = [Path(image).expanduser().absolute() for image in images]
    else:
        queries, results = collection.neighbour_lists(k)
    jobs = [(f"{query.stem}.{image_format}",
             [Tile(query, "image", _relative(query, collection.root), highlight=True),
              *_hit_tiles(hits, full_path=True)])
            for query, hits in zip(queries, results)]
    with counted("[bold]contact sheets") as bar:
        task = bar.add_task("sheets", total=len(jobs))
        for _ in sheets.render(jobs, columns=5, workers=workers):
            bar.advance(task)
    sheets.write_index()
    sheets.finish()
    console.print(f"{len(queries)} contact sheets in {out} (index.html lists them)")


def _relative(path: Root, root: Root) -> str:
    """``path`` relative to the collection root (``folder/name``), else its name."""
    for candidate, base in ((path, root), (Path(str(path)).resolve(), Path(str(root)).resolve())):
        try:
            return Path(str(candidate)).relative_to(Path(str(base))).as_posix()
        except ValueError:
            continue
    return path.name
