"""Facts: the collection's counts and model, the image list, one image's metadata."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from .. import schemas
from ..deps import ERRORS, ServiceDep, image_model, record_or_404
from .analyses import clusters_or_422

router = APIRouter()


@router.get("/api/stats", response_model=schemas.Stats)
def stats(service: ServiceDep) -> schemas.Stats:
    info = service.info()
    record = service.collection.model
    return schemas.Stats(
        root=str(info.root), directory=str(info.directory),
        files=sum(info.counts.values()), embedded=info.embedded,
        skipped=info.counts.get("skipped", 0), pending=info.counts.get("pending", 0),
        model=info.model, model_spec=info.model_spec, dim=info.dim,
        index_kind=info.index_kind, index_fresh=info.index_fresh,
        text_search=service.text_search(), version=record.version if record else 0)


@router.get("/api/images", response_model=schemas.ImagePage)
def images(
    service: ServiceDep,
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
        clusters = clusters_or_422(service, "auto")
        listed = clusters.ids(clusters.clustering.members(cluster))
    elif group is not None:
        groups = service.groups(threshold)
        if not 1 <= group <= len(groups.groups):
            raise HTTPException(404, f"no group {group} at threshold "
                                f"{groups.threshold.value:.4g}")
        listed = groups.ids(groups.groups[group - 1].members)
    if listed is not None:
        records = [table.by_id[i] for i in listed if i in table.by_id]
    if status != "all":
        records = [r for r in records if r.status == status]
    if sort != "id":  # filtered lists keep their own order (most central first)
        keys = {"id": lambda r: r.id, "path": lambda r: r.path, "size": lambda r: r.size,
                "resolution": lambda r: (r.width or 0) * (r.height or 0)}
        records = sorted(records, key=keys[sort.lstrip("-")], reverse=sort.startswith("-"))
    return schemas.ImagePage(total=len(records), offset=offset, limit=limit,
                             items=[image_model(r) for r in records[offset:offset + limit]])


@router.get("/api/images/{file_id:file_id}", response_model=schemas.Image, responses=ERRORS)
def image_info(file_id: int, service: ServiceDep) -> schemas.Image:
    return image_model(record_or_404(service, file_id))
