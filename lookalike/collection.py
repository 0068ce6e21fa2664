"""Collection: the public Python API over one indexed folder.

    >>> from lookalike import Collection
    >>> c = Collection.index_folder("~/photos")           # creates ~/photos/.lookalike
    >>> hits = Collection.open("~/photos").search("query.jpg", k=10)

The CLI and the web server are thin layers over this class.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .analyse.clusters import Clustering, auto_k, kmeans
from .analyse.groups import Group, threshold_groups
from .analyse.outliers import outlier_scores
from .discover import Root, as_root, discover, is_remote
from .duplicates_job import DuplicateReport, find_duplicates, model_calibration
from .embed import Backbone, Preprocess, load_backbone, resolve_auto
from .embed.transform import TransformChain
from .graph_cache import GraphCache, GraphKey, graph_intact
from .index import INDEX_KINDS, VectorIndex
from .index_manager import IndexManager, live
from .knn import KnnGraph, knn_graph
from .pipeline import Progress, embed_image, embed_pending
from .pipeline_gpu import embed_pending_on_device, gpu_decode_available
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
from .store import (
    CatalogueDamaged,
    FileRecord,
    ModelRecord,
    Problem,
    Store,
    StoreError,
    TransformState,
)

if TYPE_CHECKING:
    from .embed.torch_hub import TorchBackbone

__all__ = [  # with the types of lookalike.records, which callers import from here
    "DEFAULT_DIRNAME", "Collection", "CollectionInfo", "GroupThreshold", "IndexReport",
    "ModelMismatch", "Neighbour", "NoEmbeddings", "NotEmbedded", "Query", "SearchHit",
    "locate", "model_key",
]

log = logging.getLogger(__name__)
DEFAULT_DIRNAME = ".lookalike"
TRANSFORMS_DIRNAME = "transforms"


MAX_FILE_ID = 2**63 - 1  # SQLite's largest integer: no catalogue id is larger
Query = str | os.PathLike[str] | int | np.ndarray  # what search() takes


@dataclass(frozen=True)
class _SearchState:
    """What a search reads from the catalogue, as of one ``Store.data_version``."""

    version: tuple[int, int]
    record: ModelRecord
    index: VectorIndex
    stored: np.ndarray  # the store's embeddings (memory-mapped), by store row
    transform: TransformChain | None


def locate(path: str | os.PathLike[str]) -> Path:
    """A collection directory, given it or the image folder that holds ``.lookalike``."""
    path = Path(path).expanduser().absolute()
    if (path / Store.CATALOGUE).is_file():
        return path
    if (path / DEFAULT_DIRNAME / Store.CATALOGUE).is_file():
        return path / DEFAULT_DIRNAME
    raise StoreError(f"no collection at {path} (create one with: lookalike index FOLDER)")


def _is_folder(root: Root) -> bool:
    """``root.is_dir()``, with a remote store's own errors (no such bucket, no credentials)
    turned into a :class:`StoreError` that says which."""
    try:
        return root.is_dir()
    except OSError:
        return False
    except ImportError as error:  # the fsspec backend of this protocol is not installed
        raise StoreError(f"{root}: {error} (the fsspec backends: pip install s3fs, gcsfs "
                         "or adlfs)") from None
    except Exception as error:  # botocore, gcsfs... errors are not OSErrors
        raise StoreError(f"cannot reach {root}: {error}") from None


def model_key(identity: dict[str, Any]) -> str:
    """A short, file-name-safe key for the model that produced a set of embeddings."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(identity.get("name", "model")).lower()).strip("-")
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{slug[-40:]}-{digest}"


class Collection:
    """An indexed image folder: catalogue, embeddings from one model, and a vector index."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._backbone: Backbone | None = None
        self._indexes = IndexManager(store)
        self._transform: tuple[str, TransformChain] | None = None
        self._projected: tuple[tuple[int, str, str], np.ndarray] | None = None
        self._calibration: tuple[str, dict[str, Any]] | None = None
        self._search_state: _SearchState | None = None
        self._lock = threading.Lock()

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
        root = as_root(root)
        if is_remote(root) and db is None:
            raise StoreError(f"{root} is on object storage: pass --db DIR for the collection "
                             "(its catalogue and embeddings are local files)")
        if not _is_folder(root):
            raise StoreError(f"{root} is not a folder")
        # a remote root has its db given (above): without one, root is a local Path
        directory = Path(db).expanduser().absolute() if db else cast(Path, root) / DEFAULT_DIRNAME
        if (directory / Store.CATALOGUE).is_file() and options.get("rebuild"):
            try:  # --rebuild starts again from whatever is left, a damaged catalogue too
                Store.open(directory).close()
            except CatalogueDamaged:
                Store.set_aside_damaged(directory)
        if (directory / Store.CATALOGUE).is_file():
            collection = cls(Store.open(directory, writable=True))
            if str(collection.root) != str(root if is_remote(root) else root.resolve()):
                raise StoreError(
                    f"the collection at {directory} indexes {collection.root}, not {root}"
                )
        else:
            collection = cls(Store.create(directory, root))
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
        record = self.model
        options = _load_options(weights, preprocess, output, pretrained, border_crop, flip)
        if member_preprocess:  # --preprocess SPEC=JSON: per ensemble member, as eval does
            options["member_preprocess"] = {spec: dict(value) for spec, value
                                            in member_preprocess.items()}
        augment_changed = record is not None and (border_crop or flip) and (
            (border_crop, flip) != (record.options.get("border_crop", False),
                                    record.options.get("flip", False)))
        if (record is None or rebuild or augment_changed
                or model not in (None, "auto", record.spec)):
            if record is not None and not rebuild:
                wanted = record.spec if model in (None, "auto") else model
                wanted += "".join(f" +{name}" for name, on in
                                  (("border-crop", border_crop), ("flip", flip)) if on)
                raise ModelMismatch(
                    f"this collection holds embeddings from {record.spec!r} "
                    f"({_augment_text(record.options)}); indexing it with {wanted!r} would "
                    f"mix models. Use --rebuild to re-embed everything with {wanted!r}, or "
                    "--db DIR for a separate collection."
                )
            if model not in (None, "auto"):
                spec = model
            else:  # a rebuild keeps the recorded model: models never change silently
                spec = record.spec if record is not None else resolve_auto()
            backbone = load_backbone(spec, **options)
            record = self._start_model(backbone, spec, options)
            new_model = True
        else:
            backbone, new_model = self.backbone, False
        if max_memory is not None:
            self.store.set_max_memory(max_memory)
        if index_kind is not None:
            if index_kind != "auto" and index_kind not in INDEX_KINDS:
                raise ValueError(f"index kind must be auto or one of {', '.join(INDEX_KINDS)}")
            self.store.set_index_kind(index_kind)
        changes = self.store.sync_files(discover(self.root))
        if ray is not None:
            from .pipeline_ray import embed_pending_ray

            report = embed_pending_ray(self.store, record.key, address=ray, workers=workers,
                                       progress=progress)
        elif device_decode or (device_decode is None and gpu_decode_available(backbone)):
            report = embed_pending_on_device(self.store, record.key,
                                             cast("TorchBackbone", backbone),
                                             workers=workers, batch_size=batch_size,
                                             progress=progress)
        else:
            report = embed_pending(self.store, record.key, backbone, workers=workers,
                                   batch_size=batch_size, progress=progress)
        self.store.compact(record.key)
        index = self.vector_index(progress=index_progress)
        skipped_total = self.store.status_counts().get("skipped", 0)
        return IndexReport(changes, report, record.spec, index.kind,
                           time.perf_counter() - started, skipped_total, new_model)

    def _start_model(self, backbone: Backbone, spec: str, options: dict[str, Any]) -> ModelRecord:
        identity = backbone.identity()
        key = model_key(identity)
        for old in self.store.models():
            self.store.drop_model(old.key)
            self.store.delete_embeddings_file(old.file)
        record = self.store.add_model(key, spec, options, identity, backbone.dim)
        self.store.set_embeds_text(key, backbone.embeds_text)
        self.store.set_current_model(key)
        self._backbone = backbone
        self._indexes.forget()
        return record

    @property
    def backbone(self) -> Backbone:
        """The collection's own model, loaded lazily and checked against what was recorded."""
        if self._backbone is None:
            record = self.require_model()
            backbone = load_backbone(record.spec, **record.options)
            if json.loads(json.dumps(backbone.identity())) != record.identity:
                raise ModelMismatch(
                    f"model {record.spec!r} no longer matches the one that built this "
                    "collection (weights or preprocessing changed); re-index with --rebuild"
                )
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
        matrix = self._live_matrix(record, rows, raw=raw)
        return file_ids, np.asarray(matrix, dtype=np.float32) if copy else matrix

    def _live_matrix(self, record: ModelRecord, rows: np.ndarray, *,
                     raw: bool = False) -> np.ndarray:
        """The embeddings of ``rows`` (``raw``: never projected, else as searched)."""
        return live(self.store.embeddings(record.key) if raw else self.embedding_matrix(record),
                    rows)

    # -- learned transform -----------------------------------------------------------------
    @property
    def transform(self) -> TransformChain | None:
        """The fitted projection (``lookalike learn --db``) applied to every stored
        embedding and every query, or None."""
        record = self.require_model()
        state = self.store.transform_state(record.key)
        if state is None:
            return None
        if self._transform is None or self._transform[0] != state.stamp:
            chain = TransformChain.load(self.directory / TRANSFORMS_DIRNAME / record.key)
            self._transform = (state.stamp, chain)
        return self._transform[1]

    def set_transform(self, chain: TransformChain | None) -> None:
        """Project stored embeddings and queries through ``chain`` from now on (None: stop).

        Nothing is re-embedded: the index is rebuilt over the projected vectors on next use.
        """
        record = self.require_model()
        if chain is None:
            self.store.set_transform_state(record.key, None)
        else:
            fitted_for = chain.info.get("input_dim")
            if fitted_for not in (None, record.dim):
                raise ModelMismatch(
                    f"the transform was fitted on {fitted_for}-d embeddings "
                    f"({chain.info.get('model')}); this collection's model "
                    f"{record.spec!r} gives {record.dim}-d ones"
                )
            saved = chain.save(self.directory / TRANSFORMS_DIRNAME / record.key)
            stamp = hashlib.sha1(saved.read_bytes()).hexdigest()[:12]
            self.store.set_transform_state(record.key, TransformState(stamp, chain.description))
        self._indexes.forget()
        with self._lock:
            self._transform = self._projected = None

    def _transform_stamp(self, record: ModelRecord) -> str | None:
        state = self.store.transform_state(record.key)
        return None if state is None else state.stamp

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Backbone embeddings [n, dim] -> the space the index searches (identity when no
        transform is set)."""
        chain = self.transform
        vectors = np.asarray(vectors, dtype=np.float32)
        return vectors if chain is None else chain.transform(vectors)

    def embedding_matrix(self, record: ModelRecord | None = None) -> np.ndarray:
        """The store's embedding matrix (memory-mapped), or its projection when a transform
        is set (computed once per embeddings version and kept in memory). Rows are store
        rows, live or not (``store.live_rows`` says which)."""
        record = record or self.require_model()
        matrix = self.store.embeddings(record.key)
        stamp = self._transform_stamp(record)
        if stamp is None:
            return matrix
        version = (record.version, record.file, stamp)
        if self._projected is None or self._projected[0] != version:
            chunks = [self.project(matrix[start:start + 65_536])
                      for start in range(0, len(matrix), 65_536)]
            projected = (np.concatenate(chunks) if chunks else
                         self.project(np.zeros((0, record.dim), np.float32)))
            self._projected = (version, projected)
        return self._projected[1]

    def vector_index(self, progress: Progress | None = None) -> VectorIndex:
        """The vector index, synced with the catalogue: never silently stale.

        Additions are applied incrementally; removals too where the index kind supports
        it, otherwise (and after a compaction) the index is rebuilt. ``progress(done,
        total)`` counts the vectors a build or a change adds.
        """
        record = self.require_model()
        return self._indexes.get(record, self._transform_stamp(record),
                                 lambda: self.embedding_matrix(record), progress)

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
        stamp = self._transform_stamp(record)
        raw = raw and stamp is not None  # without a transform both spaces are one
        cache = GraphCache(self.directory / "index", f"{record.key}.{'raw.' if raw else ''}knn")
        key = GraphKey.of(record, None if raw else stamp)
        found = cache.find(k, key)
        if found is not None:
            return found
        file_ids, rows = self.store.live_rows(record.key)
        vectors = self._live_matrix(record, rows, raw=raw)  # memmap: read block by block
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
        return self._hits(self.search_vectors(self.backbone.embed_text([text]), k)[0])

    def search_many(self, queries: Sequence[Query], k: int = 10) -> list[list[SearchHit]]:
        hits = []
        for found in self.search_queries(queries, k):
            if isinstance(found, Exception):
                raise found
            hits.append(self._hits(found))
        return hits

    def search_queries(self, queries: Sequence[Query], k: int
                       ) -> list[list[Neighbour] | Exception]:
        """:meth:`search_many` for a batch of independent requests (the web server's): per
        query its ``k`` neighbours, or, as data, why it cannot be searched
        (:class:`NotEmbedded` for an id, ValueError for a vector of the wrong size), so
        one bad query fails only itself. The others take one :meth:`search_vectors`."""
        state = self._searched()
        results: list[list[Neighbour] | Exception] = []
        vectors, own, searched = [], [], []  # searched: positions of the resolved queries
        for position, query in enumerate(queries):
            resolved = self._query_vector(state, query)
            if isinstance(resolved, Exception):
                results.append(resolved)
                continue
            results.append([])
            vectors.append(resolved[0])
            own.append(resolved[1])
            searched.append(position)
        if searched:
            found = self.search_vectors(np.stack(vectors), k, exclude=own)
            for position, near in zip(searched, found):
                results[position] = near
        return results

    def _query_vector(self, state: _SearchState, query: Query
                      ) -> tuple[np.ndarray, int | None] | Exception:
        """``(vector, own file id)`` in the model's own space: an embedded image's stored
        vector (by id, or by a path inside the collection; its id is left out of its
        results), a vector as given, or another image file embedded. Or why not."""
        if isinstance(query, np.ndarray):
            dim = state.record.dim
            return ((query.astype(np.float32), None) if query.shape == (dim,) else
                    ValueError(f"query vector must have {dim} numbers, not {query.size}"))
        file_id = self._file_id(query)
        row = None if file_id is None else self.store.row_for_file(state.record.key, file_id)
        if row is not None and row < len(state.stored):
            return np.asarray(state.stored[row], dtype=np.float32), file_id
        if isinstance(query, (int, np.integer)):
            return NotEmbedded(f"no embedded image with id {query}")
        return embed_image(self.backbone, query), None

    def search_vectors(self, vectors: np.ndarray, k: int, *,
                       exclude: Sequence[int | None] | None = None) -> list[list[Neighbour]]:
        """The one search, behind :meth:`search`, the CLI and the web server: the ``k``
        files nearest each of ``vectors`` ``[n, dim]`` (the model's own embeddings: the
        learned transform, when one is set, is applied here), best first. ``exclude``:
        per vector, a file id to leave out (the query image itself)."""
        state = self._searched()
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != state.record.dim:
            raise ValueError(f"query vectors must have shape (n, {state.record.dim}), "
                             f"not {vectors.shape}")
        if state.transform is not None:
            vectors = state.transform.transform(vectors)
        scores, keys = state.index.search(np.ascontiguousarray(vectors), k + 1)
        files = self.store.files_for_rows(state.record.key, keys.ravel())
        found: list[list[Neighbour]] = []
        for row_scores, row_keys, own in zip(scores, keys, exclude or [None] * len(vectors)):
            near: list[Neighbour] = []
            for score, key in zip(row_scores, row_keys):
                record = files.get(int(key)) if key >= 0 else None
                if record is None or record.id == own:
                    continue  # padding, the query itself, or a row that died meanwhile
                near.append(Neighbour(float(score), record))
                if len(near) == k:
                    break
            found.append(near)
        return found

    def _searched(self) -> _SearchState:
        """The model, index, embeddings and transform a search reads, re-read only after
        a commit (an ``index`` run's, or this collection's own): one cheap check per
        search instead of a dozen catalogue reads."""
        version = self.store.data_version()
        state = self._search_state
        if state is None or state.version != version:
            record = self.require_model()
            state = _SearchState(version, record, self.vector_index(),
                                 self.store.embeddings(record.key), self.transform)
            self._search_state = state
        return state

    def _hits(self, found: list[Neighbour]) -> list[SearchHit]:
        return [SearchHit(rank, n.score, n.record.id, n.record.path, self.root / n.record.path)
                for rank, n in enumerate(found, start=1)]

    def _file_id(self, query: object) -> int | None:
        """The catalogue id a query names: an id, or a local path inside the folder."""
        if isinstance(query, (int, np.integer)):
            return int(query) if 0 <= query <= MAX_FILE_ID else None
        if isinstance(query, (str, os.PathLike)) and not is_remote(self.root):
            path = Path(query).expanduser().absolute()
            try:
                relative = path.resolve().relative_to(self.root).as_posix()
            except ValueError:
                return None
            found = self.store.file_by_path(relative)
            return found.id if found else None
        return None

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
    ) -> tuple[np.ndarray, list[Group]]:
        """``(file_ids, groups)``: seed 001's threshold groups (positions index file_ids).

        ``threshold``: the cosine two images need; None: the calibrated one of
        :meth:`group_threshold`. ``raw``: group in the model's own space even when a
        learned transform is set; by default only with the calibrated threshold, which
        holds in that space alone.
        """
        used = self.group_threshold(threshold)
        raw = used.calibrated if raw is None else raw
        if math.isnan(used.value):  # fewer than two images
            return self.vectors(copy=False)[0], []
        file_ids, graph = self.knn_graph(k, raw=raw)
        _, vectors = self.vectors(raw=raw, copy=False)  # read in blocks
        return file_ids, threshold_groups(vectors, graph, used.value, mutual=mutual)

    def clusters(self, k: int | str = "auto", *, seed: int = 0) -> tuple[np.ndarray, Clustering]:
        """``(file_ids, clustering)``: k-means with ``k`` clusters, or a chosen k (``auto``)."""
        file_ids, vectors = self.vectors(copy=False)  # sampled, then assigned in blocks
        if k == "auto":
            choice = auto_k(vectors, seed=seed)
            return file_ids, replace(kmeans(vectors, choice.k, seed=seed), chosen=choice)
        return file_ids, kmeans(vectors, int(k), seed=seed)

    def outliers(self, *, k: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """``(file_ids, scores)``: higher scores lie farther from their neighbourhood.

        In a small collection ``k`` is capped at half of it: when every image is every
        other's neighbour, local density compares nothing.
        """
        file_ids, graph = self.knn_graph(k)
        usable = max(1, min(k, (len(file_ids) - 1) // 2))
        return file_ids, outlier_scores(graph, k=usable)

    def neighbour_lists(self, k: int = 16) -> tuple[list[Root], list[list[SearchHit]]]:
        """Every embedded image's path and its ``k`` nearest others as search hits, best
        first: :meth:`search_many` over the whole collection, read from the cached k-NN
        graph (:meth:`knn_graph`) rather than searched image by image."""
        file_ids, graph = self.knn_graph(k)
        paths = {record.id: record.path for record in self.files("ok")}
        images = [self.root / paths[int(i)] for i in file_ids]
        hits = [
            [SearchHit(rank + 1, float(score), int(file_ids[j]), paths[int(file_ids[j])],
                       self.root / paths[int(file_ids[j])])
             for rank, (j, score) in enumerate(zip(row, scores)) if j >= 0]
            for row, scores in zip(graph.neighbours, graph.scores)
        ]
        return images, hits

    # -- facts -----------------------------------------------------------------------------
    def check(self, repair: bool = False) -> list[Problem]:
        """Verify the collection: catalogue integrity, embeddings (size, zero or non-finite
        rows), the saved vector index and cached graphs (checksums). ``repair`` fixes what
        can be fixed here (bad rows forgotten, damaged derived files rebuilt or removed);
        each remaining problem names the command that fixes it."""
        problems = self.store.check(repair=repair)
        record = None if any(problem.fatal for problem in problems) else self.model
        if record is None:
            return problems
        problems += self._indexes.check(record, self._transform_stamp(record),
                                        lambda: self.embedding_matrix(record), repair)
        for folder in sorted((self.directory / "index").glob(f"{record.key}.*knn*")):
            if folder.is_dir() and not folder.is_symlink() and not graph_intact(folder):
                if repair:
                    shutil.rmtree(folder)
                problems.append(Problem(f"the cached neighbour graph {folder.name} is damaged",
                                        "lookalike check --repair (or the next analysis "
                                        "rebuilds it)", repaired=repair))
        return problems

    def files(self, status: str | None = None) -> list[FileRecord]:
        return self.store.files(status)

    def info(self) -> CollectionInfo:
        record = self.model
        counts = self.store.status_counts()
        index_kind = None
        fresh = False
        embedded = dead = 0
        transform = None
        if record is not None:
            state = self.store.index_state(record.key)
            learned = self.store.transform_state(record.key)
            transform = learned.description if learned else None
            index_kind = state.kind if state else None
            fresh = (state is not None and state.version == record.version
                     and state.file == record.file
                     and state.transform == (learned.stamp if learned else None))
            embedded = len(self.store.live_rows(record.key)[1])
            dead = record.rows - embedded
        return CollectionInfo(
            directory=self.directory, root=self.root, counts=counts,
            model=record.key if record else None, model_spec=record.spec if record else None,
            dim=record.dim if record else None, index_kind=index_kind, index_fresh=fresh,
            disk_bytes=self.store.disk_usage(), embedded=embedded, dead_rows=dead,
            skipped=[(f.path, f.reason or "") for f in self.store.files("skipped")],
            identity=record.identity if record else {},
            augmentation=_augment_text(record.options) if record else "no augmentation",
            transform=transform,
        )


def _load_options(
    weights: str | os.PathLike[str] | None,
    preprocess: Preprocess | dict[str, Any] | None,
    output: str | None,
    pretrained: bool,
    border_crop: bool = False,
    flip: bool = False,
) -> dict[str, Any]:
    """The backbone options worth recording so that queries reload the same model."""
    options: dict[str, Any] = {}
    if weights is not None:
        options["weights"] = str(Path(weights).expanduser().absolute())
    if preprocess is not None:
        options["preprocess"] = (
            preprocess.to_dict() if isinstance(preprocess, Preprocess) else dict(preprocess)
        )
    if output is not None:
        options["output"] = output
    if not pretrained:
        options["pretrained"] = False
    if border_crop:
        options["border_crop"] = True
    if flip:
        options["flip"] = True
    return options


def _augment_text(options: dict[str, Any]) -> str:
    chosen = [name for name, key in (("border crop", "border_crop"), ("flip TTA", "flip"))
              if options.get(key)]
    return ", ".join(chosen) or "no augmentation"
