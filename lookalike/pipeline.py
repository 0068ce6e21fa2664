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

import numpy as np

from .decode import decode_file, parallel_ordered
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
    todo = store.files_to_embed(model_key)
    root = store.root
    batch_size = batch_size or backbone.batch_size
    report = EmbedReport()
    started = time.perf_counter()

    def prepare(record: FileRecord) -> tuple[EmbeddedFile, np.ndarray]:
        decoded = decode_file(root / record.path, min_side=backbone.decode_size)
        item = EmbeddedFile(record.id, decoded.content_hash, decoded.width, decoded.height,
                            decoded.format)
        return item, backbone.preprocess(decoded.image)

    ready: list[EmbeddedFile] = []
    inputs: list[np.ndarray] = []
    failed: list[tuple[int, str]] = []
    concurrency = max(1, backbone.concurrency)
    # Batches being embedded, oldest first; they are committed in this order.
    in_flight: deque[tuple[list[EmbeddedFile], list[tuple[int, str]], Future[np.ndarray]]]
    in_flight = deque()

    def commit_oldest() -> None:
        items, failures, vectors = in_flight.popleft()
        store.commit_batch(model_key, items, vectors.result(), failures)
        report.embedded += len(items)

    def flush(model: ThreadPoolExecutor) -> None:
        if inputs:
            future = model.submit(backbone.embed, np.stack(inputs))
        else:
            future = Future()
            future.set_result(np.zeros((0, backbone.dim), dtype=np.float32))
        in_flight.append((ready.copy(), failed.copy(), future))
        ready.clear()
        inputs.clear()
        failed.clear()
        while len(in_flight) > concurrency:
            commit_oldest()

    done = 0
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lookalike-model") as model:
        for outcome in parallel_ordered(prepare, todo, workers=workers):
            if outcome.error is not None:
                failed.append((outcome.item.id, outcome.error))
                report.skipped.append((outcome.item.path, outcome.error))
            else:
                item, array = outcome.value
                ready.append(item)
                inputs.append(array)
            done += 1
            if len(ready) >= batch_size or len(failed) >= batch_size:
                flush(model)
            if progress:
                progress(done, len(todo))
        flush(model)
        while in_flight:
            commit_oldest()
    report.seconds = time.perf_counter() - started
    return report
