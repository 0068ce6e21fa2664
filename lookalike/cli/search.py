"""Looking: ``search`` (by image, folder, id, text or vector) and ``grid``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    from ..act.grids import Tile
    from ..collection import SearchHit
    from ..queries import QueryMatches


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
    from ..collection import Collection
    from ..queries import SearchQuery

    request = SearchQuery(query, text, vector)
    collection = Collection.open(find_collection(db, request.path))
    collection.check_model(model)
    found = request.search(collection, k)
    if grid is not None:
        _write_grids(grid, found)
    if as_json:
        print_json([{"query": matches.label, "results": matches.hits} for matches in found])
        return
    for matches in found:
        table = Table(title=f"matches for {matches.label}", title_justify="left")
        table.add_column("rank", justify="right")
        table.add_column("score", justify="right")
        table.add_column("id", justify="right")
        table.add_column("path", overflow="fold")
        for hit in matches.hits:
            table.add_row(str(hit.rank), f"{hit.score:.4f}", str(hit.id), hit.path)
        console.print(table)
    if grid is not None:
        console.print(f"contact sheet: {grid}")


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


def _hit_tiles(hits: list[SearchHit]) -> list[Tile]:
    """A contact sheet's tiles of matches: rank and score under each."""
    from ..act.grids import Tile

    return [Tile(hit.absolute_path, f"#{hit.rank}  {hit.score:.3f}", Path(hit.path).name)
            for hit in hits]


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
    from ..act.grids import SheetFolder, Tile, contact_sheet
    from ..collection import Collection
    from .progress import counted

    first = images[0] if images else None
    collection = Collection.open(find_collection(db, first))
    sheets = SheetFolder(out)  # refuses a user's folder before any work
    if images:
        results = collection.search_many(images, k)
        queries = [Path(image).expanduser().absolute() for image in images]
    else:
        queries, results = collection.neighbour_lists(k)
    with counted("[bold]contact sheets") as bar:
        for query, hits in bar.track(list(zip(queries, results)), description="sheets"):
            tiles = [Tile(query, "image", query.name, highlight=True), *_hit_tiles(hits)]
            sheets.save(contact_sheet(tiles, columns=5), f"{query.stem}.png")
    sheets.finish()
    console.print(f"{len(queries)} contact sheets in {out}")
