"""The background analyses the server started: their progress, and a way to stop one."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field

from ..deps import ServiceDep

router = APIRouter()


class JobInfo(BaseModel):
    name: str = Field(description="the analysis: duplicates, clusters or map")
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    stage: str = Field(description="what it is doing now, e.g. verify, layout")
    done: int = Field(description="steps of the stage done, out of total")
    total: int
    seconds: float = Field(description="running time so far, or in all once finished")
    error: str | None = None


@router.get("/api/jobs", response_model=list[JobInfo])
def jobs(service: ServiceDep) -> list[JobInfo]:
    """The analyses computed in the background since the server started, one at a time,
    in the order they run."""
    return [JobInfo(**asdict(status)) for status in service.jobs.statuses()]


@router.post("/api/jobs/{name}/cancel", response_model=JobInfo,
             responses={404: {"description": "no such job"}})
def cancel(name: Annotated[str, Path(max_length=40)], service: ServiceDep) -> JobInfo:
    """Stop a queued or running analysis (a running one stops at its next progress
    report); a finished one stays as it is. Asking for the analysis later computes it."""
    status = service.jobs.cancel(name)
    if status is None:
        raise HTTPException(404, f"no job named {name[:40]}")
    return JobInfo(**asdict(status))
