"""The files themselves: ``/thumb/{id}`` (WebP, cached) and ``/image/{id}`` (the original).

Only indexed images are sent, and only from inside the collection's folder (links are
followed to see where they lead): :meth:`Service.original` raises NotServed otherwise.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from ...decode import read_file
from ...discover import is_remote
from ..deps import ERRORS, ServiceDep, record_or_404
from ..service import CONTENT_TYPES
from ..thumbs import DEFAULT_SIZE, nearest_size

router = APIRouter()


@router.get("/thumb/{file_id:file_id}", response_class=FileResponse,
            responses={**ERRORS, 200: {"content": {"image/webp": {}}}})
def thumb(file_id: int, service: ServiceDep,
          size: Annotated[int, Query(ge=16, le=2048)] = DEFAULT_SIZE) -> FileResponse:
    record = record_or_404(service, file_id)
    path = service.thumbnail(record, nearest_size(size))  # or NotServed
    return FileResponse(path, media_type="image/webp",
                        headers={"cache-control": "private, max-age=86400"})


@router.get("/image/{file_id:file_id}", response_class=FileResponse, responses=ERRORS)
def original(file_id: int, service: ServiceDep) -> Response:
    record = record_or_404(service, file_id)
    path = service.original(record)  # its real path, or NotServed
    media = CONTENT_TYPES.get(record.format or "", "application/octet-stream")
    headers = {"cache-control": "private, max-age=3600", "x-content-type-options": "nosniff"}
    if not is_remote(path):
        return FileResponse(path, media_type=media, headers=headers)
    # object storage: relayed through the server, which holds the credentials
    return Response(read_file(path), media_type=media, headers=headers)
