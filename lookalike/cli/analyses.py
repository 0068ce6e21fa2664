"""The analyses: ``duplicates``, ``groups``, ``cluster``, ``outliers``."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .common import (
    MAX_NEIGHBOURS,
    DbOption,
    JsonOption,
    console,
    errors,
    find_collection,
    friendly_errors,
    print_csv,
    print_json,
)

if TYPE_CHECKING:
    from ..collection import Collection


GridOption = Annotated[Path | None, typer.Option(
    "--grid", help="Write one contact sheet per group into this folder.")]


def _group_sheets(folder: Path, collection: Collection, sheets: list[tuple[str, list[int],
                  list[str]]]) -> None:
    """One sheet per (name, file ids, captions); the first member is outlined."""
    from ..act.grids import SheetFolder, Tile, contact_sheet

    paths = {record.id: record.path for record in collection.files()}
    owned = SheetFolder(folder)
    for name, file_ids, captions in sheets:
        tiles = [Tile(collection.root / paths[i], caption, Path(paths[i]).name,
                      highlight=position == 0)
                 for position, (i, caption) in enumerate(zip(file_ids, captions))]
        owned.save(contact_sheet(tiles, columns=min(6, len(tiles))), f"{name}.png")
    owned.finish()
    console.print(f"{len(sheets)} contact sheets in {folder}")


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
    as_csv: Annotated[bool, typer.Option(
        "--csv", help="CSV: group,kind,keeper,id,path,score,tier (duplicates only)")] = False,
    as_json: JsonOption = False,
) -> None:
    """Exact duplicates and edited copies, grouped without chaining look-alikes, keeper
    suggested; similar shots of one scene are listed apart, never as duplicates."""
    from ..collection import Collection
    from .progress import stage_progress

    collection = Collection.open(find_collection(db))
    bar, update = stage_progress()
    with bar:
        report = collection.duplicates(threshold=threshold, verify=verify, k=k,
                                       progress=None if as_json or as_csv else update)
    groups = [("exact", g) for g in report.exact] + [("near", g) for g in report.near]
    if as_json:
        print_json(report.to_dict())
    elif as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["group", "kind", "keeper", "id", "path", "score", "tier"])
        for number, (kind, group) in enumerate(groups, start=1):
            tiers = group.tiers or [group.tier] * len(group.members)
            for member, score, tier in zip(group.members, group.scores, tiers):
                writer.writerow([number, kind, int(member == group.keeper),
                                 int(report.file_ids[member]), report.paths[member],
                                 f"{score:.4f}", tier])
    else:
        table = Table(title=f"{len(report.exact)} exact and {len(report.near)} near-duplicate "
                      f"groups (candidate cosine {report.threshold:.3f}, "
                      f"{'verified' if report.verified else 'not verified'})",
                      title_justify="left")
        for column in ("group", "kind", "keep", "copies (score, tier)"):
            table.add_column(column, overflow="fold")
        for number, (kind, group) in enumerate(groups, start=1):
            tiers = group.tiers or [group.tier] * len(group.members)
            copies = [f"{report.paths[m]} ({s:.3f}, {t})" for m, s, t in
                      zip(group.members, group.scores, tiers) if m != group.keeper]
            table.add_row(str(number), kind, report.paths[group.keeper], "\n".join(copies))
        console.print(table)
        if report.similar:
            shots = sum(len(g) for g in report.similar)
            console.print(f"{len(report.similar)} groups of similar shots ({shots} images: "
                          "the same scene photographed again, not copies) are not "
                          "duplicates; --json lists them.")
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
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: group,medoid,id,path")] = False,
    as_json: JsonOption = False,
) -> None:
    """"Same place, same moment" groups: images linked at a similarity threshold, no chaining."""
    from ..collection import Collection
    from ..duplicates_job import load_calibration

    collection = Collection.open(find_collection(db))
    if threshold is None and not (as_json or as_csv) and collection.model is not None \
            and load_calibration(collection) is None:
        errors.print(f"calibrating {collection.model.spec} on this collection's images "
                     "(once: the result is stored)...", highlight=False, soft_wrap=True)
    report = collection.groups(threshold, k=k)
    if as_json:
        print_json(report.to_dict())
    elif as_csv:
        print_csv(report.COLUMNS, report.rows())
    else:
        console.print(report.threshold.describe(), highlight=False, soft_wrap=True)
        table = Table(title=f"{len(report.groups)} groups at cosine >= "
                      f"{report.threshold.value:.3f}",
                      title_justify="left")
        for column in ("group", "size", "similarity", "medoid", "members"):
            table.add_column(column, overflow="fold")
        paths = report.paths
        for number, g in enumerate(report.groups, start=1):
            table.add_row(str(number), str(g.size), f"{g.mean_similarity:.3f}",
                          paths[g.medoid], ", ".join(paths[m] for m in g.members[1:][:8])
                          + (" ..." if g.size > 9 else ""))
        console.print(table)
    if grid is not None:
        _group_sheets(grid, collection, [
            (f"group-{number:04d}", report.ids(g.members[:30]),
             ["medoid"] + [""] * (min(g.size, 30) - 1))
            for number, g in enumerate(report.groups, start=1)])


@friendly_errors
def cluster(
    k: Annotated[str, typer.Option("-k", "--k", help="Number of clusters, or auto.")] = "auto",
    db: DbOption = None,
    seed: Annotated[int, typer.Option(help="Random seed (results are reproducible).")] = 0,
    grid: GridOption = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: id,path,cluster,confidence")]
    = False,
    as_json: JsonOption = False,
) -> None:
    """k-means clusters, with sizes, medoids and a confidence per image."""
    if k != "auto" and not k.isdigit():
        raise ValueError("--k must be a whole number or auto")
    from ..analyse.results import LOW_CONFIDENCE
    from ..collection import Collection

    collection = Collection.open(find_collection(db))
    report = collection.clusters(k if k == "auto" else int(k), seed=seed)
    result = report.clustering
    if as_json:
        print_json(report.to_dict())
    elif as_csv:
        print_csv(report.COLUMNS, report.rows())
    else:
        table = Table(title=f"{report.k} clusters of {len(report.file_ids)} images",
                      title_justify="left",
                      caption=f"low-confidence: won its cluster by a margin under "
                      f"{LOW_CONFIDENCE} (cosine to its centre minus to the next one)",
                      caption_justify="left")
        for column in ("cluster", "size", "medoid", "low-confidence members"):
            table.add_column(column, overflow="fold")
        for c in range(report.k):
            table.add_row(str(c), str(int(result.sizes[c])), report.medoid_path(c) or "-",
                          str(report.low_confidence(c)))
        if result.chosen is not None:
            console.print(result.chosen.describe(), highlight=False)
        console.print(table)
    if grid is not None:
        sheets = []
        for c in range(report.k):
            central = result.members(c)[:30]
            sheets.append((f"cluster-{c:04d}", report.ids(central),
                           [f"{result.similarity[m]:.3f}" for m in central]))
        _group_sheets(grid, collection, sheets)


@friendly_errors
def outliers(
    fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Top fraction to list.")]
    = 0.01,
    db: DbOption = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=MAX_NEIGHBOURS,
                                   help="Neighbours per image.")] = 16,
    grid: Annotated[Path | None, typer.Option(help="Contact sheet of the outliers (PNG).")]
    = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: rank,id,path,score")] = False,
    as_json: JsonOption = False,
) -> None:
    """Images least like their neighbours: junk and edge cases to review."""
    from ..act.grids import Tile, contact_sheet, save_image
    from ..collection import Collection

    collection = Collection.open(find_collection(db))
    report = collection.outliers(k=k)
    rows = report.rows(fraction)
    if as_json:
        print_json(rows)
    elif as_csv:
        print_csv(report.COLUMNS, rows)
    else:
        table = Table(title=f"{len(rows)} outliers (local outlier factor; ~1 is typical)",
                      title_justify="left")
        for column in ("rank", "score", "path"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(str(row["rank"]), f"{row['score']:.3f}", row["path"])
        console.print(table)
    if grid is not None:
        tiles = [Tile(collection.root / row["path"], f"#{row['rank']} {row['score']:.2f}",
                      Path(row["path"]).name) for row in rows]
        save_image(contact_sheet(tiles, columns=6), grid)
