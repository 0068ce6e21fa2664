"""Similarity search: an image's neighbours, and search by upload, text or vector. The hot
path: every query goes to the service's :class:`SearchBatcher`, which coalesces concurrent
ones into one :meth:`Collection.search_queries` call; the routes take the service from
the request (:func:`~.deps.service_of`), not through ``Depends``."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from ...collection import Neighbour
from .. import schemas
from ..deps import ERRORS, image_fields, no_image, service_of
from ..schemas import MAX_ID
from ..service import Service

router = APIRouter()


def search_response(query: str, k: int, found: list[Neighbour]) -> Response:
    """A :class:`schemas.SearchResult` as JSON, written directly: the search routes are the
    hot path, and FastAPI's validate-then-serialise of a returned model was a third of the
    event loop's time per request. A test holds this to the schema."""
    hits = [{"rank": rank, "score": round(n.score, 5), "image": image_fields(n.record)}
            for rank, n in enumerate(found, start=1)]
    body = json.dumps({"query": query, "k": k, "hits": hits}, separators=(",", ":"))
    return Response(body, media_type="application/json")


async def neighbours(service: Service, query: int | np.ndarray, k: int) -> list[Neighbour]:
    if isinstance(query, int) and not 0 <= query <= MAX_ID:
        raise no_image(query)
    try:
        return await asyncio.wrap_future(service.batcher.submit(query, k))
    except KeyError:
        raise HTTPException(404, f"image {query} is not embedded") from None
    except ValueError as error:
        raise HTTPException(400, str(error)) from None


@router.get("/api/images/{file_id:file_id}/similar", response_model=schemas.SearchResult,
            responses=ERRORS)
async def similar(request: Request, file_id: int,
                  k: Annotated[int, Query(ge=1, le=500)] = 12) -> Response:
    found = await neighbours(service_of(request), file_id, k)
    return search_response(f"id:{file_id}", k, found)


@router.post("/api/search", response_model=schemas.SearchResult, responses={
    400: {"model": schemas.Problem}, 413: {"model": schemas.Problem},
    415: {"model": schemas.Problem}, 422: {"model": schemas.Problem}},
    openapi_extra={"requestBody": {"content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"},
            "k": {"type": "integer"}}, "required": ["file"]}},
        "application/json": {"schema": schemas.SearchRequest.model_json_schema()},
    }}})
async def search(request: Request) -> Response:
    """Images like an uploaded image (multipart ``file``), a text (``{"text": ...}``,
    CLIP-style models only) or a vector (``{"vector": [...]}``), best first."""
    service = service_of(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        vector, query, k = await _upload_query(request, service)
    elif kind == "application/json":
        vector, query, k = await _json_query(request, service)
    else:
        raise HTTPException(415, "send multipart/form-data with a 'file', or JSON")
    k = max(1, min(k, 500))
    return search_response(query, k, await neighbours(service, vector, k))


async def _upload_query(request: Request, service: Service) -> tuple[np.ndarray, str, int]:
    """``(vector, query label, k)`` of an image uploaded as the multipart field ``file``."""
    form = await request.form(max_files=1, max_fields=8)
    upload, k = form.get("file"), _int(form.get("k"), 12)
    if not isinstance(upload, UploadFile):
        raise HTTPException(400, "send the image as the multipart field 'file'")
    if upload.size is not None and upload.size > service.max_upload_bytes:
        raise HTTPException(413, f"upload is larger than {service.max_upload_bytes:,} bytes")
    data = await upload.read()
    vector = await run_in_threadpool(service.embed_upload, data)
    return vector, f"upload:{upload.filename or 'image'}", k


async def _json_query(request: Request, service: Service) -> tuple[np.ndarray, str, int]:
    """``(vector, query label, k)`` of ``{"text": ...}`` or ``{"vector": [...]}``."""
    try:
        body = schemas.SearchRequest.model_validate(json.loads(await request.body()))
    except (ValueError, ValidationError, RecursionError) as error:  # [[[[...
        raise HTTPException(400, f"bad search request: {error}") from None
    if body.vector is not None:
        vector = np.asarray(body.vector, dtype=np.float32)
        if not np.all(np.isfinite(vector)):
            raise HTTPException(400, "the vector must hold finite numbers")
        return vector, "vector", body.k
    if body.text:
        if not await run_in_threadpool(service.text_search):
            raise HTTPException(400, "this collection's model embeds images only; "
                                "text search needs a CLIP-style model")
        return await run_in_threadpool(service.embed_text, body.text), f"text:{body.text}", body.k
    raise HTTPException(400, "give 'text' or 'vector' (or upload a 'file')")


def _int(value: object, default: int) -> int:
    try:
        return int(str(value)) if value is not None else default
    except ValueError:
        raise HTTPException(400, f"k must be a whole number, not {value!r}") from None
