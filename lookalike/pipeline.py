"""The indexing journey for the files a collection still needs: decode -> embed -> store.

Decoding (and the backbone's preprocessing) runs in a thread pool that stays a bounded
number of files ahead, while the model runs on full batches (``backbone.concurrency`` of
them at once), so the model never waits on a single core and memory stays flat however
many files there are. Batches are committed in order, each atomically.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from upath import UPath

from .decode import decode_file, parallel_ordered
from .discover import is_remote
from .embed.base import Backbone
from .store import EmbeddedFile, FileRecord, Store

Progress = Callable[[int, int], None]  # (files done, files to do)


@dataclass
class EmbedReport:
    embedded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0


Prepared = TypeVar("Prepared")
# What embedding one batch gives: the files embedded, their vectors, and files that failed
# only now (a decoder on the model's device can still reject a file).
BatchResult = tuple[list[EmbeddedFile], np.ndarray, list[tuple[int, str]]]


def prepare_file(path: Path | UPath | str, file_id: int,
                 backbone: Backbone) -> tuple[EmbeddedFile, np.ndarray]:
    """Decode one file and preprocess it for ``backbone`` (runs in worker threads)."""
    decoded = decode_file(path, min_side=backbone.decode_size)
    item = EmbeddedFile(file_id, decoded.content_hash, decoded.width, decoded.height,
                        decoded.format)
    return item, backbone.preprocess(decoded.image)


# Threads reading from object storage: each spends most of its time waiting 20-50 ms for
# an object's first byte, so many more than cores are needed to keep the model busy.
REMOTE_READERS = 32


def embed_pending(
    store: Store,
    model_key: str,
    backbone: Backbone,
    *,
    workers: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> EmbedReport:
    """Decode and embed every file of the catalogue that has no embedding yet.

    Each batch is committed atomically; a file that fails to decode is marked ``skipped``
    with its reason in the same commit.
    """
    root = store.root

    def prepare(record: FileRecord) -> tuple[EmbeddedFile, np.ndarray]:
        return prepare_file(root / record.path, record.id, backbone)

    def embed(batch: list[tuple[EmbeddedFile, np.ndarray]]) -> BatchResult:
        return [item for item, _ in batch], backbone.embed(np.stack([a for _, a in batch])), []

    return run_batches(store, model_key, prepare, embed, workers=workers,
                       batch_size=batch_size or backbone.batch_size,
                       concurrency=backbone.concurrency, progress=progress)


def run_batches(
    store: Store,
    model_key: str,
    prepare: Callable[[FileRecord], Prepared],
    embed: Callable[[list[Prepared]], BatchResult],
    *,
    batch_size: int,
    workers: int | None = None,
    concurrency: int = 1,
    progress: Progress | None = None,
) -> EmbedReport:
    """The loop every local pipeline shares: ``prepare`` each file still to embed in a
    thread pool (a :class:`~lookalike.decode.DecodeError` skips the file with its reason),
    ``embed`` full batches (``concurrency`` at once), commit them in file order."""
    if workers is None and is_remote(store.root):
        workers = REMOTE_READERS
    todo = store.files_to_embed(model_key)
    paths = {record.id: record.path for record in todo}
    dim = store.model(model_key).dim
    report = EmbedReport()
    started = time.perf_counter()
    batch: list[Prepared] = []
    failed: list[tuple[int, str]] = []
    concurrency = max(1, concurrency)
    # Batches being embedded, oldest first, with the files that failed before them.
    in_flight: deque[tuple[list[tuple[int, str]], Future[BatchResult]]] = deque()

    def commit_oldest() -> None:
        failures, future = in_flight.popleft()
        items, vectors, late = future.result()
        store.commit_batch(model_key, items, vectors, failures + late)
        report.embedded += len(items)
        report.skipped.extend((paths[file_id], reason) for file_id, reason in late)

    def flush(model: ThreadPoolExecutor) -> None:
        if batch:
            future = model.submit(embed, batch.copy())
        else:
            future = Future()
            future.set_result(([], np.zeros((0, dim), dtype=np.float32), []))
        in_flight.append((failed.copy(), future))
        batch.clear()
        failed.clear()
        while len(in_flight) > concurrency:
            commit_oldest()

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lookalike-model") as model:
        for done, outcome in enumerate(parallel_ordered(prepare, todo, workers=workers), 1):
            if outcome.error is not None:
                failed.append((outcome.item.id, outcome.error))
                report.skipped.append((outcome.item.path, outcome.error))
            else:
                batch.append(outcome.value)
            if len(batch) >= batch_size or len(failed) >= batch_size:
                flush(model)
            if progress:
                progress(done, len(todo))
        flush(model)
        while in_flight:
            commit_oldest()
    report.seconds = time.perf_counter() - started
    return report
