"""IVF-PQ indexes written to disk list by list: building or changing one never holds its
codes in RAM.

An IVF-PQ index built in RAM holds every vector's PQ code and id (56 bytes at 384-d:
5.6 GB at 100M) until it is saved. :func:`write_ivfpq` instead encodes the vectors a chunk
at a time (FAISS ``sa_encode``: the cell number and the PQ code, exactly what ``add``
stores), spills the entries to bucket files by cell range, then sorts one bucket at a time
in RAM and appends its cells to the index file in FAISS's serialisation of
``ArrayInvertedLists``, the layout FAISS memory-maps with ``IO_FLAG_MMAP``. The file is
byte for byte what ``faiss.write_index`` writes for the same index built in RAM (a test
checks it). RAM holds one chunk of vectors and one bucket (``BUCKET_BYTES``), twice
while it is sorted; the disk holds the spill (12 bytes more per entry than the index)
until the index is written.

A change (some keys added, some removed) is the same pass, with the entries of the old
index read from its memory-mapped lists: the new file replaces the old one atomically,
and a reader that mapped the old one keeps it.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import faiss
import numpy as np

from .index import IVFPQIndex, _as_keys
from .ownership import atomic_write

ENCODE_ROWS = 65_536  # vectors encoded at a time
BUCKET_BYTES = 256 << 20  # spilled entries sorted in RAM at a time

_LISTS_TAG = b"ilar"  # FAISS's fourcc of ArrayInvertedLists
_SIZE = struct.Struct("<Q")  # FAISS writes sizes and counts as 64-bit little-endian


def write_ivfpq(
    path: Path,
    base: IVFPQIndex,
    source: np.ndarray,
    add: np.ndarray,
    *,
    remove: np.ndarray | None = None,
    bucket_bytes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write ``base``'s entries except the keys in ``remove``, plus the vectors of the keys
    in ``add``, as the IVF-PQ index ``path`` with its sidecar, without holding the codes.

    ``base`` is trained: empty (:meth:`IVFPQIndex.train`, a new index) or opened
    memory-mapped from ``path`` itself (``load_index(path, mmap=True)``, a change).
    ``source[key]`` is the vector of ``key`` (e.g. the store's float16 memmap, which is
    read a chunk at a time). The result keeps ``base``'s parameters; open it with
    ``load_index(path, mmap=True)``. ``bucket_bytes`` (default ``BUCKET_BYTES``): the
    spilled entries sorted in RAM at a time. ``progress(done, total)`` counts encoded
    vectors.
    """
    path = Path(path)
    add = _as_keys(add)
    remove = _as_keys(np.zeros(0, np.int64) if remove is None else remove)
    ivf = base.ivf
    if len(base) and not base.memory_mapped:
        raise ValueError("base must be empty or memory-mapped from path")
    header = _template(ivf) if not len(base) else _header_in_file(path, ivf)
    code_size, nlist = int(ivf.code_size), int(ivf.nlist)
    entry = np.dtype([("list", "<i4"), ("id", "<i8"), ("code", "u1", (code_size,))])
    upper = len(base) + len(add)
    bucket_bytes = bucket_bytes or BUCKET_BYTES
    buckets = int(np.clip(math.ceil(upper * entry.itemsize / bucket_bytes), 1, nlist))
    spill = path.with_name(f".{path.name}.{uuid.uuid4().hex}.spill")
    spill.mkdir(parents=True)
    try:
        files = [spill / f"{bucket}.bin" for bucket in range(buckets)]
        sizes = np.zeros(nlist, dtype=np.int64)
        with _Spill(files, nlist) as spilled:
            for entries in _held_entries(base, remove, entry):
                spilled.write(entries)
                sizes += np.bincount(entries["list"], minlength=nlist)
            for start in range(0, len(add), ENCODE_ROWS):
                entries = _encode(ivf, source, add[start:start + ENCODE_ROWS], entry)
                spilled.write(entries)
                sizes += np.bincount(entries["list"], minlength=nlist)
                if progress:
                    progress(min(start + ENCODE_ROWS, len(add)), len(add))
        total = int(sizes.sum())
        header[8:16] = struct.pack("<q", total)  # the index's ntotal

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as out:
                out.write(header)
                out.write(_lists_header(sizes, code_size))
                for bucket, file in enumerate(files):
                    first, last = _bucket_range(bucket, buckets, nlist)
                    _write_cells(out, np.fromfile(file, dtype=entry), first, last)

        atomic_write(path, write)
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    base.write_sidecar(path, total)


class _Spill:
    """Bucket files of entries, bucket ``b`` holding cells ``_bucket_range(b, ...)``."""

    def __init__(self, files: list[Path], nlist: int) -> None:
        self._files, self._nlist = files, nlist
        self._handles: list[BinaryIO] = []

    def __enter__(self) -> _Spill:
        self._handles = [open(file, "ab") for file in self._files]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.close()

    def write(self, entries: np.ndarray) -> None:
        bucket = entries["list"].astype(np.int64) * len(self._files) // self._nlist
        order = np.argsort(bucket, kind="stable")  # keeps each cell's order
        bounds = np.searchsorted(bucket[order], np.arange(len(self._files) + 1))
        for index, handle in enumerate(self._handles):
            if bounds[index + 1] > bounds[index]:
                entries[order[bounds[index]:bounds[index + 1]]].tofile(handle)


def _bucket_range(bucket: int, buckets: int, nlist: int) -> tuple[int, int]:
    """The cells ``[first, last)`` of ``bucket``: those with ``cell * buckets // nlist``
    equal to it."""
    return -(-bucket * nlist // buckets), -(-(bucket + 1) * nlist // buckets)


def _held_entries(base: IVFPQIndex, remove: np.ndarray,
                  entry: np.dtype) -> Iterator[np.ndarray]:
    """The entries of ``base``'s lists, cell by cell, without the keys in ``remove``."""
    for cell, ids, codes in base.cells():
        keep = ~np.isin(ids, remove) if len(remove) else slice(None)
        entries = np.empty(len(ids[keep]), dtype=entry)
        entries["list"], entries["id"], entries["code"] = cell, ids[keep], codes[keep]
        yield entries


def _encode(ivf: faiss.IndexIVFPQ, source: np.ndarray, keys: np.ndarray,
            entry: np.dtype) -> np.ndarray:
    """Cell and PQ code of the vectors of ``keys``, as ``add`` would store them."""
    order = np.argsort(keys, kind="stable")  # ascending reads from a memmap
    vectors = np.empty((len(keys), ivf.d), dtype=np.float32)
    vectors[order] = source[keys[order]]
    encoded = ivf.sa_encode(vectors)  # [n, coarse_code_size + code_size] bytes
    coarse = int(ivf.coarse_code_size())
    entries = np.empty(len(keys), dtype=entry)
    entries["list"] = sum(encoded[:, byte].astype(np.int64) << (8 * byte)
                          for byte in range(coarse))  # little-endian cell number
    entries["id"] = keys
    entries["code"] = encoded[:, coarse:]
    return entries


def _lists_header(sizes: np.ndarray, code_size: int) -> bytes:
    """FAISS's header of ``ArrayInvertedLists``: cell count, code size, then every cell's
    size ("full") or, when at most half are used, the used cells and their sizes
    ("sprs"), as ``faiss.write_index`` chooses."""
    used = np.flatnonzero(sizes)
    parts = [_LISTS_TAG, _SIZE.pack(len(sizes)), _SIZE.pack(code_size)]
    if len(used) > len(sizes) // 2:
        parts += [b"full", _SIZE.pack(len(sizes)), sizes.astype("<u8").tobytes()]
    else:
        pairs = np.stack([used, sizes[used]], axis=1).astype("<u8")
        parts += [b"sprs", _SIZE.pack(pairs.size), pairs.tobytes()]
    return b"".join(parts)


def _write_cells(out: BinaryIO, entries: np.ndarray, first: int, last: int) -> None:
    """Cells ``first..last-1`` of one bucket, each as its codes then its ids."""
    entries = entries[np.argsort(entries["list"], kind="stable")]
    bounds = np.searchsorted(entries["list"], np.arange(first, last + 1))
    for cell in range(last - first):
        start, stop = bounds[cell], bounds[cell + 1]
        if stop > start:
            out.write(np.ascontiguousarray(entries["code"][start:stop]).tobytes())
            out.write(entries["id"][start:stop].astype("<i8").tobytes())


def _template(ivf: faiss.IndexIVFPQ) -> bytearray:
    """An empty trained index serialised, without its (empty) lists: the header of the
    file to write."""
    data = bytearray(faiss.serialize_index(ivf).tobytes())
    empty_lists = (_LISTS_TAG + _SIZE.pack(int(ivf.nlist)) + _SIZE.pack(int(ivf.code_size))
                   + b"sprs" + _SIZE.pack(0))
    if not data.endswith(empty_lists):
        raise RuntimeError(f"FAISS {faiss.__version__} serialises IVF-PQ lists in a way "
                           "lookalike does not know: build the index in RAM instead")
    return data[: -len(empty_lists)]


def _header_in_file(path: Path, ivf: faiss.IndexIVFPQ) -> bytearray:
    """The bytes of the index file ``path`` before its lists, which ``ivf`` (mapped from
    it) says how long are: the file is header, lists header, then 8 + code_size bytes
    per entry."""
    lists, nlist = ivf.invlists, int(ivf.nlist)
    sizes = np.array([lists.list_size(cell) for cell in range(nlist)], dtype=np.int64)
    tail = len(_lists_header(sizes, int(ivf.code_size))) + int(sizes.sum()) * (
        int(ivf.code_size) + 8)
    length = os.path.getsize(path) - tail
    with open(path, "rb") as handle:
        header = bytearray(handle.read(max(length, 0)))
        tag = handle.read(len(_LISTS_TAG))
    if length <= 16 or tag != _LISTS_TAG or struct.unpack("<q", header[8:16])[0] != sizes.sum():
        raise ValueError(f"{path} is not the single IVF-PQ index its base was mapped from")
    return header
