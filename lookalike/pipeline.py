"""The indexing journey for the files a collection still needs: decode -> embed -> store.

Decoding (and the backbone's preprocessing) runs in a thread pool that stays a bounded
number of files ahead, while the main thread runs the model on full batches, so the model
never waits on a single core and memory stays flat however many files there are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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

    def flush() -> None:
        vectors = backbone.embed(np.stack(inputs)) if inputs else np.zeros((0, backbone.dim))
        store.commit_batch(model_key, ready, vectors, failed)
        report.embedded += len(ready)
        ready.clear()
        inputs.clear()
        failed.clear()

    done = 0
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
            flush()
        if progress:
            progress(done, len(todo))
    flush()
    report.seconds = time.perf_counter() - started
    return report
