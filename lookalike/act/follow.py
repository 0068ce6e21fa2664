"""The catalogue follows what a sort does to the collection's own files.

A ``--move`` changes where images are; the catalogue is brought along in one transaction
once the moves are done (:func:`follow_sort`), and back again after an ``undo``
(:func:`follow_undo`): a file moved within the folder keeps its row (same id, same
embeddings) under its new path; a file moved out of the folder leaves the collection; one
moved back in gets its row back. The CLI holds the collection's writer lock from before
the first move to after the catalogue update, so no ``index`` runs in between.

Should the process die between the moves and the update, the catalogue still names the
old paths; the next ``index`` finds each moved file under its new name (same size, mtime
and content hash) and renames its row rather than embedding it again
(:meth:`~lookalike.store.Store.sync_files`).

A copy or a link into the folder would be indexed a second time by the next ``index``:
:func:`check_destination` refuses it before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from ..discover import EXCLUDED, catalogue_path
from ..store import FollowedMoves, Store
from .sort import Move, SortError, SortPlan


def indexed_path(root: Path, path: Path) -> str | None:
    """``path`` as the catalogue of the folder ``root`` names it, or None where an
    ``index`` of ``root`` would not find it (outside, or under a folder it skips).

    The folder holding ``path`` is resolved (``--to`` may reach the folder through a
    link); the name itself is not: a moved link is catalogued under its own name."""
    try:
        relative = path.parent.resolve().relative_to(root) / path.name
    except ValueError:
        return None
    if set(relative.parts) & set(EXCLUDED):
        return None
    return catalogue_path(relative)


def check_destination(plan: SortPlan, store: Store) -> None:
    """Refuse a destination whose files the next ``index`` would count twice.

    A copy or link inside the collection's folder is a second name for an image that is
    indexed already; a destination inside the collection's own folder is lookalike's.
    Raises :class:`~lookalike.act.sort.SortError` before anything is written."""
    if plan.destination is None or not isinstance(store.root, Path):
        return
    target = plan.destination.resolve()
    if target.is_relative_to(store.directory.resolve()):
        raise SortError(f"{plan.destination} is inside the collection's own folder "
                        f"{store.directory}: choose a folder of yours for --to")
    if plan.mode != "move" and indexed_path(store.root, target / "x") is not None:
        raise SortError(
            f"--{plan.mode} into {plan.destination}, inside the indexed folder {store.root}, "
            "would index every sorted image twice: use --move (the collection follows the "
            f"files), or a --to folder outside {store.root}")


def follow_sort(store: Store, done: list[Move], journal: Path) -> FollowedMoves:
    """After a ``--move`` sort: rows follow the files it moved (see the module doc)."""
    return _follow(store, done, journal)


def follow_undo(store: Store, undone: list[Move], journal: Path) -> FollowedMoves:
    """After its ``undo``: rows go back with the files it moved back."""
    return _follow(store, [Move(move.destination, move.source) for move in undone], journal)


def _follow(store: Store, moves: list[Move], journal: Path) -> FollowedMoves:
    """Rows follow ``moves``; what a move out of the folder removes is kept under the
    journal's name: unique in its folder, and unchanged when the collection moves."""
    root = store.root
    if not isinstance(root, Path):  # sorting moves local files only
        return FollowedMoves(0, 0, 0)
    return store.follow_moves([(indexed_path(root, move.source),
                                indexed_path(root, move.destination)) for move in moves],
                              journal.name)


def describe_followed(followed: FollowedMoves) -> list[str]:
    """One line for each kind of change to the collection, for the sort's summary."""
    lines = []
    if followed.renamed:
        lines.append(f"the collection follows: {followed.renamed} file(s) renamed in its "
                     "catalogue (embeddings kept)")
    if followed.departed:
        lines.append(f"{followed.departed} files left the collection's folder: they are no "
                     "longer indexed (lookalike undo brings them back)")
    if followed.restored:
        lines.append(f"{followed.restored} file(s) came back into the collection's folder: "
                     "indexed again")
    return lines
