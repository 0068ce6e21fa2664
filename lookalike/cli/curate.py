"""Dataset curation: ``suspects`` (images that look like another class than their label)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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

ClassFromOption = Annotated[str, typer.Option(
    "--class-from", help="Which folder names an image's class when no --labels is given: "
    "'top' (the first folder under the root) or 'parent' (the folder holding the file).")]


def collection_labels(collection: Collection, paths: list[str], manifest: Path | None,
                      class_from: str) -> list[str | None]:
    """Each path's label: from a ``path,label`` manifest (paths relative to the manifest
    or absolute), else from its folders."""
    from ..correspondence import class_of

    if manifest is None:
        if class_from not in ("top", "parent"):
            raise typer.BadParameter("--class-from is 'top' or 'parent'")
        return [class_of(path, "top" if class_from == "top" else "parent") for path in paths]
    from ..eval.datasets import load_labelled

    labelled = load_labelled(manifest)
    root = Path(str(collection.root)).resolve()
    by_path: dict[str, str] = {}
    for path, label in zip(labelled.paths, labelled.labels.tolist()):
        absolute = (labelled.root / path).resolve()
        if absolute.is_relative_to(root):
            by_path[absolute.relative_to(root).as_posix()] = str(label)
    if not by_path:
        raise typer.BadParameter(f"no path of {manifest} is inside the collection's folder "
                                 f"{root}", param_hint="--labels")
    return [by_path.get(path) for path in paths]


@friendly_errors
def suspects(
    db: DbOption = None,
    labels: Annotated[Path | None, typer.Option(
        "--labels", help="A CSV with 'path' and 'label' columns; default: class folders.")]
    = None,
    class_from: ClassFromOption = "top",
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=MAX_NEIGHBOURS,
                                   help="Neighbours that vote on each image's class.")] = 10,
    top: Annotated[int, typer.Option(min=1, help="How many suspects to list.")] = 20,
    as_csv: Annotated[bool, typer.Option(
        "--csv", help="CSV: rank,id,path,label,agreement,suggested,support")] = False,
    as_json: JsonOption = False,
) -> None:
    """Images whose nearest neighbours mostly carry another label: likely mislabelled."""
    from ..analyse.label_noise import find_label_suspects
    from ..collection import Collection

    collection = Collection.open(find_collection(db))
    file_ids, graph = collection.knn_graph(k)
    paths = collection.paths(file_ids)
    found = find_label_suspects(graph, collection_labels(collection, paths, labels, class_from),
                                file_ids, paths, k=k)
    if not len(found.ranking):
        raise typer.BadParameter("no image has a label: put images in class folders or "
                                 "pass --labels", param_hint="--labels")
    if as_json:
        print_json(found.to_dict(top))
        return
    rows = found.rows(top)
    if as_csv:
        print_csv(list(rows[0]), rows)
        return
    table = Table(title=f"{len(rows)} most suspect of {len(found.ranking)} labelled images "
                  f"(agreement: share of the {k} neighbours' votes for the image's label)",
                  title_justify="left")
    for column in ("rank", "agreement", "label", "suggested", "path"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(str(row["rank"]), f"{row['agreement']:.2f}", str(row["label"]),
                      f"{row['suggested']} ({row['support']:.2f})", row["path"])
    console.print(table)
    confused = sorted(((share, a, b) for a, row_ in found.confusion.items()
                       for b, share in row_.items() if a != b and share > 0), reverse=True)
    if confused:
        console.print("Classes most often mistaken for another (share of the class's "
                      "neighbour votes): " + ", ".join(
                          f"{a} -> {b} {share:.2f}" for share, a, b in confused[:5]))


TIERS = ("exact", "edited", "similar")
MANIFEST_COLUMNS = ("path", "split")


@friendly_errors
def leakage(
    db: DbOption = None,
    splits: Annotated[Path | None, typer.Option(
        "--splits", help="A CSV with 'path' and 'label' columns naming each file's split; "
        "default: the first folder under the root (train/, val/, test/).")] = None,
    tiers: Annotated[str, typer.Option(
        help="Duplicate tiers that count as leakage, comma-separated: exact, edited, "
        "similar.")] = "exact,edited,similar",
    manifest: Annotated[Path | None, typer.Option(
        "--manifest", help="Write a path,split CSV in which no duplicate group straddles "
        "two splits (each group moved whole into the split holding most of it).")] = None,
    as_csv: Annotated[bool, typer.Option(
        "--csv", help="CSV: tier,score,split_a,id_a,path_a,split_b,id_b,path_b")] = False,
    as_json: JsonOption = False,
) -> None:
    """Duplicates that cross dataset splits (train/val/test), and a split without them."""
    from ..analyse.leakage import find_leakage
    from ..collection import Collection
    from ..ownership import atomic_write, refuse_foreign_csv
    from .progress import stage_progress

    wanted = {t.strip() for t in tiers.split(",") if t.strip()}
    if not wanted or not wanted <= set(TIERS):
        raise typer.BadParameter(f"tiers are {', '.join(TIERS)}", param_hint="--tiers")
    if manifest is not None:
        refuse_foreign_csv(manifest, MANIFEST_COLUMNS, "lookalike leakage")  # before work
    collection = Collection.open(find_collection(db))
    bar, update = stage_progress()
    with bar:
        report = collection.duplicates(progress=None if as_json or as_csv else update)
    groups = [g for g in [*report.exact, *report.near, *report.similar] if g.tier in wanted]
    split_of = collection_labels(collection, report.paths, splits, "top")
    found = find_leakage(groups, split_of, report.file_ids, report.paths,
                         priority=("train",))
    if manifest is not None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(found.manifest())
        atomic_write(manifest, text.getvalue())
    if as_json:
        print_json(found.to_dict())
        return
    if as_csv:
        print_csv(["tier", "score", "split_a", "id_a", "path_a", "split_b", "id_b", "path_b"],
                  found.rows())
        return
    summary = found.to_dict()
    table = Table(title=f"{len(found.pairs)} cross-split pairs in {len(found.straddling)} "
                  f"duplicate groups", title_justify="left")
    for column in ("tier", "score", "split", "file", "split", "file"):
        table.add_column(column, overflow="fold")
    for row in found.rows()[:50]:
        table.add_row(row["tier"], f"{row['score']:.2f}", str(row["split_a"]), row["path_a"],
                      str(row["split_b"]), row["path_b"])
    console.print(table)
    if len(found.pairs) > 50:
        console.print(f"... and {len(found.pairs) - 50} more: --csv lists them all")
    if manifest is not None:
        console.print(f"split manifest without straddling groups: {manifest} "
                      f"({summary['files_to_move']} files change split)")


def measure_collection(collection: Collection, quiet: bool
                       ) -> tuple[list[int], list[str], list[Any]]:
    """Ids, paths and :class:`~lookalike.measure.ImageStats` of the collection's images,
    measured once and cached in the collection's folder; files that fail are reported."""
    from ..measure import stats_of
    from .progress import stage_progress

    records = collection.files("ok")
    paths = [record.path for record in records]
    bar, update = stage_progress()
    with bar:
        stats, failed = stats_of([collection.root / p for p in paths],
                                 [record.content_hash for record in records],
                                 collection.directory,
                                 progress=None if quiet else
                                 (lambda done, total: update("measure", done, total)))
    for position, reason in sorted(failed.items()):
        errors.print(f"skipped {paths[position]}: {reason}", highlight=False, markup=False)
    return [record.id for record in records], paths, stats


@friendly_errors
def quality(
    db: DbOption = None,
    only: Annotated[str | None, typer.Option(
        "--flag", help="List only these flags, comma-separated: blurry, dark, overexposed, "
        "low_information, tiny, odd_shape.")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: flag,id,path,severity")] = False,
    as_json: JsonOption = False,
) -> None:
    """Blurry, dark, over-exposed, near-uniform, tiny and odd-shaped images, judged
    against the rest of the collection."""
    import numpy as np

    from ..analyse.quality import FLAGS, flag_quality
    from ..collection import Collection

    wanted = set(FLAGS) if only is None else {f.strip() for f in only.split(",")}
    if not wanted <= set(FLAGS):
        raise typer.BadParameter(f"flags are {', '.join(FLAGS)}", param_hint="--flag")
    collection = Collection.open(find_collection(db))
    ids, paths, stats = measure_collection(collection, as_csv or as_json)
    found = flag_quality(stats, np.asarray(ids), paths)
    rows = [row for row in found.rows() if row["flag"] in wanted]
    if as_json:
        print_json({**found.to_dict(), "flags": rows})
        return
    if as_csv:
        print_csv(["flag", "id", "path", "severity"], rows)
        return
    counts = ", ".join(f"{flag} {len(found.flags[flag])}" for flag in FLAGS if flag in wanted)
    table = Table(title=f"{len(rows)} flags on {len(found.flagged())} of {len(paths)} images "
                  f"({counts})", title_justify="left")
    for column in ("flag", "severity", "path"):
        table.add_column(column, overflow="fold")
    for row in rows[:100]:
        table.add_row(row["flag"], f"{row['severity']:.1f}", row["path"])
    console.print(table)
    if len(rows) > 100:
        console.print(f"... and {len(rows) - 100} more: --csv lists them all")


@friendly_errors
def metadata(
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Capture time, camera, lens, GPS position, size and exposure of every image, as
    CSV (or JSON with --json)."""
    from dataclasses import asdict

    from ..collection import Collection

    collection = Collection.open(find_collection(db))
    ids, paths, stats = measure_collection(collection, True)
    rows = [{"id": i, "path": path, **asdict(s)} for i, path, s in zip(ids, paths, stats)
            if s is not None]
    if as_json:
        print_json(rows)
        return
    if rows:
        print_csv(list(rows[0]), rows)
