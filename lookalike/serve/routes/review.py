"""Finishing the duplicate review: which groups are done, accepting the finder's surest
suggestions, and acting on the decisions.

Acting moves the copies marked discard to a quarantine folder beside the photo folder
(:mod:`lookalike.act.quarantine`): a journalled, verified ``sort --move``, undone here or
by ``lookalike undo``; nothing is ever deleted. The catalogue follows the moves, under
the collection's writer lock (a 409 while an ``index`` runs).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi import Path as PathParameter

from ...act.quarantine import QuarantinePlan, apply_quarantine, plan_quarantine, undo_quarantine
from ...act.sort import SortError, summarise_journal
from ...discover import is_remote
from ...marks import MarkRecord
from ...ownership import NotOwnedError
from ...store import FileRecord, FollowedMoves, Store
from .. import schemas
from ..deps import ERRORS, ServiceDep
from ..origin import same_origin
from ..service import Service
from .analyses import ListedGroup, listed_duplicates

router = APIRouter()
_acting = threading.Lock()  # one apply or undo at a time
GROUP_KEY = "^[0-9]{1,19}(-[0-9]{1,19})+$"
CONFLICT: dict[int | str, dict[str, object]] = {409: {"model": schemas.Problem}}


@contextmanager
def _writable(service: Service) -> Iterator[Store]:
    """The collection open for writing, one action at a time; what the sorter refuses
    (a folder of the user's, object storage) is a 409 with its reason."""
    with _acting, closing(Store.open(service.directory, writable=True)) as store:
        try:
            yield store
        except (SortError, NotOwnedError) as error:
            raise HTTPException(409, str(error)) from None


def _root(service: Service) -> Path:
    """The photo folder, which acting on the review needs on local disk."""
    root = service.root
    if not isinstance(root, Path) or not _is_local(service):
        raise HTTPException(409, f"the review moves local files only; {root} is on object "
                            "storage: copy the images to a local folder and index that")
    return root


def _is_local(service: Service) -> bool:
    return isinstance(service.root, Path) and not is_remote(service.root)


def _plan(service: Service, files: Mapping[int, FileRecord] | None = None, *,
          force: bool = False, check_content: bool = True) -> QuarantinePlan:
    try:
        return plan_quarantine(_root(service), files or service.files().by_id,
                               service.marks.all(), force=force, check_content=check_content)
    except SortError as error:
        raise HTTPException(409, str(error)) from None


def _plan_model(service: Service, planned: QuarantinePlan) -> schemas.ReviewPlan:
    root = _root(service)
    by_path = {record.path: record.id for record in service.files().records}
    moves = [schemas.QuarantineMove(
        id=by_path.get(move.source.relative_to(root).as_posix()),
        path=move.source.relative_to(root).as_posix(), destination=str(move.destination),
        size=planned.sizes.get(move.source, 0)) for move in planned.plan.moves]
    return schemas.ReviewPlan(
        folder=str(planned.folder), files=len(moves), bytes=planned.bytes, moves=moves,
        refused=_refused(planned), skipped=_skipped(planned), forced=planned.forced)


def _refused(planned: QuarantinePlan) -> list[schemas.RefusedGroup]:
    return [schemas.RefusedGroup(key=g.key, reason=g.reason, paths=g.paths)
            for g in planned.refused]


def _skipped(planned: QuarantinePlan) -> list[schemas.SkippedFile]:
    return [schemas.SkippedFile(path=s.path, reason=s.reason) for s in planned.skipped]


def _followed(followed: FollowedMoves) -> schemas.FollowedChanges:
    return schemas.FollowedChanges(renamed=followed.renamed, departed=followed.departed,
                                   restored=followed.restored)


@router.post("/api/review/plan", response_model=schemas.ReviewPlan, responses=CONFLICT)
def plan_review(service: ServiceDep, body: schemas.ReviewPlanIn | None = None
                ) -> schemas.ReviewPlan:
    """Dry run: the files marked discard that would move to quarantine, the bytes freed,
    and what is held back (groups with no copy kept, files changed since marked)."""
    return _plan_model(service, _plan(service, force=bool(body and body.force)))


@router.post("/api/review/apply", response_model=schemas.ReviewApplied, responses=CONFLICT,
             dependencies=[Depends(same_origin)])
def apply_review(service: ServiceDep, body: schemas.ReviewPlanIn | None = None
                 ) -> schemas.ReviewApplied:
    """Move the files marked discard to the quarantine folder (journalled and verified;
    nothing is deleted); the collection follows. Undone by POST /api/review/undo."""
    with _writable(service) as store:
        planned = _plan(service, {r.id: r for r in store.files()},
                        force=bool(body and body.force))
        if not planned.plan.moves:
            raise HTTPException(409, "nothing to move: no file marked discard can move "
                                f"({len(planned.refused)} group(s) refused, "
                                f"{len(planned.skipped)} file(s) skipped)")
        result, followed = apply_quarantine(planned, store)
        freed = sum(planned.sizes.get(move.source, 0) for move in result.done)
        if result.done:
            service.marks.record_run(str(result.journal), str(planned.folder),
                                     len(result.done), freed)
    root = _root(service)
    return schemas.ReviewApplied(
        journal=result.journal.name, folder=str(planned.folder), done=len(result.done),
        bytes=freed, failed=[schemas.FailedFile(path=move.source.relative_to(root).as_posix(),
                                                reason=reason)
                             for move, reason in result.failed],
        refused=_refused(planned), skipped=_skipped(planned), collection=_followed(followed))


@router.post("/api/review/undo", response_model=schemas.ReviewUndone, responses=CONFLICT,
             dependencies=[Depends(same_origin)])
def undo_review(service: ServiceDep) -> schemas.ReviewUndone:
    """Put back the files of the last review applied that is not undone yet."""
    with _writable(service) as store:
        run = next((run for run in service.marks.runs() if _pending(run.journal)), None)
        if run is None:
            raise HTTPException(409, "no applied review to undo")
        result, followed = undo_quarantine(Path(run.journal), store)
    return schemas.ReviewUndone(
        journal=Path(run.journal).name, undone=len(result.undone),
        kept=[schemas.FailedFile(path=str(path), reason=why) for path, why in result.kept],
        failed=[schemas.FailedFile(path=str(move.destination), reason=why)
                for move, why in result.failed], collection=_followed(followed))


def _pending(journal: str) -> bool:
    """Whether files of the run ``journal`` are still in quarantine (it says so)."""
    try:
        return summarise_journal(journal).pending > 0
    except (OSError, SortError):  # gone or unreadable: nothing this route can undo
        return False


@router.get("/api/review/status", response_model=schemas.ReviewStatus)
def review_status(
    service: ServiceDep,
    threshold: Annotated[float | None, Query(ge=-1, le=1)] = None,
    verify: bool = True,
) -> schemas.ReviewStatus:
    """Progress of the review: groups reviewed of all, what applying would move now
    (sizes on disk, contents not read: nothing on object storage, which is not moved), and
    the last review applied."""
    _, listed = listed_duplicates(service, threshold, verify)
    reviewed = service.marks.reviewed()
    planned = _plan(service, check_content=False) if _is_local(service) else None
    runs = service.marks.runs()
    last = runs[0] if runs else None
    return schemas.ReviewStatus(
        reviewed=sum(group.key in reviewed for group in listed), total=len(listed),
        files_to_move=len(planned.plan.moves) if planned else 0,
        bytes_to_free=planned.bytes if planned else 0,
        refused=len(planned.refused) if planned else 0,
        last_run=None if last is None else schemas.ReviewRun(
            journal=Path(last.journal).name, folder=last.folder, files=last.files,
            bytes=last.bytes, applied_at=last.applied_at, undone=not _pending(last.journal)))


@router.post("/api/review/groups/{key}", response_model=schemas.ReviewGroupState,
             responses=ERRORS, dependencies=[Depends(same_origin)])
def review_group(key: Annotated[str, PathParameter(pattern=GROUP_KEY)], body: schemas.ReviewGroupIn,
                 service: ServiceDep) -> schemas.ReviewGroupState:
    """Mark a group reviewed (or not). ``keep-all`` marks every copy keep, ``not-duplicates``
    every one not-duplicate; null leaves its marks as they are."""
    by_id = service.files().by_id
    ids = [int(part) for part in key.split("-")]
    present = [by_id[i] for i in ids if i in by_id]
    if not present:
        raise HTTPException(404, f"no image of group {key} is in the collection")
    if body.reviewed and body.decision is not None:
        decision = "keep" if body.decision == "keep-all" else "not-duplicate"
        service.marks.save(MarkRecord(r.id, r.path, r.content_hash, decision, key, None, 0.0)
                           for r in present)
    service.marks.set_reviewed([key], body.reviewed, body.decision)
    marks = service.marks.decisions(by_id)
    return schemas.ReviewGroupState(
        key=key, reviewed=body.reviewed, decision=body.decision if body.reviewed else None,
        marks={r.id: marks[r.id] for r in present if r.id in marks})  # type: ignore[misc]


@router.post("/api/review/accept-suggestions", response_model=schemas.AcceptedSuggestions,
             dependencies=[Depends(same_origin)])
def accept_suggestions(body: schemas.AcceptSuggestionsIn, service: ServiceDep
                       ) -> schemas.AcceptedSuggestions:
    """For every unreviewed group of the given tiers none of whose files is marked yet:
    the suggested keeper keep, the other copies discard, the group reviewed."""
    _, listed = listed_duplicates(service, body.threshold, body.verify)
    by_id = service.files().by_id
    marked, reviewed = service.marks.decisions(by_id), service.marks.reviewed()
    chosen: list[ListedGroup] = []
    passed_over = 0
    for group in listed:
        if group.key in reviewed or _tier(group) not in body.tiers:
            continue
        if any(i in marked for i in group.ids):
            passed_over += 1
            continue
        chosen.append(group)
    service.marks.save(
        MarkRecord(i, by_id[i].path, by_id[i].content_hash,
                   "keep" if i == group.keeper else "discard", group.key, None, 0.0)
        for group in chosen for i in group.ids)
    service.marks.set_reviewed([group.key for group in chosen])
    return schemas.AcceptedSuggestions(groups=len(chosen),
                                       files=sum(len(g.ids) for g in chosen),
                                       passed_over=passed_over)


def _tier(group: ListedGroup) -> str:
    """The finder's tier of a group (exact, edited, similar); a finder that gives none
    says only exact or near, and a near group is never taken for an edited copy."""
    return str(getattr(group.group, "tier", group.group.kind))
