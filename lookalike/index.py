"""The vector-index stage: nearest-neighbour search over the store's embeddings.

Arrays in, arrays out, in the style of the FAISS Python API. Embeddings are float32,
L2-normalised rows, so cosine similarity is the inner product everywhere; queries must be
normalised the same way (nothing here re-normalises them). Keys are non-negative int64: the
embedding row numbers of the store.

Four kinds, picked by collection size (``choose_kind``) or by the user:

* ``flat``: exact brute force (``IndexIDMap2(IndexFlatIP)``); add and remove.
* ``hnsw``: graph index (``IndexIDMap2(IndexHNSWFlat)``); add, but no remove.
* ``ivfpq``: inverted lists of PQ codes, re-ranked exactly from a float16 copy; add and remove.
* ``annoy``: random-projection forest, memory-mapped when loaded; immutable once built.

An index saved to ``path`` is ``path`` itself plus a JSON sidecar ``path.json`` (kind, dim,
params, count) that ``load_index`` reads first; an annoy index also writes its keys to
``path.keys.npy``. Each file is replaced atomically and the sidecar is written last, so
readers never see a half-written file; a crash between the files can leave a new index with
the old sidecar, which ``load_index`` reports when their counts disagree.
"""

from __future__ import annotations

import json
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import faiss
import numpy as np

from .extras import import_module
from .faiss_util import sample_rows
from .ownership import atomic_write, checksum

if TYPE_CHECKING:
    import annoy

INDEX_KINDS = ("flat", "hnsw", "ivfpq", "annoy")

FLAT_MAX = 50_000
HNSW_MAX = 5_000_000

# Rows converted to float32 at a time when the input is float16 (e.g. a memmap of the store):
# 65,536 x 384 float32 is 96 MiB, so a 1M-row build never holds a second full-size copy.
_CHUNK_ROWS = 65_536

# IVF cells: beyond this many, training and adding cost more than the probing saves on 2
# cores; past _HNSW_QUANTIZER_NLIST cells an HNSW graph of the centroids routes vectors.
_MAX_NLIST = 8192
_HNSW_QUANTIZER_NLIST = 4096

# k-means / PQ need this many training points per centroid to give stable centroids (it is
# also the threshold below which FAISS warns).
_MIN_POINTS_PER_CENTROID = 39

log = logging.getLogger(__name__)


def default_ef_search(n: int) -> int:
    """HNSW ``ef_search`` for ``n`` vectors: the smallest power of two reaching
    recall@10 >= 0.95 with a margin in benchmarks/bench_search.py. 64 up to 200k (0.990 at
    100k, 0.26 ms); 128 above (0.965 at 1M, where 64 gives 0.91)."""
    return 64 if n <= 200_000 else 128


def choose_kind(n: int, dim: int = 384, max_memory: int | None = None) -> str:
    """The kind ``"auto"`` resolves to for ``n`` vectors of ``dim`` dimensions.

    Exact search is a memory scan: one query over 100k x 272 takes ~20 ms on one core,
    too slow for a server answering many clients, so exact stops at 50k vectors (~10 ms).
    HNSW (recall@10 0.998 at 100k, 0.965 at 1M, under 1.5 ms) is the best speed/recall
    trade-off while a float32 copy of everything fits in RAM (5M x 384 is 7.7 GB); above
    that IVF-PQ keeps the candidate search in compact codes. ``max_memory`` (bytes) moves
    to IVF-PQ (about 56 bytes per vector, re-ranking from the store) as soon as the
    choice would hold more than that in RAM.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, not {n}")
    kind = "flat" if n < FLAT_MAX else "hnsw" if n <= HNSW_MAX else "ivfpq"
    if max_memory is not None and kind != "ivfpq" and ivfpq_trainable(n):
        if index_memory(kind, n, dim) > max_memory:
            kind = "ivfpq"
    return kind


def index_memory(kind: str, n: int, dim: int) -> int:
    """Bytes of RAM an index of ``n`` x ``dim`` vectors holds (estimate): flat and HNSW
    keep float32 vectors and 8-byte ids, HNSW adds ~64 links of 4 bytes per vector at
    m = 32; IVF-PQ keeps 48-byte codes and ids, re-ranking from the store on disk."""
    per_vector = {"flat": 4 * dim + 8, "hnsw": 4 * dim + 8 + 64 * 4, "ivfpq": 56,
                  "annoy": 4 * dim + 8}[kind]
    return n * per_vector


class VectorIndex(ABC):
    """Common interface of every kind: keyed add/remove/search over unit vectors."""

    kind: ClassVar[str]
    supports_add: ClassVar[bool] = True
    supports_remove: ClassVar[bool] = False

    def __init__(self, dim: int) -> None:
        self.dim = dim

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Build and search parameters, as recorded in the sidecar."""

    @abstractmethod
    def keys(self) -> np.ndarray:
        """The int64 keys currently held, sorted."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _add_chunk(self, vectors: np.ndarray, keys: np.ndarray) -> None:
        """Add validated float32 rows (at most ``_CHUNK_ROWS``) under new keys."""

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of a non-empty index; may leave missing results as key -1, any score."""

    @abstractmethod
    def _write(self, path: Path) -> None:
        """Write the index data files for ``path`` (each atomically); not the sidecar."""

    @classmethod
    @abstractmethod
    def _read(cls, path: Path, meta: dict[str, Any], mmap: bool = False) -> VectorIndex:
        """Open what ``_write`` wrote, with the sidecar's ``meta``; ``mmap``: read-only
        from the page cache where the kind supports it (others load as usual)."""

    def add(self, vectors: np.ndarray, keys: np.ndarray,
            progress: Callable[[int, int], None] | None = None) -> None:
        """Add ``vectors`` ([n, dim], float16/32/64) under ``keys`` not already present;
        ``progress(done, total)`` counts them."""
        vectors, keys = _check_batch(vectors, keys, self.dim)
        clash = keys[np.isin(keys, self.keys())]
        if clash.size:
            raise ValueError(f"{clash.size} keys are already in the index, e.g. {clash[0]}")
        self._add_chunks(vectors, keys, progress)

    def _add_chunks(self, vectors: np.ndarray, keys: np.ndarray,
                    progress: Callable[[int, int], None] | None) -> None:
        done = 0
        for chunk, chunk_keys in _float32_chunks(vectors, keys):
            self._add_chunk(chunk, chunk_keys)
            done += len(chunk_keys)
            if progress:
                progress(done, len(keys))

    def remove(self, keys: np.ndarray) -> None:
        """Drop ``keys``; keys not in the index are ignored.

        Kinds with ``supports_remove = False`` raise ``NotImplementedError``: the caller
        rebuilds the index without those keys instead.
        """
        raise NotImplementedError(f"a {self.kind} index cannot remove vectors; rebuild it")

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest keys of each query row.

        Returns ``(scores, keys)``, float32 and int64 ``[m, k]``, ordered by descending
        cosine similarity. Approximate kinds may miss true neighbours, but the scores they
        return are true cosines (ivfpq: from float16 copies, so to ~1e-4; with ``rerank=0``
        only PQ estimates). Rows with fewer than ``k`` results are padded with key -1 and
        score -inf.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must have shape [m, {self.dim}], not {queries.shape}")
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        if len(self) == 0 or len(queries) == 0:
            return _padding(len(queries), k)
        scores, keys = self._search(queries, k)
        scores = np.asarray(scores, dtype=np.float32)
        keys = np.asarray(keys, dtype=np.int64)
        scores[keys < 0] = -np.inf
        return scores, keys

    def save(self, path: Path) -> None:
        """Write the index to ``path`` and its sidecar ``path.json``, each atomically."""
        path = Path(path)
        self._write(path)
        self.write_sidecar(path, len(self))

    def write_sidecar(self, path: Path, count: int) -> None:
        """Write ``path.json``: this index's kind, dim and params, for ``count`` vectors
        (the sidecar is written last: it vouches for a complete data file)."""
        meta = {"kind": self.kind, "dim": self.dim, "params": self.params, "count": count,
                "checksums": {data.name: checksum(data) for data in _data_files(path)}}
        atomic_write(_sidecar(path), lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} dim={self.dim} count={len(self)} params={self.params}>"


class _IdMapIndex(VectorIndex):
    """A FAISS index wrapped in ``IndexIDMap2``, which maps keys to rows (flat and hnsw)."""

    def __init__(self, index: Any) -> None:
        super().__init__(index.d)
        self._index = index

    def keys(self) -> np.ndarray:
        return np.sort(faiss.vector_to_array(self._index.id_map))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def _add_chunk(self, vectors: np.ndarray, keys: np.ndarray) -> None:
        self._index.add_with_ids(vectors, keys)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._index.search(queries, k)

    def _write(self, path: Path) -> None:
        atomic_write(path, lambda tmp: _write_faiss(tmp, self._index))


class FlatIndex(_IdMapIndex):
    """Exact inner-product search: every query scans every vector."""

    kind = "flat"
    supports_remove = True

    @classmethod
    def create(cls, dim: int) -> FlatIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    @property
    def params(self) -> dict[str, Any]:
        return {}

    def remove(self, keys: np.ndarray) -> None:
        self._index.remove_ids(faiss.IDSelectorBatch(_as_keys(keys)))

    @classmethod
    def _read(cls, path: Path, meta: dict[str, Any], mmap: bool = False) -> FlatIndex:
        return cls(_read_faiss(path)[0])


class HNSWIndex(_IdMapIndex):
    """HNSW graph over full float32 vectors (``IndexHNSWFlat``, inner product).

    ``ef_search`` (candidate-list size per query) trades speed for recall and may be changed
    at any time; ``build_index`` sets :func:`default_ef_search` for the size. FAISS HNSW
    cannot delete nodes, hence no ``remove``.
    """

    kind = "hnsw"

    def __init__(self, index: Any, ef_search: int) -> None:
        super().__init__(index)
        self._hnsw = faiss.downcast_index(index.index).hnsw
        self.ef_search = ef_search

    @classmethod
    def create(
        cls, dim: int, *, m: int = 32, ef_construction: int = 80, ef_search: int = 128
    ) -> HNSWIndex:
        graph = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = ef_construction
        return cls(faiss.IndexIDMap2(graph), ef_search)

    @property
    def ef_search(self) -> int:
        return int(self._hnsw.efSearch)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"ef_search must be at least 1, not {value}")
        self._hnsw.efSearch = int(value)

    @property
    def params(self) -> dict[str, Any]:
        return {
            "m": self._hnsw.nb_neighbors(1),
            "ef_construction": int(self._hnsw.efConstruction),
            "ef_search": self.ef_search,
        }

    @classmethod
    def _read(cls, path: Path, meta: dict[str, Any], mmap: bool = False) -> HNSWIndex:
        return cls(_read_faiss(path)[0], meta["params"]["ef_search"])


class IVFPQIndex(VectorIndex):
    """Inverted file (``nlist`` k-means cells) of product-quantised residuals.

    The search probes the ``nprobe`` nearest cells and scores their PQ codes (``m`` bytes
    per vector at 8 bits). PQ scores alone are too coarse for a 0.95 recall@10 at a compact
    code size, so by default the best ``rerank`` candidates are re-scored exactly against a
    float16 copy of the vectors (``IndexIDMap2(IndexScalarQuantizer(fp16))``): 2 * dim bytes
    per vector, half of what a flat index holds, and lossless when the store's embeddings
    are float16 themselves. ``rerank=0`` at build time drops that copy for the smallest
    memory (then raise ``m``, e.g. to dim / 2, to keep recall); the returned scores are then
    PQ approximations. ``nprobe`` and ``rerank`` may be changed at any time (``rerank``
    only on an index built with re-ranking).

    ``rerank_source="external"`` keeps no copy at all: candidates are re-scored from an
    array the caller attaches (:meth:`attach`), row ``key`` holding the vector of key
    ``key``: the store's own memory-mapped float16 embeddings. That is how 10M x 384 fits
    in a few GB of RAM (48-byte codes; only the rows a query touches are read).
    """

    kind = "ivfpq"
    supports_remove = True

    def __init__(self, ivf: Any, exact: Any | None, nprobe: int, rerank: int,
                 external: bool = False, memory_mapped: bool = False) -> None:
        super().__init__(ivf.d)
        self._ivf = ivf
        self._exact = exact
        self._rerank = rerank
        self._external = external
        self._source: np.ndarray | None = None
        self.nprobe = nprobe
        # codes and ids read from the page cache (``load_index(..., mmap=True)``): RAM holds
        # only the quantizers, but FAISS aborts the process on any change, so none is let
        # through
        self.memory_mapped = memory_mapped

    def attach(self, source: np.ndarray) -> None:
        """The array to re-rank from (``rerank_source="external"``): ``source[key]`` is the
        vector stored under ``key``, e.g. a float16 memmap of the store."""
        if source.ndim != 2 or source.shape[1] != self.dim:
            raise ValueError(f"re-rank source must be [n, {self.dim}], not {source.shape}")
        self._source = source

    @classmethod
    def train(
        cls,
        vectors: np.ndarray,
        *,
        nlist: int | None = None,
        m: int | None = None,
        nbits: int | None = None,
        nprobe: int = 64,
        rerank: int | None = None,
        rerank_source: str = "copy",
        hnsw_quantizer_nlist: int = _HNSW_QUANTIZER_NLIST,
    ) -> IVFPQIndex:
        """An empty index whose quantisers are trained on (a sample of) ``vectors``.

        ``rerank`` = 400 sqrt(n / 1M), between 400 and 2,000. 48-byte PQ codes rank
        near-ties poorly, and denser collections have more of them: on clustered 384-d
        vectors (benchmarks/bench_large.py) the true top 10 is 87 % inside PQ's best 100
        at 1M and 99.9 % inside its best 400; at 10M, 400 keeps 87 % and 1,000 keeps 97 %,
        at 2.3 ms p99. Exact re-scoring reads ~1 kB per candidate.

        Defaults: ``nlist`` = 4 sqrt(n), at most n / 39 and ``_MAX_NLIST``; ``m`` = the
        largest divisor of dim not above dim / 8 (48 bytes at 384-d); ``nbits`` = 8, or fewer
        when n < 39 * 256 so that each PQ centroid still gets 39 training points.
        ``build_index`` falls back to a flat index when n is too small for even 4 bits.
        Above ``hnsw_quantizer_nlist`` cells (4,096), vectors find their cell through an HNSW
        graph of the centroids instead of a scan of all of them (10M adds: minutes, not an
        hour).
        """
        if rerank is None:
            rerank = int(np.clip(round(400 * math.sqrt(len(vectors) / 1e6)), 400, 2000))
        if rerank_source not in ("copy", "external"):
            raise ValueError(f"rerank_source must be copy or external, not {rerank_source!r}")
        n, dim = vectors.shape
        nlist = nlist or max(1, min(round(4 * math.sqrt(n)), n // _MIN_POINTS_PER_CENTROID,
                                    _MAX_NLIST))
        m = m or max(d for d in range(1, max(1, dim // 8) + 1) if dim % d == 0)
        nbits = nbits or _ivfpq_nbits(n)
        if dim % m:
            raise ValueError(f"m={m} sub-quantizers must divide the dimension {dim}")
        if rerank < 0:
            raise ValueError(f"rerank must be non-negative, not {rerank}")
        quantizer = (faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
                     if nlist > hnsw_quantizer_nlist else faiss.IndexFlatIP(dim))
        ivf = faiss.IndexIVFPQ(quantizer, dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        # k-means would use up to 256 points per cell; 64 are plenty for cells that only
        # route the search (and re-ranking forgives a slightly off cell), at 1/4 of the time;
        # for the largest nlist 39 (FAISS' minimum), to keep training near 10 minutes.
        per_cell = 64 if nlist <= hnsw_quantizer_nlist else _MIN_POINTS_PER_CENTROID
        ivf.train(sample_rows(vectors, max(per_cell * nlist, 256 * 2**nbits),
                              chunk_rows=_CHUNK_ROWS))
        if isinstance(quantizer, faiss.IndexHNSWFlat):
            quantizer.hnsw.efSearch = 64
        exact = None
        if rerank and rerank_source == "copy":
            exact = faiss.IndexIDMap2(
                faiss.IndexScalarQuantizer(
                    dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
                )
            )
        return cls(ivf, exact, nprobe, rerank, external=rerank_source == "external")

    @property
    def ivf(self) -> Any:
        """The FAISS ``IndexIVFPQ`` holding the cells and codes (read-only use)."""
        return self._ivf

    @property
    def rerank(self) -> int:
        """Candidates re-scored exactly per query; changeable unless built with 0."""
        return self._rerank

    @rerank.setter
    def rerank(self, value: int) -> None:
        if value < 1 or not self._rerank:
            raise ValueError("rerank must be at least 1, on an index built with re-ranking")
        self._rerank = int(value)

    @property
    def nprobe(self) -> int:
        return int(self._ivf.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"nprobe must be at least 1, not {value}")
        self._ivf.nprobe = int(value)

    @property
    def params(self) -> dict[str, Any]:
        return {
            "nlist": int(self._ivf.nlist),
            "m": int(self._ivf.pq.M),
            "nbits": int(self._ivf.pq.nbits),
            "nprobe": self.nprobe,
            "rerank": self._rerank,
            "rerank_source": "external" if self._external else "copy",
        }

    def keys(self) -> np.ndarray:
        if self._exact is not None:
            return np.sort(faiss.vector_to_array(self._exact.id_map))
        parts = [ids.copy() for _, ids, _ in self.cells()]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def cells(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(cell, ids [count], codes [count, code_size])`` of every non-empty cell: views
        of FAISS's lists (of the page cache when memory-mapped), valid while the index is."""
        lists, code_size = self._ivf.invlists, int(self._ivf.code_size)
        for cell in range(int(lists.nlist)):
            count = lists.list_size(cell)
            if count:
                ids = faiss.rev_swig_ptr(lists.get_ids(cell), count)
                codes = faiss.rev_swig_ptr(lists.get_codes(cell), count * code_size)
                yield cell, ids, codes.reshape(count, code_size)

    def __len__(self) -> int:
        return int(self._ivf.ntotal)

    def _add_chunk(self, vectors: np.ndarray, keys: np.ndarray) -> None:
        self._refuse_if_mapped()
        self._ivf.add_with_ids(vectors, keys)
        if self._exact is not None:
            self._exact.add_with_ids(vectors, keys)

    def remove(self, keys: np.ndarray) -> None:
        self._refuse_if_mapped()
        selector = faiss.IDSelectorBatch(_as_keys(keys))
        self._ivf.remove_ids(selector)
        if self._exact is not None:
            self._exact.remove_ids(selector)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not self._rerank:
            return self._ivf.search(queries, k)
        if self._external and self._source is None:
            raise ValueError("this IVF-PQ index re-ranks from external vectors: attach() "
                             "the embeddings first")
        _, candidates = self._ivf.search(queries, max(k, self._rerank))
        scores = np.empty(candidates.shape, dtype=np.float32)
        # Decoded candidates are [rows, candidates, dim] floats: bound them to ~64 MiB.
        rows = max(1, (16 << 20) // (candidates.shape[1] * self.dim))
        for start in range(0, len(queries), rows):
            block = slice(start, start + rows)
            scores[block] = self._exact_scores(queries[block], candidates[block])
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, best, 1), np.take_along_axis(candidates, best, 1)

    def _exact_scores(self, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        found = candidates >= 0
        vectors = np.zeros((*candidates.shape, self.dim), dtype=np.float32)
        if self._source is not None:
            wanted = candidates[found]
            order = np.argsort(wanted, kind="stable")  # ascending reads from a memmap
            rows = np.empty((len(wanted), self.dim), dtype=np.float32)
            rows[order] = self._source[wanted[order]]
            vectors[found] = rows
        elif self._exact is not None:
            vectors[found] = self._exact.reconstruct_batch(candidates[found])
        else:  # _search asks for an attached source first; a copy comes with the index
            raise ValueError("this IVF-PQ index holds no vectors to re-rank from")
        scores = np.matmul(vectors, queries[:, :, None])[:, :, 0]
        scores[~found] = -np.inf
        return scores

    def _refuse_if_mapped(self) -> None:
        if self.memory_mapped:
            raise RuntimeError("this IVF-PQ index is memory-mapped read-only: load it with "
                               "mmap=False to change it")

    def _write(self, path: Path) -> None:
        parts = [self._ivf] if self._exact is None else [self._ivf, self._exact]
        atomic_write(path, lambda tmp: _write_faiss(tmp, *parts))

    @classmethod
    def _read(cls, path: Path, meta: dict[str, Any], mmap: bool = False) -> IVFPQIndex:
        params = meta["params"]
        external = params.get("rerank_source") == "external"
        copy = bool(params["rerank"]) and not external
        if mmap and not copy:  # one FAISS index in the file: FAISS can map it by name
            ivf = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            return cls(ivf, None, params["nprobe"], params["rerank"], external=external,
                       memory_mapped=True)
        parts = _read_faiss(path, count=2 if copy else 1)
        exact = parts[1] if copy else None
        if exact is not None and exact.ntotal != parts[0].ntotal:
            raise ValueError(f"{path}: the PQ and re-rank parts hold different counts")
        return cls(parts[0], exact, params["nprobe"], params["rerank"], external=external)


def ivfpq_trainable(n: int) -> bool:
    """Whether ``n`` vectors can train IVF-PQ (below that, ``build_index`` gives flat)."""
    return _ivfpq_nbits(n) > 0


def _ivfpq_nbits(n: int) -> int:
    """Bits per PQ code for ``n`` training vectors: 8 when there are 39 points per centroid
    (n >= 9,984), else fewer, down to 4 (n >= 624); 0 when even that is impossible."""
    bits = min(8, math.floor(math.log2(max(n, 1) / _MIN_POINTS_PER_CENTROID)))
    return bits if bits >= 4 else 0


class AnnoyIndex(VectorIndex):
    """Spotify Annoy forest with angular distance, loaded memory-mapped.

    Annoy's angular distance is ``sqrt(2 - 2 cos)`` on normalised vectors, so
    ``cos = 1 - d**2 / 2``. Item ids are the keys themselves: annoy allocates every id up
    to the largest key and ids are int32, so keys must be below 2**31 (row numbers are).
    An annoy index cannot grow or shrink once built; the caller rebuilds it.

    ``search_k`` (nodes inspected per query; -1: annoy's own default, ``n_trees * k``) may
    be changed at any time. Annoy's default gave recall@10 0.1 on 384-d benchmark data, so
    ours is 200,000: recall@10 0.97 at 100k and 0.95 at 1M vectors, at tens of ms per query
    (see BENCHMARKS.md; annoy needs far more work per query than hnsw for the same recall).
    """

    kind = "annoy"
    supports_add = False

    def __init__(
        self, forest: annoy.AnnoyIndex, dim: int, keys: np.ndarray, params: dict[str, Any]
    ) -> None:
        super().__init__(dim)
        self._forest = forest
        self._keys = keys
        self._n_trees = int(params["n_trees"])
        self.search_k = int(params["search_k"])

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        keys: np.ndarray,
        *,
        n_trees: int = 50,
        search_k: int = 200_000,
        progress: Callable[[int, int], None] | None = None,
    ) -> AnnoyIndex:
        if keys.size and keys.max() >= 2**31:
            raise ValueError("annoy item ids are int32: keys must be below 2**31")
        dim = vectors.shape[1]
        index = cls(
            _annoy().AnnoyIndex(dim, "angular"),
            dim,
            np.sort(keys),
            {"n_trees": n_trees, "search_k": search_k},
        )
        index._add_chunks(vectors, keys, progress)
        index._forest.build(n_trees, n_jobs=-1)
        return index

    @property
    def params(self) -> dict[str, Any]:
        return {"n_trees": self._n_trees, "search_k": self.search_k}

    def keys(self) -> np.ndarray:
        return self._keys.copy()

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, vectors: np.ndarray, keys: np.ndarray,
            progress: Callable[[int, int], None] | None = None) -> None:
        raise NotImplementedError("an annoy index is immutable once built; rebuild it")

    def _add_chunk(self, vectors: np.ndarray, keys: np.ndarray) -> None:
        for key, vector in zip(keys.tolist(), vectors, strict=True):
            self._forest.add_item(key, vector.tolist())

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, keys = _padding(len(queries), k)
        for row, query in enumerate(queries):
            found, distances = self._forest.get_nns_by_vector(
                query.tolist(), k, search_k=self.search_k, include_distances=True
            )
            keys[row, : len(found)] = found
            scores[row, : len(found)] = 1.0 - np.square(distances, dtype=np.float32) / 2
        return scores, keys

    def _write(self, path: Path) -> None:
        def write_keys(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.save(handle, self._keys)

        atomic_write(_keys_path(path), write_keys)
        # annoy re-maps the file it saved to; the mapping survives the rename.
        atomic_write(path, lambda tmp: self._forest.save(str(tmp)))

    @classmethod
    def _read(cls, path: Path, meta: dict[str, Any], mmap: bool = False) -> AnnoyIndex:
        forest = _annoy().AnnoyIndex(meta["dim"], "angular")
        forest.load(str(path))
        keys = np.load(_keys_path(path))
        if keys.size and forest.get_n_items() != keys[-1] + 1:
            raise ValueError(f"{path}: annoy file and its keys file do not match")
        return cls(forest, meta["dim"], keys, meta["params"])


def _annoy() -> Any:
    """The annoy module (an extra: built from source, so not in the core install)."""
    return import_module("annoy", "annoy", "the annoy index")


_CLASSES: dict[str, type[VectorIndex]] = {
    "flat": FlatIndex,
    "hnsw": HNSWIndex,
    "ivfpq": IVFPQIndex,
    "annoy": AnnoyIndex,
}


def build_index(kind: str, vectors: np.ndarray, keys: np.ndarray, *,
                progress: Callable[[int, int], None] | None = None,
                **params: Any) -> VectorIndex:
    """Build a ``kind`` index (or ``"auto"``: ``choose_kind(n)``) over ``vectors`` [n, dim].

    ``vectors`` may be float16, float32 or float64, e.g. a read-only memmap of the store; it
    is converted to float32 ``_CHUNK_ROWS`` rows at a time. ``params`` are kind-specific:
    hnsw ``m``, ``ef_construction``, ``ef_search``; ivfpq ``nlist``, ``m``, ``nbits``,
    ``nprobe``, ``rerank``, ``hnsw_quantizer_nlist``; annoy ``n_trees``, ``search_k``; unknown
    ones raise TypeError.
    ``progress(done, n)`` counts the vectors added (after training, for IVF-PQ).
    An ``ivfpq`` request with fewer than 624 vectors (too few to train even 4-bit PQ) gets
    an exact flat index instead, which at that size is both faster and exact.
    """
    vectors, keys = _check_batch(vectors, keys, None)
    if len(np.unique(keys)) != len(keys):
        raise ValueError("keys must be unique")
    n, dim = vectors.shape
    if kind == "auto":
        kind = choose_kind(n)
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index kind {kind!r}; expected auto or one of {INDEX_KINDS}")
    if kind == "annoy":
        return AnnoyIndex.build(vectors, keys, progress=progress, **params)
    if kind == "ivfpq" and not (params.get("nbits") or _ivfpq_nbits(n)):
        log.warning("%d vectors are too few to train IVF-PQ; building a flat index", n)
        kind, params = "flat", {}
    index: VectorIndex
    if kind == "flat":
        index = FlatIndex.create(dim, **params)
    elif kind == "hnsw":
        index = HNSWIndex.create(dim, **{"ef_search": default_ef_search(n), **params})
    else:
        index = IVFPQIndex.train(vectors, **params)
    index._add_chunks(vectors, keys, progress)
    return index


def load_index(path: Path, mmap: bool = False) -> VectorIndex:
    """Open an index written by ``VectorIndex.save``; its sidecar says which kind it is.

    ``mmap``: an IVF-PQ index that re-ranks from external vectors is opened read-only from
    the page cache (its inverted lists stay on disk; RAM holds only the quantizers); other
    kinds load as usual. A memory-mapped index refuses ``add`` and ``remove``.
    """
    path = Path(path)
    try:
        meta = json.loads(_sidecar(path).read_text())
    except ValueError:
        raise IndexDamaged(f"{_sidecar(path)} is damaged (not JSON)") from None
    for data in _data_files(path):
        expected = meta.get("checksums", {}).get(data.name)
        if expected is not None and checksum(data) != expected:
            raise IndexDamaged(f"{data} is damaged: its bytes do not match the checksum "
                               "written with it")
    if meta.get("kind") not in _CLASSES:
        raise ValueError(f"{_sidecar(path)}: unknown index kind {meta.get('kind')!r}")
    index = _CLASSES[meta["kind"]]._read(path, meta, mmap=mmap)
    if index.dim != meta["dim"] or len(index) != meta["count"]:
        raise ValueError(
            f"{path} holds {len(index)} x {index.dim} but its sidecar says "
            f"{meta['count']} x {meta['dim']}: an interrupted save?"
        )
    return index


class IndexDamaged(ValueError):
    """A saved index whose files do not match what was written: rebuild it."""


def _data_files(path: Path) -> list[Path]:
    """The files an index at ``path`` keeps its data in (the sidecar vouches for them)."""
    return [data for data in (path, _keys_path(path)) if data.exists()]


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _keys_path(path: Path) -> Path:
    return path.with_name(path.name + ".keys.npy")


def _padding(m: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((m, k), -np.inf, dtype=np.float32), np.full((m, k), -1, dtype=np.int64)


def _as_keys(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys)
    if keys.ndim != 1 or (keys.size and not np.issubdtype(keys.dtype, np.integer)):
        raise ValueError(f"keys must be a 1-D integer array, not {keys.dtype} {keys.shape}")
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    if keys.size and keys.min() < 0:
        raise ValueError("keys must be non-negative")
    return keys


def _check_batch(
    vectors: np.ndarray, keys: np.ndarray, dim: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes and types without copying ``vectors`` (it may be a large memmap)."""
    vectors = np.asarray(vectors)
    keys = _as_keys(keys)
    if vectors.ndim != 2 or (dim is not None and vectors.shape[1] != dim):
        raise ValueError(f"vectors must have shape [n, {dim or 'dim'}], not {vectors.shape}")
    if not np.issubdtype(vectors.dtype, np.floating):
        raise ValueError(f"vectors must be floating point, not {vectors.dtype}")
    if len(vectors) != len(keys):
        raise ValueError(f"{len(vectors)} vectors but {len(keys)} keys")
    return vectors, keys


def _float32_chunks(
    vectors: np.ndarray, keys: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(keys), _CHUNK_ROWS):
        stop = start + _CHUNK_ROWS
        yield np.ascontiguousarray(vectors[start:stop], dtype=np.float32), keys[start:stop]


def _write_faiss(path: Path, *indexes: Any) -> None:
    """Serialise FAISS indexes back to back into one file (streamed, not copied in memory)."""
    with open(path, "wb") as handle:
        writer = faiss.PyCallbackIOWriter(handle.write)
        for index in indexes:
            faiss.write_index(index, writer)


def _read_faiss(path: Path, count: int = 1) -> list[Any]:
    with open(path, "rb") as handle:
        reader = faiss.PyCallbackIOReader(handle.read)
        return [faiss.read_index(reader) for _ in range(count)]
