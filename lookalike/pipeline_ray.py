"""The indexing journey on a Ray cluster: the same decode -> embed -> store as
:mod:`lookalike.pipeline`, with decode and embed spread over Ray actors.

A Ray Data pipeline reads the list of files still to embed, and ``map_batches`` runs them
through :class:`_Embedder` actors (one model and one CPU each). The driver
commits every finished block to the collection's store as it arrives, in file order, each
atomically: the result is the same collection a local run makes, and a run that stops
(driver killed, cluster lost) resumes where the last committed block ended.

Workers read images by path, so every worker must see the collection's folder at the same
path (a shared filesystem) and have the model available (same weights file or cache).
Each worker checks that its model is identical to the one that built the collection.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np

from .discover import as_root
from .embed import load_backbone
from .extras import import_module
from .pipeline import EmbedReport, Progress, embed_batches, prepare_file, reader_threads
from .store import EmbeddedFile, Store

log = logging.getLogger(__name__)

BLOCK_FILES = 256  # files per Ray block: the unit of work and of commit


class RayUnavailable(RuntimeError):
    """No Ray cluster could be reached."""


def connect(address: str) -> None:
    """Join the Ray cluster at ``address``, unless this process is already connected.

    ``auto`` joins the cluster this machine belongs to (``ray start``), or starts a local
    one when there is none; ``local`` always starts a local one.
    """
    ray = import_module("ray", "ray", "--ray")
    if ray.is_initialized():
        return

    def start(address: str | None = None) -> None:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)

    if address == "local":
        start()
        return
    try:
        start(address)
    except ConnectionError:
        if address != "auto":
            raise RayUnavailable(f"no Ray cluster at {address}") from None
        log.warning("no running Ray cluster found; starting a local one")
        start()


def _canonical(identity: dict[str, Any]) -> str:
    return json.dumps(json.loads(json.dumps(identity)), sort_keys=True)


class _Embedder:
    """A Ray actor: decodes and embeds blocks of files with one loaded model, through the
    batch loop a local run uses (:func:`lookalike.pipeline.embed_batches`)."""

    def __init__(self, root: str, spec: str, options: dict[str, Any], identity: str) -> None:
        self.root = as_root(root)  # a local folder or an fsspec URL, read on the worker
        self.backbone = load_backbone(spec, **options)
        if _canonical(self.backbone.identity()) != identity:
            raise RuntimeError(
                f"the model {spec!r} on this worker differs from the one that built the "
                "collection (other weights or preprocessing)")

    def __call__(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        backbone = self.backbone
        count = len(block["id"])
        out: dict[str, Any] = {
            "id": block["id"], "hash": [""] * count, "width": np.zeros(count, np.int64),
            "height": np.zeros(count, np.int64), "format": [""] * count,
            "error": [""] * count, "vector": np.zeros((count, backbone.dim), np.float32),
        }

        def prepare(position: int) -> tuple[int, EmbeddedFile, np.ndarray]:
            path = self.root / str(block["path"][position])
            return (position, *prepare_file(path, int(block["id"][position]), backbone))

        def embed(batch: list[tuple[int, EmbeddedFile, np.ndarray]]) -> np.ndarray:
            return backbone.embed(np.stack([array for _, _, array in batch]))

        # One decode thread beside one model thread for the actor's one CPU (or many
        # decode threads that mostly wait on object storage); failures carry the same skip
        # reasons as a local run's.
        for failed, batch, vectors in embed_batches(
                range(count), prepare, embed, batch_size=backbone.batch_size,
                workers=reader_threads(self.root, 1), concurrency=1):
            for position, reason in failed:
                out["error"][position] = reason
            if vectors is None:  # a batch of failures only
                continue
            for (position, item, _), vector in zip(batch, vectors):
                out["hash"][position] = item.content_hash
                out["width"][position], out["height"][position] = item.width, item.height
                out["format"][position] = item.format
                out["vector"][position] = vector
        return {name: np.asarray(value) for name, value in out.items()}


def embed_pending_ray(
    store: Store,
    model_key: str,
    *,
    address: str = "auto",
    workers: int | None = None,
    progress: Progress | None = None,
) -> EmbedReport:
    """Embed every file of the catalogue that has no embedding yet, on Ray.

    ``workers``: model actors, one CPU each (default: one per CPU of the cluster).
    """
    todo = store.files_to_embed(model_key)
    report = EmbedReport()
    if not todo:  # nothing to do: no cluster to start or join
        return report
    started = time.perf_counter()
    connect(address)
    import ray
    import ray.data

    record = store.model(model_key)
    if workers is None:
        workers = int(ray.cluster_resources().get("CPU", 1))
    workers = max(1, min(workers, -(-len(todo) // BLOCK_FILES)))
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # commits in file order, like local
    context.enable_progress_bars = False
    paths = {item.id: item.path for item in todo}
    dataset = ray.data.from_items([{"id": item.id, "path": item.path} for item in todo],
                                  override_num_blocks=-(-len(todo) // BLOCK_FILES))
    identity = _canonical(record.identity)
    embedded = dataset.map_batches(
        _Embedder, fn_constructor_args=(str(store.root), record.spec, record.options, identity),
        batch_size=BLOCK_FILES, concurrency=workers, num_cpus=1,
    )
    done = 0
    for block in embedded.iter_batches(batch_size=None, batch_format="numpy"):
        ok = block["error"] == ""
        items = [EmbeddedFile(int(i), str(h), int(w), int(hh), str(f)) for i, h, w, hh, f in
                 zip(block["id"][ok], block["hash"][ok], block["width"][ok],
                     block["height"][ok], block["format"][ok])]
        failed = [(int(i), str(e)) for i, e in zip(block["id"][~ok], block["error"][~ok])]
        store.commit_batch(model_key, items, block["vector"][ok], failed)
        report.embedded += len(items)
        report.skipped.extend((paths[i], reason) for i, reason in failed)
        done += len(block["id"])
        if progress:
            progress(done, len(todo))
    report.seconds = time.perf_counter() - started
    return report
