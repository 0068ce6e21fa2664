"""The indexing journey for the files a collection still needs: decode -> embed -> store.

Decoding (and the backbone's preprocessing) runs in a thread pool that stays a bounded
number of files ahead, while the model runs on full batches (``backbone.concurrency`` of
them at once), so the model never waits on a single core and memory stays flat however
many files there are. Batches are committed in order, each atomically.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from .decode import (
    DEFAULT_MAX_PIXELS,
    FilePath,
    decode_bytes,
    decode_file,
    parallel_ordered,
)
from .discover import Root, is_remote
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


Item = TypeVar("Item")
Prepared = TypeVar("Prepared")
Embedded = TypeVar("Embedded")
# What embedding one batch gives: the files embedded, their vectors, and files that failed
# only now (a decoder on the model's device can still reject a file).
BatchResult = tuple[list[EmbeddedFile], np.ndarray, list[tuple[int, str]]]


def prepare_file(path: Root | str, file_id: int,
                 backbone: Backbone) -> tuple[EmbeddedFile, np.ndarray]:
    """Decode one file and preprocess it for ``backbone`` (runs in worker threads)."""
    decoded = decode_file(path, min_side=backbone.decode_size)
    item = EmbeddedFile(file_id, decoded.content_hash, decoded.width, decoded.height,
                        decoded.format)
    return item, backbone.preprocess(decoded.image)


def embed_image(backbone: Backbone, image: FilePath | bytes, *,
                max_pixels: int = DEFAULT_MAX_PIXELS,
                lock: AbstractContextManager[object] | None = None) -> np.ndarray:
    """One image, a file or its bytes (an upload), as its embedding ``[dim]`` in the
    model's own space: decoded with the indexing guards (bomb, format, EXIF) and
    preprocessed as indexing does. The one path for a single image: search by a file,
    exemplars, an upload to the web server. ``lock``, if given, is held for the model
    only: decoding runs outside it."""
    decoded = (decode_bytes(image, min_side=backbone.decode_size, max_pixels=max_pixels)
               if isinstance(image, bytes) else
               decode_file(image, min_side=backbone.decode_size, max_pixels=max_pixels))
    with lock or nullcontext():
        return backbone.embed(backbone.preprocess(decoded.image)[None])[0]


# Threads reading from object storage: each spends most of its time waiting 20-50 ms for
# an object's first byte, so many more than cores are needed to keep the model busy.
REMOTE_READERS = 32


def reader_threads(root: Root, local: int | None) -> int | None:
    """Decode threads for files under ``root``: ``local`` for a local folder, and for
    object storage at least ``REMOTE_READERS`` (and no fewer than the cores)."""
    return max(REMOTE_READERS, os.cpu_count() or 1) if is_remote(root) else local


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


def embed_batches(
    items: Sequence[Item],
    prepare: Callable[[Item], Prepared],
    embed: Callable[[list[Prepared]], Embedded],
    *,
    batch_size: int,
    workers: int | None = None,
    concurrency: int = 1,
    progress: Progress | None = None,
) -> Iterator[tuple[list[tuple[Item, str]], list[Prepared], Embedded | None]]:
    """The loop every embedding run shares: ``prepare`` each item in a thread pool that
    stays a bounded number of items ahead, ``embed`` full batches (``concurrency`` at
    once, on model threads), and yield ``(failed, batch, embedded)`` in item order.

    ``failed``: the items whose ``prepare`` raised a :class:`~lookalike.decode.DecodeError`
    since the previous yield, with its reason; ``embedded``: ``embed(batch)``, or None for
    an empty batch (one that only carries failures: after ``batch_size`` of them, and at
    the end).
    """
    concurrency = max(1, concurrency)
    batch: list[Prepared] = []
    failed: list[tuple[Item, str]] = []
    # oldest first: the failures before each batch, the batch, its embedding
    in_flight: deque[tuple[list[tuple[Item, str]], list[Prepared],
                           Future[Embedded] | None]] = deque()

    def finished() -> tuple[list[tuple[Item, str]], list[Prepared], Embedded | None]:
        failures, prepared, future = in_flight.popleft()
        return failures, prepared, None if future is None else future.result()

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lookalike-model") as model:
        def submit() -> None:
            future = model.submit(embed, batch.copy()) if batch else None
            in_flight.append((failed.copy(), batch.copy(), future))
            batch.clear()
            failed.clear()

        for done, outcome in enumerate(parallel_ordered(prepare, items, workers=workers), 1):
            if outcome.error is not None:
                failed.append((outcome.item, outcome.error))
            else:
                batch.append(outcome.value)
            if len(batch) >= batch_size or len(failed) >= batch_size:
                submit()
                while len(in_flight) > concurrency:
                    yield finished()
            if progress:
                progress(done, len(items))
        submit()
        while in_flight:
            yield finished()


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
    """:func:`embed_batches` over the files still to embed, each batch committed in file
    order with the files that failed (a decode error, or a late failure on the model's
    device), atomically."""
    if workers is None:
        workers = reader_threads(store.root, None)
    todo = store.files_to_embed(model_key)
    dim = store.model(model_key).dim
    report = EmbedReport()
    started = time.perf_counter()
    for failed, _, embedded in embed_batches(todo, prepare, embed, batch_size=batch_size,
                                             workers=workers, concurrency=concurrency,
                                             progress=progress):
        items, vectors, late = embedded or ([], np.zeros((0, dim), dtype=np.float32), [])
        store.commit_batch(model_key, items, vectors,
                           [(record.id, reason) for record, reason in failed] + late)
        report.embedded += len(items)
        report.skipped.extend((record.path, reason) for record, reason in failed)
        for file_id, reason in late:  # files of this run: in the catalogue
            record = store.file(file_id)
            report.skipped.append((record.path if record else f"file #{file_id}", reason))
    report.seconds = time.perf_counter() - started
    return report
