"""The embedding cache: one ``.npz`` per (image set, model, preprocessing), so that
comparing five configurations embeds each image once per model.

Rows are keyed by (path, size, mtime): a changed file is embedded again, an unchanged one
never. The decoder's settings are part of the key, since they shape the pixels the model
sees.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..decode import DRAFT_SLACK
from ..embed.base import Backbone, cache_dir
from ..ownership import atomic_write
from ..pipeline import Progress, embed_batches, prepare_file
from .datasets import LabelledSet


@dataclass
class Embedded:
    """Embeddings of a labelled set by one model; ``seconds``/``images`` describe the run
    that made them (cached rows cost nothing now, so the speed is from when they were made)."""

    vectors: np.ndarray  # float32 [n, dim], L2-normalised, in the set's order
    valid: np.ndarray  # bool [n]: False where the image could not be decoded
    images_per_second: float
    cached: bool


def default_cache() -> Path:
    return cache_dir() / "eval-cache"


def embed_set(
    labelled: LabelledSet,
    backbone: Backbone,
    name: str,
    cache: Path | None = None,
    *,
    progress: Progress | None = None,
) -> Embedded:
    """Embeddings of every image of ``labelled`` with ``backbone``, from the cache where the
    file (path, size, mtime) is unchanged; only the missing ones are embedded and added.

    The cache file is keyed by the set's root and the backbone's identity; ``name`` (a
    readable model name) only makes its file name legible."""
    identity = json.dumps(backbone.identity(), sort_keys=True)
    cache = Path(cache) if cache is not None else default_cache()
    slug = re.sub(r"[^a-z0-9]+", "-", f"{labelled.root.name}-{name}".lower()).strip("-")
    # the decoder's settings shape the pixels the model sees, so they key the cache too
    digest = hashlib.sha1(f"{labelled.root}\n{identity}\ndraft {DRAFT_SLACK}".encode()
                          ).hexdigest()[:12]
    file = cache / f"{slug[-60:]}-{digest}.npz"
    stamps = [_stamp(labelled.root / p) for p in labelled.paths]
    known: dict[str, tuple[str, np.ndarray]] = {}
    speed = 0.0
    if file.exists():
        with np.load(file, allow_pickle=False) as saved:
            speed = float(saved["images_per_second"])
            for path, stamp, vector in zip(saved["paths"], saved["stamps"], saved["vectors"]):
                known[str(path)] = (str(stamp), vector)
    todo = [i for i, (p, s) in enumerate(zip(labelled.paths, stamps))
            if p not in known or known[p][0] != s]
    if todo:
        fresh, failed, seconds = embed_files(backbone, labelled.root,
                                              [labelled.paths[i] for i in todo], progress)
        for i, vector in zip(todo, fresh):
            known[labelled.paths[i]] = (stamps[i], vector)
        for i in failed:
            known[labelled.paths[todo[i]]] = (stamps[todo[i]], np.full(backbone.dim, np.nan,
                                                                      dtype=np.float32))
        speed = len(todo) / seconds if seconds else 0.0
        _save_cache(file, known, speed, identity)
    vectors = np.stack([known[p][1] for p in labelled.paths]).astype(np.float32)
    valid = np.asarray(~np.isnan(vectors).any(axis=1))
    vectors[~valid] = 0.0
    return Embedded(vectors, valid, speed, cached=not todo)


def _stamp(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def embed_files(
    backbone: Backbone, root: Path, paths: list[str], progress: Progress | None,
) -> tuple[np.ndarray, list[int], float]:
    """``(vectors, failed positions, seconds)``: decoded and embedded by the indexing loop
    (:func:`~lookalike.pipeline.embed_batches`: ``backbone.concurrency`` batches at once,
    since CPU ONNX sessions are single-threaded). Failed images get a zero row here (the
    caller marks them)."""
    started = time.perf_counter()
    out = np.zeros((len(paths), backbone.dim), dtype=np.float32)
    failed: list[int] = []

    def prepare(position: int) -> tuple[int, np.ndarray]:
        return position, prepare_file(root / paths[position], position, backbone)[1]

    def embed(batch: list[tuple[int, np.ndarray]]) -> np.ndarray:
        return backbone.embed(np.stack([pixels for _, pixels in batch]))

    for failures, batch, vectors in embed_batches(
            range(len(paths)), prepare, embed, batch_size=backbone.batch_size,
            concurrency=backbone.concurrency, progress=progress):
        failed.extend(position for position, _ in failures)
        if vectors is not None:
            out[[position for position, _ in batch]] = vectors
    return out, failed, time.perf_counter() - started


def _save_cache(file: Path, known: dict[str, tuple[str, np.ndarray]], speed: float,
                identity: str) -> None:
    paths = sorted(known)

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:  # a handle: savez would add .npz to a name
            np.savez(handle, paths=np.asarray(paths, dtype=str),
                     stamps=np.asarray([known[p][0] for p in paths], dtype=str),
                     vectors=np.stack([known[p][1] for p in paths]).astype(np.float32),
                     images_per_second=np.float64(speed), identity=np.asarray(identity))

    atomic_write(file, write)  # a unique temporary name: two eval runs may share a cache
