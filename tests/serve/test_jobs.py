"""Analyses computed in the background from the server's start: their progress, joining a
running one, cancelling; first the job runner alone, then the real app."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lookalike.serve import create_app
from lookalike.serve.jobs import Cancelled, JobRunner
from tests.serve.conftest import LOCAL

WAIT = 60.0


def until(condition, timeout: float = WAIT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def stepped(gate: threading.Event, steps: int = 3, calls: list[str] | None = None):  # type: ignore[no-untyped-def]
    """A computation that reports each step and waits at the gate before the last."""
    def compute(progress):  # type: ignore[no-untyped-def]
        if calls is not None:
            calls.append("run")
        for step in range(steps):
            progress("counting", step, steps)
            if step == steps - 1:
                gate.wait(WAIT)
        progress("counting", steps, steps)
        return sum(range(steps))

    return compute


def test_progress_moves_and_a_second_submission_joins_the_running_job() -> None:
    runner, gate, calls = JobRunner(), threading.Event(), []
    job = runner.submit("sum", stepped(gate, 3, calls))
    until(lambda: job.done == 2)
    [status] = runner.statuses()
    assert (status.name, status.state, status.stage, status.done, status.total) == (
        "sum", "running", "counting", 2, 3)
    assert runner.submit("sum", stepped(gate, 3, calls)) is job  # joined, not queued again
    gate.set()
    assert job.wait(WAIT) == 3
    [status] = runner.statuses()
    assert (status.state, status.done, status.total, status.error) == ("done", 3, 3, None)
    assert status.seconds > 0 and calls == ["run"]
    runner.close()


def test_cancel_stops_a_running_job_at_its_next_report_and_a_queued_one_before_it_runs(
) -> None:
    runner, gate, later_calls = JobRunner(), threading.Event(), []
    running = runner.submit("slow", stepped(gate, 3))
    queued = runner.submit("later", stepped(threading.Event(), 1, later_calls))
    until(lambda: running.done == 2)
    assert runner.cancel("later").state == "cancelled"  # type: ignore[union-attr]
    assert runner.cancel("slow").state == "running"  # type: ignore[union-attr]
    gate.set()
    with pytest.raises(Cancelled):
        running.wait(WAIT)
    with pytest.raises(Cancelled):
        queued.wait(WAIT)
    assert {s.name: s.state for s in runner.statuses()} == {"slow": "cancelled",
                                                            "later": "cancelled"}
    assert later_calls == [] and runner.cancel("nothing") is None
    # asked for again, a cancelled job runs anew
    gate.clear()
    again = runner.submit("slow", stepped(gate, 2))
    assert again is not running and again.state in ("queued", "running")
    gate.set()
    assert again.wait(WAIT) == 1
    runner.close()


def test_join_waits_for_the_job_computing_a_key_queued_or_running() -> None:
    runner, gate, order = JobRunner(), threading.Event(), []
    runner.submit("first", stepped(gate, 2))
    second = runner.submit("second", lambda progress: order.append("job") or 7, key="seven")

    def request() -> None:
        runner.join("seven")  # queued behind "first": waits for both, does not overtake
        order.append("request")

    waiter = threading.Thread(target=request)
    waiter.start()
    time.sleep(0.2)
    assert order == [] and second.state == "queued"
    gate.set()
    waiter.join(WAIT)
    assert order == ["job", "request"] and second.result == 7
    runner.join("unknown")  # nothing computes it: returns at once
    runner.close()


def test_a_failed_job_reports_its_error() -> None:
    runner = JobRunner()

    def broken(progress):  # type: ignore[no-untyped-def]
        raise ValueError("no images")

    job = runner.submit("broken", broken)
    with pytest.raises(RuntimeError, match="no images"):
        job.wait(WAIT)
    [status] = runner.statuses()
    assert status.state == "failed" and status.error == "ValueError: no images"
    runner.close()


def test_the_server_computes_the_first_analyses_at_start(served_folder: Path) -> None:
    with TestClient(create_app(served_folder), base_url=LOCAL) as client:
        service = client.app.state.service  # type: ignore[attr-defined]
        # a request while the background work runs joins it rather than computing again
        report = service.duplicates(None, True)
        until(lambda: all(job["state"] == "done" for job in client.get("/api/jobs").json()))
        jobs = {job["name"]: job for job in client.get("/api/jobs").json()}
        assert list(jobs) == ["clusters", "map", "duplicates"]
        assert jobs["map"]["stage"] == "layout" and jobs["map"]["done"] == jobs["map"]["total"]
        assert all(job["error"] is None and job["seconds"] >= 0 for job in jobs.values())
        assert service.jobs.get("duplicates").result is report
        assert service.jobs.get("clusters").result is service.clusters("auto")
        # the page's requests are answered from what the jobs computed
        duplicates = client.get("/api/duplicates").json()
        paths = [{m["image"]["path"] for m in group["members"]}
                 for group in duplicates["groups"]]
        assert {"scene2.jpg", "sub/scene2-small.jpg"} in paths
        points = client.get("/api/map").json()
        assert points["method"] == "graph" and len(points["points"]) == 15
        # a finished job stays finished; an unknown one is a 404
        assert client.post("/api/jobs/map/cancel").json()["state"] == "done"
        assert client.post("/api/jobs/nothing/cancel").status_code == 404


def test_cancelling_through_the_api(served_folder: Path) -> None:
    with TestClient(create_app(served_folder, analyse_at_start=False),
                    base_url=LOCAL) as client:
        assert client.get("/api/jobs").json() == []
        service = client.app.state.service  # type: ignore[attr-defined]
        gate = threading.Event()
        job = service.jobs.submit("held", stepped(gate, 2))
        until(lambda: job.done == 1)
        assert client.post("/api/jobs/held/cancel").json()["state"] == "running"
        gate.set()
        until(lambda: client.get("/api/jobs").json()[0]["state"] == "cancelled")


def test_catalogue_facts_answer_while_an_analysis_runs(served_folder: Path) -> None:
    with TestClient(create_app(served_folder, analyse_at_start=False),
                    base_url=LOCAL) as client:
        service = client.app.state.service  # type: ignore[attr-defined]
        gate = threading.Event()
        job = service.jobs.submit("held", lambda progress: service.cached(
            "held", (), lambda: gate.wait(WAIT)))
        until(lambda: job.state == "running")
        assert client.get("/api/stats").json()["embedded"] == 15  # not behind the lock
        assert job.state == "running"
        gate.set()
        assert job.wait(WAIT) is True
