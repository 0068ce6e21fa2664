"""Duplicate-review decisions, recorded (``/api/review`` acts on them)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response

from .. import schemas
from ..deps import ERRORS, ServiceDep, no_image, record_or_404
from ..marks import MarkRecord
from ..origin import same_origin
from ..schemas import MAX_ID

router = APIRouter()


@router.post("/api/marks", response_model=schemas.MarkList, responses=ERRORS,
             dependencies=[Depends(same_origin)])
def save_marks(body: schemas.MarksIn | schemas.MarkIn, service: ServiceDep) -> schemas.MarkList:
    """Record duplicate-review decisions (one per file; a new one replaces the old).
    Only recorded: POST /api/review/apply acts on them."""
    items = body.marks if isinstance(body, schemas.MarksIn) else [body]
    records = []
    for item in items:
        record = record_or_404(service, item.file_id)
        records.append(MarkRecord(record.id, record.path, record.content_hash,
                                  item.decision, item.group, item.note, 0.0))
    service.marks.save(records)
    return list_marks(service)


@router.get("/api/marks", response_model=schemas.MarkList)
def list_marks(service: ServiceDep) -> schemas.MarkList:
    marks = [schemas.Mark(file_id=m.file_id, path=m.path, decision=m.decision,  # type: ignore[arg-type]
                          group=m.group, note=m.note, updated_at=m.updated_at)
             for m in service.marks.all(service.files().by_id)]
    return schemas.MarkList(total=len(marks), marks=marks)


@router.delete("/api/marks/{file_id:file_id}", status_code=204, responses=ERRORS,
               dependencies=[Depends(same_origin)])
def delete_mark(file_id: int, service: ServiceDep) -> Response:
    if not 0 <= file_id <= MAX_ID:
        raise no_image(file_id)
    if not service.marks.delete(file_id):
        raise HTTPException(404, f"no mark for image {file_id}")
    return Response(status_code=204)


@router.get("/api/marks.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def marks_csv(service: ServiceDep) -> Response:
    return Response(service.marks.to_csv(service.root, service.files().by_id),
                    media_type="text/csv",
                    headers={"content-disposition": 'attachment; filename="marks.csv"'})
