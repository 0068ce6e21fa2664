"""The analyses, each cached per parameters by the service: duplicates, threshold groups,
clusters, outliers and the 2-D map."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from ...analyse.results import ClusterReport
from .. import schemas
from ..deps import ServiceDep, image_model
from ..service import Service

MAX_CLUSTERS = 1000

router = APIRouter()


def clusters_or_422(service: Service, k: int | str) -> ClusterReport:
    try:
        return service.clusters(k)
    except ValueError as error:  # k past the number of images, too few images
        raise HTTPException(422, f"no clusters: {error}") from None


@dataclass(frozen=True)
class ListedGroup:
    """A duplicate group as the review sees it: catalogue ids, keeper first as found."""

    group: Any  # the finder's DuplicateGroup
    ids: list[int]
    keeper: int

    @property
    def key(self) -> str:
        """The group's stable key: its sorted member ids joined by ``-``."""
        return "-".join(str(i) for i in sorted(self.ids))


def listed_duplicates(service: Service, threshold: float | None, verify: bool
                      ) -> tuple[Any, list[ListedGroup]]:
    """The duplicate report and its groups none of whose files is gone since, in order."""
    report = service.duplicates(threshold, verify)
    by_id = service.files().by_id
    listed = []
    for group in report.exact + report.near:
        ids = [int(report.file_ids[m]) for m in group.members]
        if all(i in by_id for i in ids):
            listed.append(ListedGroup(group, ids, int(report.file_ids[group.keeper])))
    return report, listed


@router.get("/api/duplicates", response_model=schemas.DuplicatePage)
def duplicates(
    service: ServiceDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    threshold: Annotated[float | None, Query(ge=-1, le=1)] = None,
    verify: bool = True,
) -> schemas.DuplicatePage:
    report, listed = listed_duplicates(service, threshold, verify)
    table = service.files()
    marks = service.marks.decisions(table.by_id)
    reviewed = service.marks.reviewed()
    page = [schemas.DuplicateGroup(  # models for this page only
        key=group.key, kind=group.group.kind, tier=group.group.tier,
        reviewed=group.key in reviewed, keeper=group.keeper,
        keeper_reasons=list(getattr(group.group, "keeper_reasons", None) or []),
        members=[schemas.DuplicateMember(
            image=image_model(table.by_id[i]), score=round(float(s), 4),
            keeper=i == group.keeper, mark=marks.get(i),
            tier=group.group.tiers[n] if group.group.tiers else group.group.tier,
            evidence=group.group.evidence[n] if group.group.evidence else None)
            for n, (i, s) in enumerate(zip(group.ids, group.group.scores))])
        for group in listed[offset:offset + limit]]
    return schemas.DuplicatePage(total=len(listed), offset=offset, limit=limit,
                                 threshold=report.threshold, verified=report.verified,
                                 groups=page)


@router.get("/api/groups", response_model=schemas.GroupPage)
def groups(
    service: ServiceDep,
    threshold: Annotated[float | None, Query(
        gt=0, le=1, description="cosine two images need to share a group; default: the "
        "near-duplicate threshold calibrated for the collection's model")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    members: Annotated[int, Query(ge=1, le=1000)] = 12,
) -> schemas.GroupPage:
    report = service.groups(threshold)
    by_id = service.files().by_id
    page = [schemas.Group(
        number=number, size=g.size, mean_similarity=round(g.mean_similarity, 4),
        medoid=image_model(by_id[report.file_id(g.medoid)]),
        members=[image_model(by_id[i]) for i in report.ids(g.members[:members])])
        for number, g in enumerate(report.groups[offset:offset + limit], start=offset + 1)]
    used = report.threshold
    return schemas.GroupPage(total=len(report.groups), offset=offset, limit=limit,
                             threshold=None if math.isnan(used.value) else used.value,
                             calibrated=used.calibrated, groups=page)


@router.get("/api/clusters", response_model=schemas.ClusterList)
def clusters(service: ServiceDep,
             k: Annotated[str, Query(
                 pattern="^(auto|[0-9]+)$",
                 description=f"auto, or a number of clusters from 1 to {MAX_CLUSTERS}")
             ] = "auto",
             members: Annotated[int, Query(ge=1, le=1000)] = 12) -> schemas.ClusterList:
    if k != "auto" and not (len(k) <= 6 and 1 <= int(k) <= MAX_CLUSTERS):
        raise HTTPException(422, f"k must be auto or a number from 1 to {MAX_CLUSTERS}, "
                            f"not {k[:20]}")
    report = clusters_or_422(service, k if k == "auto" else int(k))
    result, by_id = report.clustering, service.files().by_id
    listed = []
    for c in range(report.k):
        medoid = int(result.medoids[c])
        listed.append(schemas.Cluster(
            cluster=c, size=int(result.sizes[c]),
            medoid=image_model(by_id[report.file_id(medoid)]) if medoid >= 0 else None,
            members=[image_model(by_id[i]) for i in report.ids(result.members(c)[:members])]))
    return schemas.ClusterList(k=report.k, clusters=listed)


@router.get("/api/outliers", response_model=schemas.OutlierList)
def outliers(service: ServiceDep,
             fraction: Annotated[float, Query(gt=0, le=1)] = 0.05) -> schemas.OutlierList:
    report = service.outliers()
    by_id = service.files().by_id
    return schemas.OutlierList(fraction=fraction, total=len(report.file_ids), items=[
        schemas.Outlier(rank=row["rank"], score=round(row["score"], 4),
                        image=image_model(by_id[row["id"]]))
        for row in report.rows(fraction)])


@router.get("/api/map", response_model=schemas.MapData)
def map_points(service: ServiceDep,
               method: Annotated[str, Query(pattern="^(auto|graph|pca|tsne|umap)$")] = "auto"
               ) -> schemas.MapData:
    try:
        file_ids, layout, used, labels = service.map(method)
    except ValueError as error:  # too few images to lay out
        raise HTTPException(422, f"no map: {error}") from None
    return schemas.MapData(method=used, points=[
        schemas.MapPoint(id=int(i), x=round(float(x), 4), y=round(float(y), 4),
                         cluster=int(c))
        for i, (x, y), c in zip(file_ids, layout, labels)])
