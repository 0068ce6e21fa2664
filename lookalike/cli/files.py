"""What writes to the user's disk: ``sort``, ``undo``, ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    DbOption,
    JsonOption,
    console,
    errors,
    find_collection,
    friendly_errors,
    print_json,
)


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
    from ..act.report import write_collection_report
    from ..collection import Collection
    from ..ownership import OwnedFolder
    from .progress import stage_progress

    collection = Collection.open(find_collection(db))
    folder = OwnedFolder.claim(out, "report")  # refuses a user's folder before any work
    bar, update = stage_progress()
    with bar:
        index = write_collection_report(
            collection, folder, k=k, threshold=threshold, fraction=fraction,
            verify=verify, map_method=map_method, progress=update)
    console.print(f"report: {index}")


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
    from ..act.assign import folders_by
    from ..act.sort import describe_plan, execute_plan, plan_sort
    from ..collection import Collection
    from .progress import counted

    collection = Collection.open(find_collection(db))
    if by is not None:
        assignments = folders_by(collection, by, k=k, threshold=threshold)
    else:
        assignments = collection.folders_by_exemplars(by_examples, threshold=threshold,
                                                      top_k=top_k)
    plan = plan_sort(assignments, to.expanduser().absolute(), modes[0] if modes else "copy")
    if dry_run:
        lines = describe_plan(plan)
        if as_json:
            print_json({"mode": plan.mode, "moves": [[str(m.source), str(m.destination)]
                                                     for m in plan.moves]})
        else:
            console.print("\n".join(lines), highlight=False)
        return
    with counted(f"[bold]{plan.mode}", disable=as_json) as bar:
        task = bar.add_task(plan.mode, total=len(plan.moves))
        result = execute_plan(plan, collection.directory / "journals",
                              progress=lambda done, total: bar.update(task, completed=done))
    if as_json:
        print_json({"journal": result.journal, "done": len(result.done),
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


@friendly_errors
def undo(
    journal: Annotated[Path | None, typer.Argument(
        help="Journal of the run to undo (default: the newest).")] = None,
    db: DbOption = None,
) -> None:
    """Undo a sort run exactly, from its journal (safe to run again)."""
    from ..act.sort import choose_journal
    from ..act.sort import undo as undo_journal

    if journal is None:  # the last run that changed something, and how to pick another
        journal, notes = choose_journal(find_collection(db) / "journals")
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
