"""Typed response and request bodies of the HTTP API (they are also its OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

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
    tier: str | None = Field(None, description="how this file relates to the keeper: "
                             "exact, edited or similar")
    evidence: dict[str, Any] | None = Field(None, description="what the tier rests on, "
                                            "e.g. matched keypoints, pixel agreement, cosine")


class DuplicateGroup(BaseModel):
    key: str = Field(description="stable key of the group: its sorted member ids")
    kind: Literal["exact", "near", "similar"]
    tier: str | None = Field(None, description="exact (same pixels), edited (an edited "
                             "copy) or similar (a similar shot: never a duplicate)")
    reviewed: bool = Field(False, description="the review marked this group as done")
    keeper: int
    keeper_reasons: list[str] = Field(default_factory=list,
                                      description="why the keeper was suggested")
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


class ReviewPlanIn(BaseModel):
    """Body of POST /api/review/plan and /api/review/apply (optional)."""

    force: bool = Field(False, description="also move the copies of a group in which every "
                        "copy is marked discard (refused otherwise)")


class QuarantineMove(BaseModel):
    id: int | None = Field(description="the image's id, while the catalogue lists it")
    path: str = Field(description="where it is, inside the photo folder")
    destination: str = Field(description="where it goes (absolute)")
    size: int = Field(description="bytes it frees (0 for a link)")


class RefusedGroup(BaseModel):
    key: str
    reason: str
    paths: list[str] = Field(description="its files marked discard, which stay")


class SkippedFile(BaseModel):
    path: str
    reason: str


class ReviewPlan(BaseModel):
    folder: str = Field(description="the quarantine folder, beside the photo folder")
    files: int
    bytes: int = Field(description="bytes the moves free in the photo folder")
    moves: list[QuarantineMove]
    refused: list[RefusedGroup]
    skipped: list[SkippedFile]
    forced: list[str] = Field(description="keys of all-discard groups moved because forced")


class FollowedChanges(BaseModel):
    renamed: int
    departed: int = Field(description="files that left the collection (quarantined)")
    restored: int = Field(description="files back in the collection (undone)")


class FailedFile(BaseModel):
    path: str
    reason: str


class ReviewApplied(BaseModel):
    journal: str = Field(description="the run's journal (its file name)")
    folder: str
    done: int = Field(description="files moved to quarantine")
    bytes: int = Field(description="bytes freed in the photo folder")
    failed: list[FailedFile] = Field(description="not moved (each put back as it was)")
    refused: list[RefusedGroup]
    skipped: list[SkippedFile]
    collection: FollowedChanges


class ReviewUndone(BaseModel):
    journal: str
    undone: int = Field(description="files back where they were")
    kept: list[FailedFile] = Field(description="left in quarantine on purpose, and why")
    failed: list[FailedFile]
    collection: FollowedChanges


class ReviewRun(BaseModel):
    journal: str
    folder: str
    files: int
    bytes: int
    applied_at: float
    undone: bool = Field(description="every file of the run is back")


class ReviewStatus(BaseModel):
    reviewed: int = Field(description="groups marked reviewed")
    total: int = Field(description="duplicate groups")
    files_to_move: int = Field(description="files marked discard that would move now")
    bytes_to_free: int = Field(description="their bytes (sizes on disk; the contents are "
                               "checked by the plan, not here)")
    refused: int = Field(description="groups in which every copy is marked discard")
    last_run: ReviewRun | None = Field(description="the last review applied")


class ReviewGroupIn(BaseModel):
    reviewed: bool = True
    decision: Literal["keep-all", "not-duplicates"] | None = Field(
        None, description="keep-all: every copy marked keep; not-duplicates: every one "
        "marked not-duplicate; null: the group's marks as they are")


class ReviewGroupState(BaseModel):
    key: str
    reviewed: bool
    decision: Literal["keep-all", "not-duplicates"] | None
    marks: dict[int, Decision] = Field(description="image id -> its decision")


class AcceptSuggestionsIn(BaseModel):
    tiers: list[Literal["exact", "edited"]] = Field(
        ["exact", "edited"], min_length=1, description="the tiers whose suggestions are "
        "accepted; similar shots never are")
    threshold: float | None = Field(None, ge=-1, le=1)
    verify: bool = True


class AcceptedSuggestions(BaseModel):
    groups: int = Field(description="groups marked: keeper keep, the others discard, reviewed")
    files: int = Field(description="files marked")
    passed_over: int = Field(description="unreviewed groups of those tiers left as they are "
                             "because some of their files were already marked")
