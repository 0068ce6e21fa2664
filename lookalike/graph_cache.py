"""The k-NN graph's disk cache, behind :meth:`lookalike.Collection.knn_graph`.

One folder per graph in the collection's ``index/``: ``<model>.[raw.]knn<k>`` holding
``neighbours.npy``, ``scores.npy``, ``file_ids.npy``, ``checksums.json`` and, written
last to mark it complete, ``stamp.npy``: the :class:`GraphKey` of the embeddings it was
built from. A graph of more neighbours serves a smaller ``k``; a graph is built in a
temporary folder and renamed into place.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np

from .knn import KnnGraph
from .ownership import checksum
from .store import ModelRecord

log = logging.getLogger(__name__)

_GRAPH_FILES = ("neighbours.npy", "scores.npy", "file_ids.npy")


@dataclass(frozen=True)
class GraphKey:
    """What a cached graph was built from: a cache serves only the same key."""

    version: int  # the model's embeddings version
    generation: int  # its embeddings file's generation
    transform: int  # the learned transform's stamp as a number; 0: none (or raw)

    @classmethod
    def of(cls, record: ModelRecord, transform: str | None) -> GraphKey:
        return cls(record.version, int(record.file.split(".")[-2]), int(transform or "0", 16))

    @classmethod
    def read(cls, folder: Path) -> GraphKey | None:
        """The key a cache folder was stamped with; None when it has none readable."""
        stamp = np.load(folder / "stamp.npy")
        return cls(*map(int, stamp)) if stamp.shape == (3,) else None

    def write(self, folder: Path) -> None:
        np.save(folder / "stamp.npy", np.array(astuple(self)))


class GraphCache:
    """The cached graphs named ``prefix<k>`` in ``folder`` (``<model>.[raw.]knn``)."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder, self.prefix = folder, prefix

    def find(self, k: int, key: GraphKey) -> tuple[np.ndarray, KnnGraph] | None:
        """``(file_ids, graph)`` of ``k`` neighbours from an intact cache built from
        ``key`` (memory-mapped, of ``k`` or more neighbours), or None."""
        cached_ks = sorted(int(found[1]) for folder in self.folder.glob(f"{self.prefix}*")
                           if (found := re.fullmatch(rf"{re.escape(self.prefix)}(\d+)",
                                                     folder.name))
                           and int(found[1]) >= k)
        for cached_k in cached_ks:
            folder = self.folder / f"{self.prefix}{cached_k}"
            try:
                if GraphKey.read(folder) == key and _intact_once(folder):
                    return np.load(folder / "file_ids.npy"), KnnGraph(
                        np.load(folder / "neighbours.npy", mmap_mode="r")[:, :k],
                        np.load(folder / "scores.npy", mmap_mode="r")[:, :k])
            except (OSError, ValueError):  # one being replaced
                continue
        return None

    def build(self, k: int, key: GraphKey, file_ids: np.ndarray,
              make: Callable[[Path | None], KnnGraph], *, on_disk: bool) -> KnnGraph:
        """``make(out)``, the graph of ``k`` neighbours of the rows of ``file_ids`` (built
        in the folder ``out`` when ``on_disk``, else in RAM: None), saved as the cache."""
        cache = self.folder / f"{self.prefix}{k}"
        temporary = cache.with_name(f".{cache.name}.{os.getpid()}-{threading.get_ident()}")
        for folder in cache.parent.glob(f".{cache.name}.*"):  # ours, or a killed build's
            owner = re.fullmatch(rf"\.{re.escape(cache.name)}\.(\d+)-\d+", folder.name)
            if folder == temporary or (owner and not _process_alive(int(owner[1]))):
                shutil.rmtree(folder, ignore_errors=True)
        graph = make(temporary if on_disk else None)
        temporary.mkdir(parents=True, exist_ok=True)
        if not on_disk:
            np.save(temporary / "neighbours.npy", graph.neighbours)
            np.save(temporary / "scores.npy", graph.scores)
        else:
            for part in (graph.neighbours, graph.scores):
                assert isinstance(part, np.memmap)  # knn_graph's open_memmap in temporary
                part.flush()
        np.save(temporary / "file_ids.npy", file_ids)
        (temporary / "checksums.json").write_text(json.dumps(
            {name: checksum(temporary / name) for name in _GRAPH_FILES}))
        key.write(temporary)  # written last: marks the cache complete
        shutil.rmtree(cache, ignore_errors=True)  # open memmaps of it stay valid
        try:
            os.replace(temporary, cache)
        except OSError:  # another process saved its graph there meanwhile: keep that one
            shutil.rmtree(temporary, ignore_errors=True)
        (cache.parent / f"{cache.name}.npz").unlink(missing_ok=True)  # older versions' cache
        return graph


_VERIFIED: set[tuple[object, ...]] = set()  # caches verified by this process, as on disk


def _intact_once(folder: Path) -> bool:
    """:func:`graph_intact`, read in full once per process for a cache as it is on disk:
    every analysis served from the cache would otherwise checksum all of it (GBs at
    scale) again. A rewrite or damage by a write changes the files' identity, so it is
    checked afresh."""
    files = [folder / name for name in (*_GRAPH_FILES, "checksums.json")]
    identity = (str(folder), *((info.st_ino, info.st_size, info.st_mtime_ns)
                               for info in map(os.stat, files)))
    if identity in _VERIFIED:
        return True
    intact = graph_intact(folder)
    if intact:
        _VERIFIED.add(identity)
    return intact


def graph_intact(folder: Path) -> bool:
    """Whether a cached graph's files are the bytes that were written (else it is rebuilt)."""
    try:
        expected = json.loads((folder / "checksums.json").read_text())
        intact = all(checksum(folder / name) == expected[name] for name in _GRAPH_FILES)
    except (OSError, ValueError, KeyError):
        intact = False
    if not intact:
        log.warning("the cached neighbour graph in %s is damaged or incomplete: rebuilding it",
                    folder)
    return intact


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, but another user's
        return True
    return True
