"""The FastAPI application: JSON API, thumbnails, originals and the page, in one process.

Routes take catalogue ids (``{id:file_id}``), never paths: a request can only reach files
the catalogue lists, and anything that is not a whole number is a plain 404. Only indexed
images are sent, and only from inside the collection's folder (links are followed to see
where they lead). Every request body is capped as it arrives. Without a token on
loopback, requests must name a loopback host (no DNS rebinding).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import UploadFile

from ..collection import Neighbour
from ..decode import DecodeError, FileGone, read_file
from ..discover import is_remote
from ..embed import ModelUnavailable
from ..store import FileRecord, StoreError
from . import schemas
from .auth import LocalHostMiddleware, TokenMiddleware, is_loopback
from .limits import BodyLimitMiddleware
from .marks import MarkRecord
from .page import render_page
from .schemas import MAX_ID
from .service import CONTENT_TYPES, MAX_BODY_BYTES, NotServed, Service
from .thumbs import DEFAULT_SIZE, nearest_size

STATIC = Path(__file__).parent / "static"
ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": schemas.Problem}}
MAX_CLUSTERS = 1000
MULTIPART_OVERHEAD = 65536  # an upload's form boundaries and headers, beside the image


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


def no_image(file_id: int) -> HTTPException:
    if not 0 <= file_id <= MAX_ID:
        return HTTPException(404, f"no image with that id: ids are whole numbers from 1 to "
                             f"{MAX_ID}")
    return HTTPException(404, f"no image with id {file_id}")


def image_fields(record: FileRecord) -> dict[str, Any]:
    """A catalogue record as the fields of :class:`schemas.Image`."""
    return {"id": record.id, "path": record.path, "width": record.width,
            "height": record.height, "size": record.size, "format": record.format,
            "status": record.status, "reason": record.reason, "thumb": f"/thumb/{record.id}",
            "url": f"/image/{record.id}"}


def image_model(record: FileRecord) -> schemas.Image:
    return schemas.Image(**image_fields(record))


def search_response(query: str, k: int, found: list[Neighbour]) -> Response:
    """A :class:`schemas.SearchResult` as JSON, written directly: the search routes are the
    hot path, and FastAPI's validate-then-serialise of a returned model was a third of the
    event loop's time per request. A test holds this to the schema."""
    hits = [{"rank": rank, "score": round(n.score, 5), "image": image_fields(n.record)}
            for rank, n in enumerate(found, start=1)]
    body = json.dumps({"query": query, "k": k, "hits": hits}, separators=(",", ":"))
    return Response(body, media_type="application/json")


def create_app(directory: str | Path, *, token: str | None = None, host: str = "127.0.0.1",
               max_upload_bytes: int | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The app over the collection at ``directory`` (a collection dir or its image folder).

    ``host`` is the address the server listens on: on loopback without a ``token``, only
    requests to localhost, 127.0.0.1, [::1] or ``host`` are answered (403 otherwise).
    Request bodies are capped at ``max_body_bytes``, an image upload to search by at
    ``max_upload_bytes`` (413 past either, also for chunked bodies).
    """
    options = {} if max_upload_bytes is None else {"max_upload_bytes": max_upload_bytes}
    service = Service(directory, **options)
    # FastAPI's native OpenTelemetry stays off: checking per request whether a tracer is
    # configured cost ~3 % of the event loop's time, for spans nobody collects
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False},
                  title="lookalike", version="0.1.0",
                  description=f"Images in {service.root}: similarity search, duplicates, "
                  "groups, clusters, outliers. Read-only: the server never deletes or moves "
                  "a file; duplicate-review marks are only recorded.")
    app.router.add_event_handler("shutdown", service.close)

    def body_limit(scope: Any) -> tuple[int, str]:
        kind = next((v for k, v in scope.get("headers", []) if k.lower() == b"content-type"),
                    b"")
        if scope["path"] == "/api/search" and kind.lower().startswith(b"multipart/form-data"):
            return (service.max_upload_bytes + MULTIPART_OVERHEAD,
                    f"upload is larger than {service.max_upload_bytes:,} bytes")
        return max_body_bytes, f"request body is larger than {max_body_bytes:,} bytes"

    # the last added runs first: the host check, the token, then the body cap
    app.add_middleware(BodyLimitMiddleware, limit=body_limit)
    if token:
        app.add_middleware(TokenMiddleware, token=token)
    elif is_loopback(host):
        app.add_middleware(LocalHostMiddleware, bound=host)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(NotServed)
    async def not_served(_: Request, error: NotServed) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(DecodeError)
    async def bad_image(_: Request, error: DecodeError) -> JSONResponse:
        return JSONResponse({"detail": f"not a usable image: {error}"}, status_code=422)

    @app.exception_handler(FileGone)  # e.g. an object deleted from the bucket since
    async def gone(_: Request, error: FileGone) -> JSONResponse:
        return JSONResponse({"detail": f"no longer in the folder: {error}"}, status_code=404)

    @app.exception_handler(ModelUnavailable)
    async def no_model(_: Request, error: ModelUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503)

    @app.exception_handler(StoreError)
    async def store_error(_: Request, error: StoreError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)

    def record_or_404(file_id: int) -> FileRecord:
        record = service.file(file_id) if 0 <= file_id <= MAX_ID else None
        if record is None:
            raise no_image(file_id)
        return record

    def clusters_or_422(k: int | str) -> tuple[np.ndarray, Any]:
        try:
            return service.clusters(k)
        except ValueError as error:  # k past the number of images, too few images
            raise HTTPException(422, f"no clusters: {error}") from None

    async def neighbours(query: int | np.ndarray, k: int) -> list[Neighbour]:
        if isinstance(query, int) and not 0 <= query <= MAX_ID:
            raise no_image(query)
        try:
            return await asyncio.wrap_future(service.batcher.submit(query, k))
        except KeyError:
            raise HTTPException(404, f"image {query} is not embedded") from None
        except ValueError as error:
            raise HTTPException(400, str(error)) from None

    # -- the page ------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(render_page(service))

    # -- facts ---------------------------------------------------------------------------------
    @app.get("/api/stats", response_model=schemas.Stats)
    def stats() -> schemas.Stats:
        info = service.info()
        record = service.collection.model
        return schemas.Stats(
            root=str(info.root), directory=str(info.directory),
            files=sum(info.counts.values()), embedded=info.embedded,
            skipped=info.counts.get("skipped", 0), pending=info.counts.get("pending", 0),
            model=info.model, model_spec=info.model_spec, dim=info.dim,
            index_kind=info.index_kind, index_fresh=info.index_fresh,
            text_search=service.text_search(), version=record.version if record else 0)

    @app.get("/api/images", response_model=schemas.ImagePage)
    def images(
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 60,
        cluster: Annotated[int | None, Query(description="only this cluster (k=auto)")] = None,
        group: Annotated[int | None, Query(description="only this group number")] = None,
        threshold: Annotated[float | None, Query(
            gt=0, le=1, description="for group (default: the calibrated one)")] = None,
        status: Annotated[str, Query(pattern="^(ok|skipped|pending|all)$")] = "ok",
        sort: Annotated[str, Query(pattern="^-?(id|path|size|resolution)$")] = "id",
    ) -> schemas.ImagePage:
        table = service.files()
        records, listed = table.records, None  # listed: one cluster's or group's file ids
        if cluster is not None:
            file_ids, clustering = clusters_or_422("auto")
            listed = file_ids[clustering.members(cluster)]
        elif group is not None:
            file_ids, found, used = service.groups(threshold)
            if not 1 <= group <= len(found):
                raise HTTPException(404, f"no group {group} at threshold {used.value:.4g}")
            listed = file_ids[found[group - 1].members]
        if listed is not None:
            records = [table.by_id[int(i)] for i in listed if int(i) in table.by_id]
        if status != "all":
            records = [r for r in records if r.status == status]
        if sort != "id":  # filtered lists keep their own order (most central first)
            keys = {"id": lambda r: r.id, "path": lambda r: r.path, "size": lambda r: r.size,
                    "resolution": lambda r: (r.width or 0) * (r.height or 0)}
            records = sorted(records, key=keys[sort.lstrip("-")], reverse=sort.startswith("-"))
        return schemas.ImagePage(total=len(records), offset=offset, limit=limit,
                                 items=[image_model(r) for r in records[offset:offset + limit]])

    @app.get("/api/images/{file_id:file_id}", response_model=schemas.Image, responses=ERRORS)
    def image_info(file_id: int) -> schemas.Image:
        return image_model(record_or_404(file_id))

    @app.get("/api/images/{file_id:file_id}/similar", response_model=schemas.SearchResult,
             responses=ERRORS)
    async def similar(file_id: int, k: Annotated[int, Query(ge=1, le=500)] = 12
                      ) -> Response:
        return search_response(f"id:{file_id}", k, await neighbours(file_id, k))

    @app.post("/api/search", response_model=schemas.SearchResult, responses={
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
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            form = await request.form(max_files=1, max_fields=8)
            upload, k = form.get("file"), _int(form.get("k"), 12)
            if not isinstance(upload, UploadFile):
                raise HTTPException(400, "send the image as the multipart field 'file'")
            if upload.size is not None and upload.size > service.max_upload_bytes:
                raise HTTPException(413, f"upload is larger than "
                                    f"{service.max_upload_bytes:,} bytes")
            data = await upload.read()
            vector = await run_in_threadpool(service.embed_upload, data)
            query = f"upload:{upload.filename or 'image'}"
        elif kind == "application/json":
            try:
                body = schemas.SearchRequest.model_validate(json.loads(await request.body()))
            except (ValueError, ValidationError, RecursionError) as error:  # [[[[...
                raise HTTPException(400, f"bad search request: {error}") from None
            k = body.k
            if body.vector is not None:
                vector, query = np.asarray(body.vector, dtype=np.float32), "vector"
                if not np.all(np.isfinite(vector)):
                    raise HTTPException(400, "the vector must hold finite numbers")
            elif body.text:
                if not await run_in_threadpool(service.text_search):
                    raise HTTPException(400, "this collection's model embeds images only; "
                                        "text search needs a CLIP-style model")
                vector = await run_in_threadpool(service.embed_text, body.text)
                query = f"text:{body.text}"
            else:
                raise HTTPException(400, "give 'text' or 'vector' (or upload a 'file')")
        else:
            raise HTTPException(415, "send multipart/form-data with a 'file', or JSON")
        k = max(1, min(k, 500))
        return search_response(query, k, await neighbours(vector, k))

    # -- analyses ------------------------------------------------------------------------------
    @app.get("/api/duplicates", response_model=schemas.DuplicatePage)
    def duplicates(
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        threshold: Annotated[float | None, Query(ge=-1, le=1)] = None,
        verify: bool = True,
    ) -> schemas.DuplicatePage:
        report = service.duplicates(threshold, verify)
        table = service.files()
        marks = service.marks.decisions(table.by_id)
        listed = []  # groups none of whose files is gone since
        for group in report.exact + report.near:
            ids = [int(report.file_ids[m]) for m in group.members]
            if all(i in table.by_id for i in ids):
                listed.append((group, ids))
        page = [schemas.DuplicateGroup(  # models for this page only
            key="-".join(str(i) for i in sorted(ids)), kind=group.kind,
            keeper=int(report.file_ids[group.keeper]),
            members=[schemas.DuplicateMember(
                image=image_model(table.by_id[i]), score=round(float(s), 4),
                keeper=m == group.keeper, mark=marks.get(i))
                for i, m, s in zip(ids, group.members, group.scores)])
            for group, ids in listed[offset:offset + limit]]
        return schemas.DuplicatePage(total=len(listed), offset=offset, limit=limit,
                                     threshold=report.threshold, verified=report.verified,
                                     groups=page)

    @app.get("/api/groups", response_model=schemas.GroupPage)
    def groups(
        threshold: Annotated[float | None, Query(
            gt=0, le=1, description="cosine two images need to share a group; default: the "
            "near-duplicate threshold calibrated for the collection's model")] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        members: Annotated[int, Query(ge=1, le=1000)] = 12,
    ) -> schemas.GroupPage:
        file_ids, found, used = service.groups(threshold)
        by_id = service.files().by_id
        page = [schemas.Group(
            number=number, size=g.size, mean_similarity=round(g.mean_similarity, 4),
            medoid=image_model(by_id[int(file_ids[g.medoid])]),
            members=[image_model(by_id[int(file_ids[m])]) for m in g.members[:members]])
            for number, g in enumerate(found[offset:offset + limit], start=offset + 1)]
        return schemas.GroupPage(total=len(found), offset=offset, limit=limit,
                                 threshold=None if np.isnan(used.value) else used.value,
                                 calibrated=used.calibrated, groups=page)

    @app.get("/api/clusters", response_model=schemas.ClusterList)
    def clusters(k: Annotated[str, Query(
                     pattern="^(auto|[0-9]+)$",
                     description=f"auto, or a number of clusters from 1 to {MAX_CLUSTERS}")
                 ] = "auto",
                 members: Annotated[int, Query(ge=1, le=1000)] = 12) -> schemas.ClusterList:
        if k != "auto" and not (len(k) <= 6 and 1 <= int(k) <= MAX_CLUSTERS):
            raise HTTPException(422, f"k must be auto or a number from 1 to {MAX_CLUSTERS}, "
                                f"not {k[:20]}")
        file_ids, result = clusters_or_422(k if k == "auto" else int(k))
        by_id = service.files().by_id
        listed = []
        for c in range(result.k):
            central = result.members(c)[:members]
            medoid = int(result.medoids[c])
            listed.append(schemas.Cluster(
                cluster=c, size=int(result.sizes[c]),
                medoid=image_model(by_id[int(file_ids[medoid])]) if medoid >= 0 else None,
                members=[image_model(by_id[int(file_ids[m])]) for m in central]))
        return schemas.ClusterList(k=result.k, clusters=listed)

    @app.get("/api/outliers", response_model=schemas.OutlierList)
    def outliers(fraction: Annotated[float, Query(gt=0, le=1)] = 0.05) -> schemas.OutlierList:
        file_ids, scores, top = service.top_outliers(fraction)
        by_id = service.files().by_id
        return schemas.OutlierList(fraction=fraction, total=len(file_ids), items=[
            schemas.Outlier(rank=r, score=round(float(scores[p]), 4),
                            image=image_model(by_id[int(file_ids[p])]))
            for r, p in enumerate(top, start=1)])

    @app.get("/api/map", response_model=schemas.MapData)
    def map_points(method: Annotated[str, Query(pattern="^(auto|pca|tsne|umap)$")] = "auto"
                   ) -> schemas.MapData:
        try:
            file_ids, layout, used, labels = service.map(method)
        except ValueError as error:  # too few images to lay out
            raise HTTPException(422, f"no map: {error}") from None
        return schemas.MapData(method=used, points=[
            schemas.MapPoint(id=int(i), x=round(float(x), 4), y=round(float(y), 4),
                             cluster=int(c))
            for i, (x, y), c in zip(file_ids, layout, labels)])

    # -- marks ---------------------------------------------------------------------------------
    @app.post("/api/marks", response_model=schemas.MarkList, responses=ERRORS)
    def save_marks(body: schemas.MarksIn | schemas.MarkIn) -> schemas.MarkList:
        """Record duplicate-review decisions (one per file; a new one replaces the old).
        Only recorded: the server never deletes or moves a file."""
        items = body.marks if isinstance(body, schemas.MarksIn) else [body]
        records = []
        for item in items:
            record = record_or_404(item.file_id)
            records.append(MarkRecord(record.id, record.path, record.content_hash,
                                      item.decision, item.group, item.note, 0.0))
        service.marks.save(records)
        return list_marks()

    @app.get("/api/marks", response_model=schemas.MarkList)
    def list_marks() -> schemas.MarkList:
        marks = [schemas.Mark(file_id=m.file_id, path=m.path, decision=m.decision,  # type: ignore[arg-type]
                              group=m.group, note=m.note, updated_at=m.updated_at)
                 for m in service.marks.all(service.files().by_id)]
        return schemas.MarkList(total=len(marks), marks=marks)

    @app.delete("/api/marks/{file_id:file_id}", status_code=204, responses=ERRORS)
    def delete_mark(file_id: int) -> Response:
        if not 0 <= file_id <= MAX_ID:
            raise no_image(file_id)
        if not service.marks.delete(file_id):
            raise HTTPException(404, f"no mark for image {file_id}")
        return Response(status_code=204)

    @app.get("/api/marks.csv", response_class=Response,
             responses={200: {"content": {"text/csv": {}}}})
    def marks_csv() -> Response:
        return Response(service.marks.to_csv(service.root, service.files().by_id),
                        media_type="text/csv",
                        headers={"content-disposition": 'attachment; filename="marks.csv"'})

    # -- files ---------------------------------------------------------------------------------
    @app.get("/thumb/{file_id:file_id}", response_class=FileResponse,
             responses={**ERRORS, 200: {"content": {"image/webp": {}}}})
    def thumb(file_id: int, size: Annotated[int, Query(ge=16, le=2048)] = DEFAULT_SIZE
              ) -> FileResponse:
        path = service.thumbnail(record_or_404(file_id), nearest_size(size))  # or NotServed
        return FileResponse(path, media_type="image/webp",
                            headers={"cache-control": "private, max-age=86400"})

    @app.get("/image/{file_id:file_id}", response_class=FileResponse, responses=ERRORS)
    def original(file_id: int) -> Response:
        record = record_or_404(file_id)
        path = service.original(record)  # its real path, or NotServed
        media = CONTENT_TYPES.get(record.format or "", "application/octet-stream")
        headers = {"cache-control": "private, max-age=3600", "x-content-type-options": "nosniff"}
        if not is_remote(path):
            return FileResponse(path, media_type=media, headers=headers)
        # object storage: relayed through the server, which holds the credentials
        return Response(read_file(path), media_type=media, headers=headers)

    return app


def _int(value: object, default: int) -> int:
    try:
        return int(str(value)) if value is not None else default
    except ValueError:
        raise HTTPException(400, f"k must be a whole number, not {value!r}") from None
