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

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..analyse.layout import map_2d
from ..analyse.results import ClusterReport, GroupReport, OutlierReport
from ..collection import Collection, CollectionInfo
from ..decode import DEFAULT_MAX_PIXELS, DecodeError
from ..discover import Root, is_remote
from ..embed import Backbone
from ..pipeline import embed_image
from ..store import FileRecord
from .batching import SearchBatcher
from .jobs import JobRunner, Progress
from .marks import MarkStore
from .thumbs import thumbnail

T = TypeVar("T")
MAX_UPLOAD_BYTES = 32 * 2**20  # an image uploaded to search by
MAX_BODY_BYTES = 4 * 2**20  # any other request body (JSON: a search vector, marks)
MAX_MAP_POINTS = 20_000

CONTENT_TYPES = {
    "JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "GIF": "image/gif",
    "BMP": "image/bmp", "DIB": "image/bmp", "TIFF": "image/tiff", "WEBP": "image/webp",
    "HEIF": "image/heif",
}


class NotServed(Exception):
    """A catalogue file the server does not send (a 404 with this message)."""


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
        # Where files really are: an original is sent only from inside the folder, and
        # never from the collection directory (catalogue, embeddings) when that lies inside.
        self._real_root: Path | None = None
        self._private: Path | None = None
        if not is_remote(self.root):
            self._real_root = Path(os.path.realpath(self.root))
            private = Path(os.path.realpath(self.directory))
            if private != self._real_root and private.is_relative_to(self._real_root):
                self._private = private
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
        self.jobs = JobRunner()

    def close(self) -> None:
        self.jobs.close()
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

    def original(self, record: FileRecord) -> Root:
        """The original file of a catalogue record, by its real path.

        Raises :class:`NotServed` unless the record is an indexed image (status ``ok``:
        a skipped file is not an image, a pending one was never looked at) whose real
        path, links followed, lies inside the collection's folder and outside the
        collection directory. The catalogue path itself must be relative, never climbing
        out with ``..``. On object storage there are no links: the path is used as is.
        """
        if record.status != "ok":
            why = (f"was skipped when indexing ({record.reason or 'not an image'})"
                   if record.status == "skipped" else "is not indexed yet")
            raise NotServed(f"image {record.id} {why}: only indexed images are served")
        relative = Path(record.path)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise NotServed(f"image {record.id} is not inside the collection's folder")
        if self._real_root is None or is_remote(self.root):
            # one request, not two: a missing object fails when it is read
            return self.root / relative.as_posix()
        path = self.root / relative.as_posix()
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(self._real_root):
            raise NotServed(f"image {record.id} is a link to a file outside the "
                            "collection's folder: it is not served")
        if self._private is not None and real.is_relative_to(self._private):
            raise NotServed(f"image {record.id} is a link into lookalike's own files: "
                            "it is not served")
        if not real.is_file():
            raise NotServed(f"image {record.id} is no longer in the folder")
        return real

    def thumbnail(self, record: FileRecord, size: int) -> Path:
        """The record's thumbnail; raises :class:`NotServed` as :meth:`original` does."""
        return thumbnail(self.thumb_cache, self.original(record), record, size)

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
        return embed_image(backbone, data, max_pixels=self.max_upload_pixels,
                           lock=self._backbone_lock)

    def embed_text(self, text: str) -> np.ndarray:
        backbone = self.backbone()
        with self._backbone_lock:
            return backbone.embed_text([text])[0]

    # -- analyses (cached per parameters and version) -----------------------------------------
    def cached(self, name: str, params: tuple[Any, ...], compute: Callable[[], T], *,
               exclusive: bool = True) -> T:
        """``compute()`` once per parameters and version; ``exclusive``: one analysis at a
        time (else computed beside a running one: for what reads no k-NN graph)."""
        key = (name, params, self.version())
        if key in self._cache:
            return self._cache[key]
        if not exclusive:
            value = self._cache[key] = compute()
            return value
        self.jobs.join((name, params))  # computed in the background: wait, rather than race
        with self._analysis_lock:
            if key not in self._cache:
                # Drop results of older versions: they can never be asked for again.
                for old in [k for k in self._cache if k[2] != key[2]]:
                    del self._cache[old]
                self._cache[key] = compute()
            return self._cache[key]

    def info(self) -> CollectionInfo:
        # catalogue facts: never waits behind an analysis running in the background
        return self.cached("info", (), self.collection.info, exclusive=False)

    def start_analyses(self) -> None:
        """Queue, in the background, the analyses the page shows first at the parameters
        it asks for, cheapest first: clusters, the map, duplicates. A request for one of
        them meanwhile waits for its job (:meth:`cached`) rather than repeating it or
        jumping the queue. Nothing to do without two embedded images."""
        if self.collection.model is None or len(self.collection.vectors(copy=False)[0]) < 2:
            return
        self.jobs.submit("clusters", lambda progress: self.clusters("auto", progress),
                         key=("clusters", ("auto",)))
        self.jobs.submit("map", lambda progress: self.map("auto", progress),
                         key=("map", ("auto",)))
        self.jobs.submit("duplicates", lambda progress: self.duplicates(None, True, progress),
                         key=("duplicates", (None, True)))

    def duplicates(self, threshold: float | None, verify: bool,
                   progress: Progress | None = None) -> Any:
        return self.cached("duplicates", (threshold, verify), lambda: self.collection.duplicates(
            threshold=threshold, verify=verify, progress=progress))

    def groups(self, threshold: float | None) -> GroupReport:
        """Threshold groups at ``threshold``, or (None) at the collection's calibrated one."""
        return self.cached("groups", (threshold,), lambda: self.collection.groups(threshold))

    def clusters(self, k: int | str, progress: Progress | None = None) -> ClusterReport:
        def compute() -> ClusterReport:
            if progress:
                progress("clusters", 0, 1)
            found = self.collection.clusters(k)
            if progress:
                progress("clusters", 1, 1)
            return found

        return self.cached("clusters", (k,), compute)

    def outliers(self) -> OutlierReport:
        return self.cached("outliers", (), self.collection.outliers)

    def map(self, method: str, progress: Progress | None = None
            ) -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
        """``(file_ids, xy [n, 2], method, cluster labels)``, at most MAX_MAP_POINTS."""

        def compute() -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
            file_ids, vectors = self.collection.vectors(copy=False)  # sampled below
            labels = self.clusters("auto", progress).clustering.labels if len(file_ids) > 1 else (
                np.zeros(len(file_ids), dtype=np.int64))
            graph = None  # the collection's cached k-NN graph, when it covers them all
            if len(file_ids) > MAX_MAP_POINTS:
                keep = np.sort(np.random.default_rng(0).choice(len(file_ids), MAX_MAP_POINTS,
                                                               replace=False))
                file_ids, vectors, labels = file_ids[keep], vectors[keep], labels[keep]
            elif method in ("auto", "graph") and len(file_ids) > 5:
                graph = self.collection.knn_graph()[1]
            layout, used = map_2d(vectors, method, graph=graph, progress=progress)
            return file_ids, layout, used, labels

        return self.cached("map", (method,), compute)
