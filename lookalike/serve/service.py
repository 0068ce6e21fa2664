"""What the web server knows how to do, without HTTP: one shared, read-mostly view of a
collection, with caches keyed by the collection's embedding version.

Concurrency: the :class:`~lookalike.store.Store` serialises its SQLite access and the
:class:`~lookalike.collection.Collection` guards its vector index with a lock and reloads
it when the model's version changes (an ``index`` run commits batches atomically and
bumps the version each time), so one Collection is shared by every request thread.
Analyses (duplicates, groups, clusters, outliers, map) are computed once per parameters
and version, one at a time (they are CPU-bound and share the on-disk k-NN graph cache).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..analyse.layout import TSNE_MAX, map_2d
from ..analyse.outliers import top_outliers
from ..collection import Collection, CollectionInfo
from ..decode import DEFAULT_MAX_PIXELS, DecodeError, decode_bytes
from ..discover import Root, is_remote
from ..embed import Backbone
from ..store import FileRecord
from .batching import SearchBatcher
from .marks import MarkStore
from .thumbs import thumbnail

T = TypeVar("T")
MAX_UPLOAD_BYTES = 32 * 2**20
MAX_MAP_POINTS = 20_000

CONTENT_TYPES = {
    "JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "GIF": "image/gif",
    "BMP": "image/bmp", "DIB": "image/bmp", "TIFF": "image/tiff", "WEBP": "image/webp",
    "HEIF": "image/heif",
}


@dataclass
class FileTable:
    """Every catalogue file at one version, in id order, with an id -> record map."""

    version: tuple[Any, ...]
    records: list[FileRecord]
    by_id: dict[int, FileRecord]


class Service:
    def __init__(self, directory: Path, *, max_upload_bytes: int = MAX_UPLOAD_BYTES,
                 max_upload_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.collection = Collection.open(directory)
        self.directory = self.collection.directory
        self.root = self.collection.root
        self.max_upload_bytes = max_upload_bytes
        self.max_upload_pixels = max_upload_pixels
        self.marks = MarkStore(self.directory)
        self.thumb_cache = self.directory / "thumbs"
        self.batcher = SearchBatcher(self.collection)
        self._files: FileTable | None = None
        self._files_lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._analysis_lock = threading.RLock()  # map() reuses clusters()
        self._backbone_lock = threading.Lock()

    def close(self) -> None:
        self.batcher.close()
        self.marks.close()
        self.collection.close()

    # -- versions and files ------------------------------------------------------------------
    def version(self) -> tuple[Any, ...]:
        """Changes whenever files or embeddings change (every commit bumps the model's)."""
        record = self.collection.model
        if record is None:
            return ("none", sum(self.collection.store.status_counts().values()))
        return (record.key, record.version, record.file)

    def files(self) -> FileTable:
        version = self.version()
        with self._files_lock:
            if self._files is None or self._files.version != version:
                records = self.collection.files()
                self._files = FileTable(version, records, {r.id: r for r in records})
            return self._files

    def file(self, file_id: int) -> FileRecord | None:
        """A catalogue file by id, read fresh (never a stale cached row)."""
        return self.collection.store.file(file_id)

    def original(self, record: FileRecord) -> Root | None:
        """The original file of a catalogue record, or None when it is not safely inside
        the collection's folder any more (the catalogue path is relative; never absolute,
        never climbing out with ``..``)."""
        relative = Path(record.path)
        if relative.is_absolute() or ".." in relative.parts:
            return None
        path = self.root / relative.as_posix()
        if is_remote(path):
            return path  # one request, not two: a missing object fails when it is read
        return path if path.is_file() else None

    def thumbnail(self, record: FileRecord, size: int) -> Path | None:
        """The record's thumbnail, or None when its file is not in the folder any more."""
        original = self.original(record)
        return None if original is None else thumbnail(self.thumb_cache, original, record,
                                                       size)

    # -- model ---------------------------------------------------------------------------------
    def backbone(self) -> Backbone:
        with self._backbone_lock:  # load once, even when two requests ask at the same time
            return self.collection.backbone

    def text_search(self) -> bool:
        try:
            return self.collection.embeds_text  # recorded: the model is not loaded
        except Exception:  # noqa: BLE001 - an unavailable model means no text search
            return False

    def embed_upload(self, data: bytes) -> np.ndarray:
        """Embed uploaded image bytes with the guards used when indexing."""
        if len(data) > self.max_upload_bytes:
            raise DecodeError(f"upload is larger than {self.max_upload_bytes:,} bytes")
        backbone = self.backbone()
        decoded = decode_bytes(data, min_side=backbone.decode_size,
                               max_pixels=self.max_upload_pixels)
        with self._backbone_lock:
            return backbone.embed(backbone.preprocess(decoded.image)[None])[0]

    def embed_text(self, text: str) -> np.ndarray:
        backbone = self.backbone()
        with self._backbone_lock:
            return backbone.embed_text([text])[0]

    # -- analyses (cached per parameters and version) -----------------------------------------
    def cached(self, name: str, params: tuple[Any, ...], compute: Callable[[], T]) -> T:
        key = (name, params, self.version())
        if key in self._cache:
            return self._cache[key]
        with self._analysis_lock:
            if key not in self._cache:
                # Drop results of older versions: they can never be asked for again.
                for old in [k for k in self._cache if k[2] != key[2]]:
                    del self._cache[old]
                self._cache[key] = compute()
            return self._cache[key]

    def info(self) -> CollectionInfo:
        return self.cached("info", (), self.collection.info)

    def duplicates(self, threshold: float | None, verify: bool) -> Any:
        return self.cached("duplicates", (threshold, verify), lambda: self.collection.duplicates(
            threshold=threshold, verify=verify))

    def groups(self, threshold: float) -> tuple[np.ndarray, list[Any]]:
        return self.cached("groups", (threshold,), lambda: self.collection.groups(threshold))

    def clusters(self, k: int | str) -> tuple[np.ndarray, Any]:
        return self.cached("clusters", (k,), lambda: self.collection.clusters(k))

    def outliers(self) -> tuple[np.ndarray, np.ndarray]:
        return self.cached("outliers", (), self.collection.outliers)

    def top_outliers(self, fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        file_ids, scores = self.outliers()
        return file_ids, scores, top_outliers(scores, fraction)

    def map(self, method: str) -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
        """``(file_ids, xy [n, 2], method, cluster labels)``, at most MAX_MAP_POINTS."""

        def compute() -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
            file_ids, vectors = self.collection.vectors(copy=False)  # sampled below
            labels = self.clusters("auto")[1].labels if len(file_ids) > 1 else (
                np.zeros(len(file_ids), dtype=np.int64))
            if len(file_ids) > MAX_MAP_POINTS:
                keep = np.sort(np.random.default_rng(0).choice(len(file_ids), MAX_MAP_POINTS,
                                                               replace=False))
                file_ids, vectors, labels = file_ids[keep], vectors[keep], labels[keep]
            chosen = method
            if method == "auto":  # UMAP is too slow to make a page wait for past ~10k points
                chosen = "tsne" if 5 < len(file_ids) <= TSNE_MAX else "pca"
            layout, used = map_2d(vectors, chosen)
            return file_ids, layout, used, labels

        return self.cached("map", (method,), compute)
