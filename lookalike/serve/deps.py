"""What the routers share: the service of the app that runs them, catalogue ids in paths,
and an image as the API shows it.

Routes take catalogue ids (``{id:file_id}``), never paths: a request can only reach files
the catalogue lists, and anything that is not a whole number is a plain 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from starlette.convertors import Convertor, register_url_convertor

from ..store import FileRecord
from . import schemas
from .schemas import MAX_ID
from .service import Service

ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": schemas.Problem}}


class FileIdConvertor(Convertor[int]):
    """``{name:file_id}``: a catalogue id in a path, digits only (``-1`` or ``1.0`` is a
    plain 404). A number past SQLite's integers becomes ``MAX_ID + 1``, which names no
    image (a 404 with a message) rather than a 500: SQLite cannot look it up, and Python
    refuses ``int()`` of over 4,300 digits."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        return int(value) if len(value) <= 19 else MAX_ID + 1

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("file_id", FileIdConvertor())


def service_of(request: Request) -> Service:
    """The app's one :class:`Service`. The search routes, the hot path, call this rather
    than take :data:`ServiceDep`: resolving a dependency is ~80 Python calls per request
    on the event loop, 5 % of a /similar's CPU (BENCHMARKS.md, "Web server")."""
    service: Service = request.app.state.service
    return service


async def get_service(request: Request) -> Service:
    """:func:`service_of` as a dependency (async: resolved on the event loop, no thread
    hop)."""
    return service_of(request)


ServiceDep = Annotated[Service, Depends(get_service)]


def no_image(file_id: int) -> HTTPException:
    if not 0 <= file_id <= MAX_ID:
        return HTTPException(404, f"no image with that id: ids are whole numbers from 1 to "
                             f"{MAX_ID}")
    return HTTPException(404, f"no image with id {file_id}")


def record_or_404(service: Service, file_id: int) -> FileRecord:
    record = service.file(file_id) if 0 <= file_id <= MAX_ID else None
    if record is None:
        raise no_image(file_id)
    return record


def image_fields(record: FileRecord) -> dict[str, Any]:
    """A catalogue record as the fields of :class:`schemas.Image`."""
    return {"id": record.id, "path": record.path, "width": record.width,
            "height": record.height, "size": record.size, "format": record.format,
            "status": record.status, "reason": record.reason, "thumb": f"/thumb/{record.id}",
            "url": f"/image/{record.id}"}


def image_model(record: FileRecord) -> schemas.Image:
    return schemas.Image(**image_fields(record))
