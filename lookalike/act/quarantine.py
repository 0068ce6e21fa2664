"""Act on a duplicate review: the copies marked ``discard`` move to a quarantine folder.

Nothing is deleted. The moves are a ``sort --move`` (:mod:`.sort`: journalled, verified,
undone by ``lookalike undo``) into a folder beside the photo folder, ``<folder>-duplicates``,
each file under its path inside the photo folder; the catalogue follows (:mod:`.follow`):
quarantined files leave the collection, and come back with an undo.

Before anything moves, the plan holds back what would lose a picture or act on a stale
decision:

* a group in which every copy is marked ``discard`` is refused (unless forced): the
  review left nothing in place;
* a file whose content changed since it was marked (its hash now differs from the one
  recorded with the mark), or that is gone, or that the catalogue now names otherwise,
  is skipped with the reason;
* a file that is the same file as a copy that stays (a link to it, a hard link) stays.

The decisions come from the duplicate-review marks (:class:`lookalike.marks.MarkStore`);
a mark's group is the key the review gave it: the sorted member ids joined by ``-``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..discover import is_remote
from ..ownership import MARKER, NotOwnedError, OwnedFolder
from .follow import check_destination, follow_sort, follow_undo, indexed_path
from .sort import (
    Progress,
    SortError,
    SortPlan,
    SortResult,
    UndoResult,
    execute_plan,
    plan_paths,
    undo,
)

if TYPE_CHECKING:
    from ..store import FileRecord, FollowedMoves, Store

PURPOSE = "duplicate quarantine"
SUFFIX = "-duplicates"


class Mark(Protocol):
    """What a review decision says (:class:`lookalike.marks.MarkRecord` has it)."""

    @property
    def file_id(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def content_hash(self) -> str | None: ...
    @property
    def decision(self) -> str: ...
    @property
    def group(self) -> str | None: ...


@dataclass(frozen=True)
class Skipped:
    path: str  # as the catalogue names it
    reason: str


@dataclass(frozen=True)
class RefusedGroup:
    key: str
    reason: str
    paths: list[str]  # the files marked discard that stay


@dataclass
class QuarantinePlan:
    plan: SortPlan  # the moves, into ``folder``
    folder: Path
    sizes: dict[Path, int] = field(default_factory=dict)  # bytes each move frees, by source
    skipped: list[Skipped] = field(default_factory=list)
    refused: list[RefusedGroup] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)  # keys of all-discard groups let through

    @property
    def bytes(self) -> int:
        """What the moves free in the photo folder (a link frees nothing)."""
        return sum(self.sizes.values())


def default_folder(root: Path) -> Path:
    """Where quarantined copies go unless told: ``<root>-duplicates`` beside the photo
    folder, outside what is indexed, so they leave the collection."""
    root = Path(root).expanduser().absolute()
    return root.parent / f"{root.name or 'photos'}{SUFFIX}"


def group_members(key: str | None, file_id: int) -> list[int]:
    """The ids a group key names (``"3-5-9"``), or the file alone without a usable key."""
    parts = (key or "").split("-")
    if key and all(part.isdigit() for part in parts):
        return [int(part) for part in parts]
    return [file_id]


def plan_quarantine(root: Path, files: Mapping[int, FileRecord], marks: Iterable[Mark],
                    folder: str | os.PathLike[str] | None = None, *, force: bool = False,
                    check_content: bool = True) -> QuarantinePlan:
    """The moves that put every file marked ``discard`` into the quarantine ``folder``
    (default :func:`default_folder`), each under its path inside ``root``; touches
    nothing. ``files``: the catalogue's files by id. ``force``: also move the copies of a
    group in which every copy is marked discard. ``check_content=False`` skips reading the
    files to compare their content with the marked one (a quick estimate of the bytes)."""
    if is_remote(root):
        raise SortError(f"quarantine moves local files only; {root} is on object storage")
    root = Path(root).expanduser().absolute()
    target = Path(folder).expanduser().absolute() if folder else default_folder(root)
    if indexed_path(root.resolve(), target.resolve() / "x") is not None:
        raise SortError(f"{target} is inside the indexed folder {root}: quarantined copies "
                        "would be indexed again. Choose a folder outside it")
    marks = list(marks)
    decisions = {mark.file_id: mark.decision for mark in marks}
    groups: dict[str, list[Mark]] = {}
    for mark in marks:
        if mark.decision == "discard":
            groups.setdefault(mark.group or f"file {mark.file_id}", []).append(mark)
    result = QuarantinePlan(SortPlan([], "move", target), target)
    targets: dict[Path, Path] = {}
    for key, marked in sorted(groups.items()):
        discards = [m for m in marked if m.file_id in files or os.path.lexists(root / m.path)]
        if not discards:
            continue  # they left the collection: quarantined already, or deleted
        staying = [files[i] for i in group_members(key, discards[0].file_id)
                   if decisions.get(i) != "discard" and i in files
                   and os.path.exists(root / files[i].path)]
        if not staying:
            if not force:
                why = _NOTHING_KEPT if discards[0].group else _NO_GROUP
                result.refused.append(RefusedGroup(key, why, sorted(m.path for m in discards)))
                continue
            result.forced.append(key)
        kept = {_identity(root / record.path) for record in staying} - {None}
        for mark in discards:
            reason = _why_not(root, files.get(mark.file_id), mark, kept, check_content)
            if reason:
                result.skipped.append(Skipped(mark.path, reason))
                continue
            source = root / mark.path
            targets[source] = Path(mark.path)
            info = os.lstat(source)
            result.sizes[source.absolute()] = 0 if stat.S_ISLNK(info.st_mode) else info.st_size
    result.plan = plan_paths(targets, target, "move")
    return result


_NOTHING_KEPT = ("every copy in this group is marked discard, so none would stay in place: "
                 "mark one keep (or 'keep all'), or force it")
_NO_GROUP = "marked discard outside any duplicate group: nothing says which copy stays"


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _why_not(root: Path, record: FileRecord | None, mark: Mark,
             kept: set[tuple[int, int] | None], check_content: bool) -> str | None:
    """Why a file marked discard stays, or None when it may move."""
    if record is None or record.path != mark.path:
        return "the catalogue no longer lists it under this name (moved or removed since)"
    path = root / mark.path
    relative = Path(mark.path)
    if relative.is_absolute() or ".." in relative.parts:
        return "its catalogue path is not inside the photo folder"
    if not os.path.lexists(path):
        return "no longer on disk"
    if _identity(path) in kept:
        return "it is the same file as a copy that stays (a link to it): moving it frees nothing"
    if not check_content:
        return None
    if mark.content_hash is None:
        return "it was not indexed when it was marked, so its content cannot be checked"
    if _content_hash(path) != mark.content_hash:
        return "changed since it was marked: review it again"
    return None


def _content_hash(path: Path) -> str | None:
    """The hash the catalogue records for a file's bytes, or None if it can't be read."""
    from ..decode import DecodeError, open_file, stream_hash

    try:
        with open_file(path) as handle:
            return stream_hash(handle)
    except (OSError, DecodeError):
        return None


def describe(plan: QuarantinePlan) -> list[str]:
    """The plan in words: a summary line, then what is held back and why."""
    moves = plan.plan.moves
    lines = [f"{len(moves)} file(s), {human_size(plan.bytes)} to {plan.folder}" if moves
             else "nothing to move to quarantine"]
    if plan.forced:
        lines.append(f"forced: {len(plan.forced)} group(s) in which every copy is marked "
                     "discard")
    lines += [f"refused group {group.key} ({', '.join(group.paths)}): {group.reason}"
              for group in plan.refused]
    lines += [f"skipped {item.path}: {item.reason}" for item in plan.skipped]
    return lines


def human_size(size: int) -> str:
    """``48.2 MB``: bytes in decimal units, as file browsers show them."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def claim_folder(folder: Path) -> None:
    """Take the quarantine folder as lookalike's: created, or found empty or already a
    quarantine; a folder of the user's with files in it is refused
    (:class:`~lookalike.ownership.NotOwnedError`)."""
    OwnedFolder.claim(folder, PURPOSE)


def apply_quarantine(plan: QuarantinePlan, store: Store, journal_dir: Path | None = None,
                     progress: Progress | None = None) -> tuple[SortResult, FollowedMoves]:
    """Move the planned files (journalled: ``lookalike undo`` puts them back) and let the
    catalogue follow. ``store``: the collection, open for writing (its lock held from
    before the first move to after the catalogue update)."""
    check_destination(plan.plan, store)
    if plan.plan.moves:
        claim_folder(plan.folder)
    result = execute_plan(plan.plan, journal_dir or store.directory / "journals", progress)
    return result, follow_sort(store, result.done, result.journal)


def undo_quarantine(journal: Path, store: Store) -> tuple[UndoResult, FollowedMoves]:
    """Put quarantined files back (sort's undo), the catalogue following; the quarantine
    folder goes once nothing but lookalike's marker is left in it."""
    result = undo(journal)
    followed = follow_undo(store, result.undone, journal)
    if result.destination is not None:
        release_folder(result.destination)
    return result, followed


def release_folder(folder: Path) -> bool:
    """Remove a quarantine folder left empty (its marker aside); True when removed.
    Any other folder, or one with anything else in it, stays."""
    try:
        entries = {entry.name for entry in os.scandir(folder)}
        if entries != {MARKER} or OwnedFolder.claim(folder, PURPOSE).purpose != PURPOSE:
            return False
        (folder / MARKER).unlink()
        folder.rmdir()
    except (OSError, NotOwnedError):
        return False
    return True
