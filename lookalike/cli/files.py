"""What writes to the user's disk: ``sort``, ``undo``, ``report``."""

from __future__ import annotations

from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from ..act.assign import ExampleSort
    from ..act.assign import Placement as ExamplePlacement
    from ..act.quarantine import QuarantinePlan
    from ..store import Store


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
    to: Annotated[Path | None, typer.Option(
        "--to", help="Destination folder for the sorted files (with --from-marks: the "
        "quarantine folder, by default <photo folder>-duplicates beside it).")] = None,
    by: Annotated[str | None, typer.Option(
        "--by", help="clusters (one folder each), groups, or duplicates (copies beside "
        "their keeper's name; keepers stay).")] = None,
    k: Annotated[str, typer.Option("-k", "--k", help="With --by clusters: k or auto.")]
    = "auto",
    by_examples: Annotated[Path | None, typer.Option(
        "--by-examples", help="Folder of examples: a sub-folder of a few images per class "
        "(one destination folder per class), or loose images (one folder each).")] = None,
    threshold: Annotated[float | None, typer.Option(
        min=-1.0, max=1.0, help="--by duplicates/groups: their cosine threshold; "
        "--by-examples: the least cosine to an example of its class (else the image "
        "stays).")] = None,
    top_k: Annotated[int | None, typer.Option(
        "--top-k", min=1, help="--by-examples: at most this many images per class (the "
        "most similar; the rest stay).")] = None,
    min_margin: Annotated[float, typer.Option(
        "--min-margin", min=0.0, max=2.0, help="--by-examples: an image whose class wins "
        "by less than this (cosine) goes to the unsure folder.")] = 0.01,
    copy: Annotated[bool, typer.Option("--copy", help="Copy files (default).")] = False,
    move: Annotated[bool, typer.Option("--move", help="Move files (verified).")] = False,
    symlink: Annotated[bool, typer.Option("--symlink", help="Symlink files.")] = False,
    from_marks: Annotated[bool, typer.Option(
        "--from-marks", help="Move the copies marked discard in the duplicate review (lookalike "
        "serve) to a quarantine folder, keeping their paths; nothing is deleted.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="--from-marks: also move the copies of a group in which every copy "
        "is marked discard (refused otherwise).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Organise files into folders; journalled, verified, undoable (lookalike undo)."""
    modes = [name for name, chosen in (("copy", copy), ("move", move), ("symlink", symlink))
             if chosen]
    if len(modes) > 1:
        raise ValueError("choose one of --copy, --move, --symlink")
    if from_marks:
        if by is not None or by_examples is not None or modes not in ([], ["move"]):
            raise ValueError("--from-marks moves the files marked discard: it takes no --by, "
                             "--by-examples, --copy or --symlink")
        _sort_from_marks(to, force=force, dry_run=dry_run, db=db, as_json=as_json)
        return
    if (by is None) == (by_examples is None):
        raise ValueError("say how to sort: --by clusters|groups|duplicates, --by-examples DIR, "
                         "or --from-marks")
    if to is None:
        raise ValueError("say where the sorted files go: --to FOLDER")
    from ..act.assign import by_examples as place_by_examples
    from ..act.assign import folders_by
    from ..act.follow import check_destination, describe_followed, follow_sort
    from ..act.sort import describe_plan, execute_plan, plan_sort
    from ..collection import Collection
    from .progress import counted

    mode = modes[0] if modes else "copy"
    # a move changes the catalogue: the writer lock is taken before the first file moves
    # and held until the catalogue follows, so no index runs in between
    collection = Collection.open(find_collection(db), writable=mode == "move" and not dry_run)
    placed = None
    if by is not None:
        assignments = folders_by(collection, by, k=k, threshold=threshold)
    elif by_examples is not None:  # one of the two: checked above
        placed = place_by_examples(collection, by_examples, min_margin=min_margin,
                                   threshold=threshold, top_k=top_k)
        assignments = placed.folders()
    plan = plan_sort(assignments, to.expanduser().absolute(), mode)
    check_destination(plan, collection.store)
    if dry_run:
        if as_json:
            print_json({"mode": plan.mode, "moves": [[str(m.source), str(m.destination)]
                                                     for m in plan.moves],
                        **({"placements": [_placement_json(p) for p in placed.placements],
                            "stayed": placed.stayed} if placed else {})})
        else:
            notes = ({p.path: f"  score {p.score:.3f}, margin {p.margin:.3f}"
                      for p in placed.placements} if placed else {})
            console.print("\n".join(describe_plan(plan, notes)), highlight=False)
            if placed:
                console.print(_examples_summary(placed), highlight=False)
        return
    with counted(f"[bold]{plan.mode}", disable=as_json) as bar:
        task = bar.add_task(plan.mode, total=len(plan.moves))
        result = execute_plan(plan, collection.directory / "journals",
                              progress=lambda done, total: bar.update(task, completed=done))
    followed = (follow_sort(collection.store, result.done, result.journal)
                if mode == "move" else None)
    if as_json:
        print_json({"journal": result.journal, "done": len(result.done),
                    "failed": [[str(m.source), reason] for m, reason in result.failed],
                    **({"collection": asdict(followed)} if followed else {})})
    else:
        console.print(f"{plan.mode}: {len(result.done)} files into {to}; journal "
                      f"{result.journal} (undo: lookalike undo)")
        for line in describe_followed(followed) if followed else []:
            console.print(line, highlight=False)
        for failed, reason in result.failed:
            errors.print(f"[red]failed:[/] {failed.source}: {reason}", highlight=False)
    if result.disk_full:
        errors.print(f"[red]the disk is full:[/] {len(result.failed)} file(s) were not sorted. "
                     "Free some space and run the same sort again, or run lookalike undo to "
                     f"put back the {len(result.done)} file(s) sorted", highlight=False)
    if result.failed:
        raise typer.Exit(1)


def _sort_from_marks(to: Path | None, *, force: bool, dry_run: bool, db: Path | None,
                     as_json: bool) -> None:
    """``sort --from-marks``: the review's discarded copies into quarantine."""
    from ..act.assign import local_root
    from ..act.follow import describe_followed
    from ..act.quarantine import apply_quarantine, describe, human_size, plan_quarantine
    from ..act.sort import describe_plan
    from ..collection import Collection
    from ..marks import MarkStore
    from .progress import counted

    collection = Collection.open(find_collection(db), writable=not dry_run)
    with closing(collection), closing(MarkStore(collection.directory)) as marks:
        files = {record.id: record for record in collection.files()}
        planned = plan_quarantine(local_root(collection), files, marks.all(), to, force=force)
        summary = describe(planned)
        if dry_run:
            if as_json:
                print_json(_quarantine_json(planned))
            else:
                console.print("\n".join([*summary, *describe_plan(planned.plan)[1:]]),
                              highlight=False)
            return
        with counted("[bold]quarantine", disable=as_json) as bar:
            task = bar.add_task("move", total=len(planned.plan.moves))
            result, followed = apply_quarantine(
                planned, collection.store,
                progress=lambda done, total: bar.update(task, completed=done))
        moved = sum(planned.sizes.get(move.source, 0) for move in result.done)
        if result.done:
            marks.record_run(str(result.journal), str(planned.folder), len(result.done), moved)
    if as_json:
        print_json({**_quarantine_json(planned), "journal": result.journal,
                    "done": len(result.done), "bytes_moved": moved,
                    "failed": [[str(m.source), reason] for m, reason in result.failed],
                    "collection": asdict(followed)})
    else:
        for line in summary[1:]:  # what was held back, and why
            console.print(line, highlight=False)
        console.print(f"moved {len(result.done)} file(s), {human_size(moved)} to "
                      f"{planned.folder}; journal {result.journal} (undo: lookalike undo)",
                      highlight=False)
        for line in describe_followed(followed):
            console.print(line, highlight=False)
        for failed, reason in result.failed:
            errors.print(f"[red]failed:[/] {failed.source}: {reason}", highlight=False)
    if result.failed:
        raise typer.Exit(1)


def _quarantine_json(planned: QuarantinePlan) -> dict[str, object]:
    return {"folder": str(planned.folder), "files": len(planned.plan.moves),
            "bytes": planned.bytes,
            "moves": [[str(m.source), str(m.destination)] for m in planned.plan.moves],
            "refused": [asdict(group) for group in planned.refused],
            "skipped": [asdict(item) for item in planned.skipped], "forced": planned.forced}


def _placement_json(placement: ExamplePlacement) -> dict[str, object]:
    return {"path": str(placement.path), "class": placement.label, "folder": placement.folder,
            "score": round(placement.score, 4), "margin": round(placement.margin, 4),
            "example_similarity": round(placement.example_similarity, 4)}


def _examples_summary(placed: ExampleSort) -> str:
    """Per class: how many images it gets and how many of its own are unsure."""
    lines = ["class: images (unsure)"]
    for label in placed.classes:
        mine = [p for p in placed.placements if p.label == label]
        unsure = sum(p.folder != label for p in mine)
        lines.append(f"  {label}: {len(mine) - unsure} ({unsure} unsure)")
    unsure_total = sum(p.folder != p.label for p in placed.placements)
    lines.append(f"unsure: {unsure_total} image(s) go to the unsure folder for review")
    if placed.stayed:
        lines.append(f"{placed.stayed} image(s) stay where they are (--threshold, --top-k)")
    return "\n".join(lines)


@friendly_errors
def undo(
    journal: Annotated[Path | None, typer.Argument(
        help="Journal of the run to undo (default: the newest).")] = None,
    db: DbOption = None,
) -> None:
    """Undo a sort run exactly, from its journal (safe to run again)."""
    from ..act.follow import describe_followed, follow_undo
    from ..act.quarantine import release_folder
    from ..act.sort import choose_journal, summarise_journal
    from ..act.sort import undo as undo_journal

    if journal is None:  # the last run that changed something, and how to pick another
        journal, notes = choose_journal(find_collection(db) / "journals")
        for note in notes:
            console.print(note, highlight=False)
        if journal is None:
            return
    store = _moved_collection(journal) if summarise_journal(journal).mode == "move" else None
    result = undo_journal(journal)
    if result.destination is not None:  # a quarantine folder left empty goes too
        release_folder(result.destination)
    console.print(f"undone: {len(result.undone)} files restored from {journal}")
    if store is not None:
        with closing(store):
            for line in describe_followed(follow_undo(store, result.undone, journal)):
                console.print(line, highlight=False)
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


def _moved_collection(journal: Path) -> Store | None:
    """The collection whose files a move journal moved, opened for writing (its lock held
    while the files move back, so no index runs in between), or None (with a note) when
    the journal lies outside a collection's ``journals`` folder."""
    from ..store import Store

    directory = journal.expanduser().absolute().parent.parent
    if (directory / Store.CATALOGUE).is_file():
        return Store.open(directory, writable=True)
    console.print(f"[yellow]note:[/] {journal} is not in a collection's journals folder: its "
                  "catalogue is not updated; run lookalike index FOLDER after the undo",
                  highlight=False)
    return None
