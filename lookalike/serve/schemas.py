"""Typed response and request bodies of the HTTP API (they are also its OpenAPI schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

MAX_ID = 2**63 - 1  # SQLite's largest integer: no catalogue id is larger


class Stats(BaseModel):
    root: str
    directory: str
    files: int
    embedded: int
    skipped: int
    pending: int
    model: str | None
    model_spec: str | None
    dim: int | None
    index_kind: str | None
    index_fresh: bool
    text_search: bool = Field(description="whether POST /api/search accepts {'text': ...}")
    version: int = Field(description="changes whenever the collection's embeddings change")
    read_only: bool = True


class Image(BaseModel):
    id: int
    path: str
    width: int | None
    height: int | None
    size: int = Field(description="file size in bytes")
    format: str | None
    status: Literal["pending", "ok", "skipped"]
    reason: str | None = Field(None, description="why the file was skipped, if it was")
    thumb: str
    url: str


class ImagePage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[Image]


class Hit(BaseModel):
    rank: int
    score: float = Field(description="cosine similarity; 1.0 = identical embedding")
    image: Image


class SearchResult(BaseModel):
    query: str
    k: int
    hits: list[Hit]


class SearchRequest(BaseModel):
    """JSON body of POST /api/search (an image upload is multipart instead)."""

    text: str | None = None
    vector: list[float] | None = None
    k: int = Field(12, ge=1, le=500)


class DuplicateMember(BaseModel):
    image: Image
    score: float
    keeper: bool
    mark: str | None = None


class DuplicateGroup(BaseModel):
    key: str = Field(description="stable key of the group: its sorted member ids")
    kind: Literal["exact", "near"]
    keeper: int
    members: list[DuplicateMember]


class DuplicatePage(BaseModel):
    total: int
    offset: int
    limit: int
    threshold: float
    verified: bool
    groups: list[DuplicateGroup]


class Group(BaseModel):
    number: int
    size: int
    mean_similarity: float
    medoid: Image
    members: list[Image] = Field(description="medoid first; at most `members` of them")


class GroupPage(BaseModel):
    total: int
    offset: int
    limit: int
    threshold: float | None = Field(
        description="the cosine used (null: fewer than two images, nothing to group)")
    calibrated: bool = Field(
        description="the threshold is the one calibrated for the collection's model")
    groups: list[Group]


class Cluster(BaseModel):
    cluster: int
    size: int
    medoid: Image | None
    members: list[Image] = Field(description="most central first; at most `members`")


class ClusterList(BaseModel):
    k: int
    clusters: list[Cluster]


class Outlier(BaseModel):
    rank: int
    score: float = Field(description="local outlier factor; ~1 is typical")
    image: Image


class OutlierList(BaseModel):
    fraction: float
    total: int
    items: list[Outlier]


class MapPoint(BaseModel):
    id: int
    x: float
    y: float
    cluster: int


class MapData(BaseModel):
    method: str
    points: list[MapPoint]


Decision = Literal["keep", "discard", "not-duplicate"]


class MarkIn(BaseModel):
    file_id: int = Field(ge=0, le=MAX_ID)
    decision: Decision
    group: str | None = Field(None, description="the duplicate group key the decision is in")
    note: str | None = Field(None, max_length=2000)


class MarksIn(BaseModel):
    marks: list[MarkIn] = Field(min_length=1, max_length=10_000)


class Mark(BaseModel):
    file_id: int
    path: str
    decision: Decision
    group: str | None
    note: str | None
    updated_at: float


class MarkList(BaseModel):
    total: int
    marks: list[Mark]


class Problem(BaseModel):
    detail: str
