"""Analyses computed in the background, one at a time, with their progress.

When the server starts it queues the analyses the page shows first (see
:meth:`~lookalike.serve.service.Service.start_analyses`), so that they are ready, or
under way, by the time someone asks. A :class:`JobRunner` owns one worker thread that
runs its queue in order, one job at a time. It keeps the process's CPU priority: a page
request that joins a running job waits for it, and a job niced below the rest of the
machine made that request wait behind every other process (on a loaded box, a job at nice
19 got 1.5 % of a core). Each job reports ``(stage, done, total)`` through the progress
callback it is given; the same callback is where a cancelled job stops (it raises
:class:`Cancelled`), so a job stops at its next progress report, or before it starts when
still queued.

Submitting a job under a name already queued or running joins it: one computation, one
result, however many callers wait for it. A job may also carry a ``key`` (what it
computes): :meth:`JobRunner.join` lets another thread wait for the job of that key rather
than compute the same thing beside it, or ahead of the jobs queued before it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["queued", "running", "done", "failed", "cancelled"]
Progress = Callable[[str, int, int], None]
FINISHED: tuple[State, ...] = ("done", "failed", "cancelled")


class Cancelled(Exception):
    """Raised inside a job's computation, at a progress report, once it is cancelled."""


@dataclass(frozen=True)
class JobStatus:
    """One job as the API lists it; ``seconds``: running time so far, or in all."""

    name: str
    state: State
    stage: str
    done: int
    total: int
    seconds: float
    error: str | None


@dataclass(eq=False)
class Job:
    name: str
    compute: Callable[[Progress], Any]
    key: Hashable = None
    state: State = "queued"
    stage: str = ""
    done: int = 0
    total: int = 0
    error: str | None = None
    result: Any = None
    started: float | None = None
    finished: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)
    _over: threading.Event = field(default_factory=threading.Event)

    def progress(self, stage: str, done: int, total: int) -> None:
        """The computation's progress callback: records it, or stops a cancelled job."""
        if self._cancel.is_set():
            raise Cancelled(self.name)
        self.stage, self.done, self.total = stage, int(done), int(total)

    def status(self) -> JobStatus:
        end = self.finished if self.finished is not None else time.monotonic()
        seconds = 0.0 if self.started is None else end - self.started
        return JobStatus(self.name, self.state, self.stage, self.done, self.total,
                         round(seconds, 3), self.error)

    def wait(self, timeout: float | None = None) -> Any:
        """The job's result once it is over; raises its error, :class:`Cancelled`, or
        ``TimeoutError`` when ``timeout`` seconds pass first."""
        if not self._over.wait(timeout):
            raise TimeoutError(f"job {self.name} is still {self.state}")
        if self.state == "cancelled":
            raise Cancelled(self.name)
        if self.state == "failed":
            raise RuntimeError(f"job {self.name} failed: {self.error}")
        return self.result


class JobRunner:
    """A queue of named jobs and the one thread that runs them in order."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, name: str, compute: Callable[[Progress], Any],
               key: Hashable = None) -> Job:
        """Queue ``compute(progress)`` as ``name`` (computing ``key``, if given), or join
        the job of that name that is queued or running. A finished job of that name is
        replaced."""
        with self._lock:
            current = self._jobs.get(name)
            if current is not None and current.state not in FINISHED:
                return current
            job = self._jobs[name] = Job(name, compute, key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="lookalike-jobs",
                                                daemon=True)
                self._thread.start()
        self._queue.put(job)
        return job

    def get(self, name: str) -> Job | None:
        return self._jobs.get(name)

    def join(self, key: Hashable) -> None:
        """Wait until no queued or running job computes ``key`` (its result, error or
        cancellation is the caller's to look up); at once from the worker itself."""
        if key is None or threading.current_thread() is self._thread:
            return
        with self._lock:
            pending = [job for job in self._jobs.values()
                       if job.key == key and job.state not in FINISHED]
        for job in pending:
            job._over.wait()

    def statuses(self) -> list[JobStatus]:
        """Every job, in the order they were first submitted."""
        with self._lock:
            return [job.status() for job in self._jobs.values()]

    def cancel(self, name: str) -> JobStatus | None:
        """Cancel the job ``name`` (a finished one stays as it is); None if unknown."""
        with self._lock:
            job = self._jobs.get(name)
            if job is None:
                return None
            if job.state == "queued":
                self._finish(job, "cancelled")
            elif job.state == "running":
                job._cancel.set()
            return job.status()

    def close(self, timeout: float = 5.0) -> None:
        """Cancel every job and stop the worker (waiting up to ``timeout`` seconds for
        the running job to reach its next progress report)."""
        for name in list(self._jobs):
            self.cancel(name)
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            with self._lock:
                if job.state != "queued":  # cancelled while waiting
                    continue
                job.state, job.started = "running", time.monotonic()
            try:
                result = job.compute(job.progress)
            except Cancelled:
                self._finish(job, "cancelled")
            except Exception as error:  # noqa: BLE001 - a failed job is reported, not fatal
                self._finish(job, "failed", error=f"{type(error).__name__}: {error}")
            else:
                job.result = result  # done even when cancelled too late to stop
                self._finish(job, "done")

    @staticmethod
    def _finish(job: Job, state: State, error: str | None = None) -> None:
        job.state, job.error, job.finished = state, error, time.monotonic()
        job._over.set()
