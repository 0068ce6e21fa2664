"""Collection: the public Python API over one indexed folder.

    >>> from lookalike import Collection
    >>> c = Collection.index_folder("~/photos")           # creates ~/photos/.lookalike
    >>> hits = Collection.open("~/photos").search("query.jpg", k=10)

The CLI and the web server are thin layers over this class.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from . import facts, indexing
from .analyse.clusters import auto_k, kmeans
from .analyse.groups import Group, threshold_groups
from .analyse.outliers import outlier_scores
from .analyse.results import ClusterReport, GroupReport, OutlierReport
from .discover import Root, as_root, discover
from .duplicates_job import DuplicateReport, find_duplicates, model_calibration
from .embed import Backbone, Preprocess, load_backbone
from .embed.transform import TransformChain
from .graph_cache import GraphCache, GraphKey
from .index import INDEX_KINDS, VectorIndex
from .index_manager import IndexManager
from .indexing import DEFAULT_DIRNAME, locate, model_key
from .knn import KnnGraph, knn_graph
from .pipeline import Progress, embed_image
from .projection import Projection
from .records import (
    CollectionInfo,
    GroupThreshold,
    IndexReport,
    ModelMismatch,
    Neighbour,
    NoEmbeddings,
    NotEmbedded,
    SearchHit,
)
from .search import (
    Query,
    SearchState,
    as_hits,
    graph_hits,
    search_queries,
    search_vectors,
)
from .store import FileRecord, ModelRecord, Problem, Store, StoreError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [  # with the types of lookalike.records, which callers import from here
    "DEFAULT_DIRNAME", "Collection", "CollectionInfo", "GroupThreshold", "IndexReport",
    "ModelMismatch", "Neighbour", "NoEmbeddings", "NotEmbedded", "Query", "SearchHit",
    "locate", "model_key",
]


class Collection:
    """An indexed image folder: catalogue, embeddings from one model, and a vector index."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._backbone: Backbone | None = None
        self._indexes = IndexManager(store)
        self._projection = Projection(store)
        self._calibration: tuple[str, dict[str, Any]] | None = None
        self._search_state: SearchState | None = None

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], writable: bool = False) -> Collection:
        return cls(Store.open(locate(path), writable=writable))

    @classmethod
    def index_folder(
        cls,
        root: str | os.PathLike[str] | Root,
        db: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> tuple[Collection, IndexReport]:
        """Open (or create) the collection for ``root`` and bring it up to date.

        ``root`` may be an fsspec URL (``s3://bucket/photos``); the collection itself is
        then local and ``db`` is required.
        """
        store = indexing.store_for_folder(as_root(root), db, bool(options.get("rebuild")))
        collection = cls(store)
        return collection, collection.index(**options)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root(self) -> Root:
        """The image folder: a local :class:`Path`, or a :class:`UPath` on object storage."""
        return self.store.root

    @property
    def directory(self) -> Path:
        return self.store.directory

    @property
    def model(self) -> ModelRecord | None:
        key = self.store.current_model()
        return self.store.model(key) if key else None

    # -- indexing --------------------------------------------------------------------------
    def index(
        self,
        model: str | None = None,
        *,
        weights: str | os.PathLike[str] | None = None,
        preprocess: Preprocess | dict[str, Any] | None = None,
        member_preprocess: dict[str, dict[str, Any]] | None = None,
        output: str | None = None,
        pretrained: bool = True,
        border_crop: bool = False,
        flip: bool = False,
        index_kind: str | None = None,
        rebuild: bool = False,
        workers: int | None = None,
        batch_size: int | None = None,
        progress: Progress | None = None,
        index_progress: Progress | None = None,
        ray: str | None = None,
        device_decode: bool | None = None,
        max_memory: int | None = None,
    ) -> IndexReport:
        """Bring the collection up to date with its folder: only new or changed files
        are embedded, deleted ones are dropped, then the vector index is synced.

        ``ray``: embed on a Ray cluster (an address, ``auto`` or ``local``; see
        :mod:`lookalike.pipeline_ray`) instead of in this process; ``workers`` is then
        the number of model actors. ``device_decode``: decode JPEGs on the model's device
        (:mod:`lookalike.pipeline_gpu`); by default whenever the model runs on CUDA.
        ``max_memory`` (bytes, remembered): the most RAM the ``auto`` index may hold;
        beyond it the index is IVF-PQ re-ranking from the store on disk. ``progress`` and
        ``index_progress`` count images embedded and images added to the vector index."""
        if not self.store.writable:
            raise StoreError("this collection was opened read-only: open it with "
                             "Collection.open(path, writable=True) to index")
        started = time.perf_counter()
        spec = indexing.model_to_start(self.model, model, rebuild=rebuild,
                                       border_crop=border_crop, flip=flip)
        if spec is None:
            record, backbone = self.require_model(), self.backbone
        else:
            options = indexing.load_options(weights, preprocess, output, pretrained,
                                            border_crop, flip, member_preprocess)
            backbone = load_backbone(spec, **options)
            record = indexing.start_model(self.store, backbone, spec, options)
            self._backbone = backbone
            self._indexes.forget()
        if max_memory is not None:
            self.store.set_max_memory(max_memory)
        if index_kind is not None:
            if index_kind != "auto" and index_kind not in INDEX_KINDS:
                raise ValueError(f"index kind must be auto or one of {', '.join(INDEX_KINDS)}")
            self.store.set_index_kind(index_kind)
        changes = self.store.sync_files(discover(self.root))
        report = indexing.embed_files(self.store, record.key, backbone, ray=ray,
                                      device_decode=device_decode, workers=workers,
                                      batch_size=batch_size, progress=progress)
        self.store.compact(record.key)
        index = self.vector_index(progress=index_progress)
        skipped_total = self.store.status_counts().get("skipped", 0)
        return IndexReport(changes, report, record.spec, index.kind,
                           time.perf_counter() - started, skipped_total, spec is not None)

    @property
    def backbone(self) -> Backbone:
        """The collection's own model, loaded lazily and checked against what was recorded."""
        if self._backbone is None:
            record = self.require_model()
            backbone = load_backbone(record.spec, **record.options)
            indexing.check_identity(record, backbone)
            self._backbone = backbone
        return self._backbone

    @property
    def embeds_text(self) -> bool:
        """Whether the model embeds text queries. Recorded when indexing starts, so asking
        does not load the model (a collection indexed before that loads it once)."""
        record = self.model
        if record is None:
            return False
        recorded = self.store.embeds_text(record.key)
        if recorded is None:
            recorded = self.backbone.embeds_text
            with suppress(StoreError, sqlite3.Error):  # a read-only collection asks again
                self.store.set_embeds_text(record.key, recorded)
        return recorded

    def require_model(self) -> ModelRecord:
        """The model of the collection's embeddings; :class:`NoEmbeddings` before any."""
        record = self.model
        if record is None:
            raise NoEmbeddings
        return record

    def check_model(self, spec: str | None) -> None:
        """Refuse a query model that differs from the collection's."""
        record = self.require_model()
        if spec not in (None, "auto", record.spec):
            raise ModelMismatch(
                f"this collection was embedded with {record.spec!r}; it cannot be searched "
                f"with {spec!r} (index a separate collection with --db DIR and --model {spec})"
            )

    # -- vectors and index -----------------------------------------------------------------
    def vectors(self, *, raw: bool = False, copy: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(file_ids, embeddings float32 [n, dim])`` of every embedded file, by file id.

        With a learned transform set, the vectors are projected unless ``raw``. Without
        ``copy`` they come as stored: the store's float16 memmap itself when every row is
        live (nothing read until used), else the live rows gathered.
        """
        record = self.require_model()
        file_ids, rows = self.store.live_rows(record.key)
        matrix = self._projection.rows(record, rows, raw=raw)
        return file_ids, np.asarray(matrix, dtype=np.float32) if copy else matrix

    # -- learned transform -----------------------------------------------------------------
    @property
    def transform(self) -> TransformChain | None:
        """The fitted projection (``lookalike learn --db``) applied to every stored
        embedding and every query, or None."""
        return self._projection.chain(self.require_model())

    def set_transform(self, chain: TransformChain | None) -> None:
        """Project stored embeddings and queries through ``chain`` from now on (None: stop).

        Nothing is re-embedded: the index is rebuilt over the projected vectors on next use.
        """
        self._projection.set(self.require_model(), chain)
        self._indexes.forget()

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Backbone embeddings [n, dim] -> the space the index searches (identity when no
        transform is set)."""
        return self._projection.project(self.require_model(), vectors)

    def embedding_matrix(self, record: ModelRecord | None = None) -> np.ndarray:
        """The store's embedding matrix (memory-mapped), or its projection when a transform
        is set (computed once per embeddings version and kept in memory). Rows are store
        rows, live or not (``store.live_rows`` says which)."""
        return self._projection.matrix(record or self.require_model())

    def vector_index(self, progress: Progress | None = None) -> VectorIndex:
        """The vector index, synced with the catalogue: never silently stale.

        Additions are applied incrementally; removals too where the index kind supports
        it, otherwise (and after a compaction) the index is rebuilt. ``progress(done,
        total)`` counts the vectors a build or a change adds.
        """
        record = self.require_model()
        return self._indexes.get(record, self._projection.stamp(record),
                                 partial(self._projection.matrix, record), progress)

    def knn_graph(self, k: int = 16, progress: Progress | None = None, *,
                  raw: bool = False) -> tuple[np.ndarray, KnnGraph]:
        """``(file_ids, graph)``: every embedded image's ``k`` nearest others, in the
        searched space (``raw``: the model's own, even when a transform is set).

        Exact below ``knn.CELL_MIN`` images, by cells above (not through the search index:
        a whole-collection graph is faster and more exact as blocked matrix products), and
        cached on disk until the embeddings change, so successive analyses (duplicates,
        groups, outliers...) share one graph; a cached graph of more neighbours serves a
        smaller ``k`` (its first ``k`` columns are the ``k`` nearest). The cache is
        memory-mapped when read. When the graph (12 bytes per neighbour) would take over a
        quarter of the collection's ``max_memory``, it is also built on disk rather than in
        RAM.
        """
        record = self.require_model()
        stamp = self._projection.stamp(record)
        raw = raw and stamp is not None  # without a transform both spaces are one
        cache = GraphCache(self.directory / "index", f"{record.key}.{'raw.' if raw else ''}knn")
        key = GraphKey.of(record, None if raw else stamp)
        found = cache.find(k, key)
        if found is not None:
            return found
        file_ids, rows = self.store.live_rows(record.key)
        vectors = self._projection.rows(record, rows, raw=raw)  # memmap: read block by block
        budget = self.store.max_memory()
        on_disk = budget is not None and len(rows) * k * 12 > budget // 4
        return file_ids, cache.build(
            k, key, file_ids, lambda out: knn_graph(vectors, k, out=out, progress=progress),
            on_disk=on_disk)

    # -- search ----------------------------------------------------------------------------
    def search(self, query: Query, k: int = 10) -> list[SearchHit]:
        """Images most similar to ``query``: an image file (inside the collection or not),
        a catalogue id, or a vector. The query itself is never returned."""
        return self.search_many([query], k)[0]

    def search_text(self, text: str, k: int = 10) -> list[SearchHit]:
        """Images matching a text description (CLIP-style models only)."""
        return as_hits(self.root, self.search_vectors(self.backbone.embed_text([text]), k)[0])

    def search_many(self, queries: Sequence[Query], k: int = 10) -> list[list[SearchHit]]:
        hits = []
        for found in self.search_queries(queries, k):
            if isinstance(found, Exception):
                raise found
            hits.append(as_hits(self.root, found))
        return hits

    def search_queries(self, queries: Sequence[Query], k: int
                       ) -> list[list[Neighbour] | Exception]:
        """:meth:`search_many` for a batch of independent requests (the web server's): per
        query its ``k`` neighbours, or, as data, why it cannot be searched
        (:class:`NotEmbedded` for an id, ValueError for a vector of the wrong size), so
        one bad query fails only itself. The others take one :meth:`search_vectors`."""
        return search_queries(self.store, self.root, self._searched(), queries, k,
                              lambda query: embed_image(self.backbone, query))

    def search_vectors(self, vectors: np.ndarray, k: int, *,
                       exclude: Sequence[int | None] | None = None) -> list[list[Neighbour]]:
        """The one search, behind :meth:`search`, the CLI and the web server: the ``k``
        files nearest each of ``vectors`` ``[n, dim]`` (the model's own embeddings: the
        learned transform, when one is set, is applied here), best first. ``exclude``:
        per vector, a file id to leave out (the query image itself)."""
        return search_vectors(self.store, self._searched(), vectors, k, exclude=exclude)

    def _searched(self) -> SearchState:
        """The model, index, embeddings and transform a search reads, re-read only after
        a commit (an ``index`` run's, or this collection's own): one cheap check per
        search instead of a dozen catalogue reads."""
        version = self.store.data_version()
        state = self._search_state
        if state is None or state.version != version:
            record = self.require_model()
            state = SearchState(version, record, self.vector_index(),
                                self.store.embeddings(record.key),
                                self._projection.chain(record))
            self._search_state = state
        return state

    def embed_file(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Embed one image file with the collection's model (decode guards included),
        projected by the learned transform when one is set."""
        return self.project(embed_image(self.backbone, path)[None])[0]

    # -- analyses (thin layers over lookalike.analyse) ---------------------------------------
    def paths(self, file_ids: np.ndarray) -> list[str]:
        """Relative paths of catalogue ids, in the same order."""
        by_id = {record.id: record.path for record in self.files()}
        return [by_id[int(file_id)] for file_id in file_ids]

    def duplicates(self, **options: Any) -> DuplicateReport:
        """Exact and near-duplicate groups; see :func:`lookalike.duplicates_job.find_duplicates`."""
        return find_duplicates(self, **options)

    def calibration(self) -> dict[str, Any]:
        """The near-duplicate calibration of the collection's model, the one ``duplicates``
        uses: stored with the collection, measured on first use from synthetic edits of its
        own images (see :func:`lookalike.verify.calibrate`). Its ``near_threshold`` is the
        cosine above which two images are copies on the embedding alone."""
        record = self.require_model()
        if self._calibration is None or self._calibration[0] != record.key:
            # kept here too: a read-only collection measures it once per process
            self._calibration = (record.key, model_calibration(self))
        return self._calibration[1]

    def group_threshold(self, threshold: float | None = None) -> GroupThreshold:
        """The threshold :meth:`groups` uses: ``threshold`` as given, or by default the
        collection's calibrated ``near_threshold`` (measured on first use, see
        :meth:`calibration`), so that the default follows the model: a fixed cosine that
        suits one model groups look-alikes (or nothing) with another."""
        if threshold is not None:
            return GroupThreshold(float(threshold), calibrated=False)
        record = self.require_model()
        if len(self.store.live_rows(record.key)[0]) < 2:
            return GroupThreshold(float("nan"), calibrated=True, model=record.spec)
        calibration = self.calibration()
        return GroupThreshold(float(calibration["near_threshold"]), calibrated=True,
                              model=calibration.get("model") or record.spec)

    def groups(
        self, threshold: float | None = None, *, k: int = 16, mutual: bool = True,
        raw: bool | None = None,
    ) -> GroupReport:
        """Threshold groups: "same place, same moment" sets of images, without chains.

        ``threshold``: the cosine two images need; None: the calibrated one of
        :meth:`group_threshold`. ``raw``: group in the model's own space even when a
        learned transform is set; by default only with the calibrated threshold, which
        holds in that space alone.
        """
        used = self.group_threshold(threshold)
        raw = used.calibrated if raw is None else raw
        found: list[Group] = []
        file_ids, vectors = self.vectors(raw=raw, copy=False)  # read in blocks
        if not math.isnan(used.value):  # NaN: fewer than two images
            graph = self.knn_graph(k, raw=raw)[1]
            found = threshold_groups(vectors, graph, used.value, mutual=mutual)
        return GroupReport(file_ids, self.paths(file_ids), found, used,
                           self.require_model().spec)

    def clusters(self, k: int | str = "auto", *, seed: int = 0) -> ClusterReport:
        """k-means with ``k`` clusters, or a chosen k (``auto``)."""
        file_ids, vectors = self.vectors(copy=False)  # sampled, then assigned in blocks
        if k == "auto":
            choice = auto_k(vectors, seed=seed)
            found = replace(kmeans(vectors, choice.k, seed=seed), chosen=choice)
        else:
            found = kmeans(vectors, int(k), seed=seed)
        return ClusterReport(file_ids, self.paths(file_ids), found)

    def outliers(self, *, k: int = 16) -> OutlierReport:
        """Every image's local outlier factor: higher lies farther from its neighbourhood.

        In a small collection ``k`` is capped at half of it: when every image is every
        other's neighbour, local density compares nothing.
        """
        file_ids, graph = self.knn_graph(k)
        usable = max(1, min(k, (len(file_ids) - 1) // 2))
        return OutlierReport(file_ids, self.paths(file_ids), outlier_scores(graph, k=usable),
                             usable)

    def neighbour_lists(self, k: int = 16) -> tuple[list[Root], list[list[SearchHit]]]:
        """Every embedded image's path and its ``k`` nearest others as search hits, best
        first: :meth:`search_many` over the whole collection, read from the cached k-NN
        graph (:meth:`knn_graph`) rather than searched image by image."""
        file_ids, graph = self.knn_graph(k)
        return graph_hits(self.root, {r.id: r.path for r in self.files("ok")}, file_ids, graph)

    # -- facts -----------------------------------------------------------------------------
    def check(self, repair: bool = False) -> list[Problem]:
        """Verify the collection: catalogue integrity, embeddings (size, zero or non-finite
        rows), the saved vector index and cached graphs (checksums). ``repair`` fixes what
        can be fixed here (bad rows forgotten, damaged derived files rebuilt or removed);
        each remaining problem names the command that fixes it."""
        return facts.check(self.store, self._indexes, self._projection, repair)

    def files(self, status: str | None = None) -> list[FileRecord]:
        return self.store.files(status)

    def info(self) -> CollectionInfo:
        """What the collection holds: counts, model, index, learned transform, disk use."""
        return facts.describe(self.store, self.model)
