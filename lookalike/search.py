"""The one search path, behind :meth:`lookalike.Collection.search_vectors` and the
searches built on it (an image, an id, a vector, a batch of web requests, the k-NN graph
as hits).

Functions of plain inputs: the store, a :class:`SearchState` (what a search reads, as of
one catalogue version) and, to embed a query image from outside the collection, a
function that embeds it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .discover import Root, is_remote
from .embed.transform import TransformChain
from .index import VectorIndex
from .knn import KnnGraph
from .records import Neighbour, NotEmbedded, SearchHit
from .store import ModelRecord, Store

MAX_FILE_ID = 2**63 - 1  # SQLite's largest integer: no catalogue id is larger
Query = str | os.PathLike[str] | int | np.ndarray  # what Collection.search takes
Embed = Callable[[str | os.PathLike[str]], np.ndarray]  # an image file -> its embedding


@dataclass(frozen=True)
class SearchState:
    """What a search reads from the catalogue, as of one ``Store.data_version``."""

    version: tuple[int, int]
    record: ModelRecord
    index: VectorIndex
    stored: np.ndarray  # the store's embeddings (memory-mapped), by store row
    transform: TransformChain | None


def search_vectors(store: Store, state: SearchState, vectors: np.ndarray, k: int, *,
                   exclude: Sequence[int | None] | None = None) -> list[list[Neighbour]]:
    """The ``k`` files nearest each of ``vectors`` ``[n, dim]`` (the model's own
    embeddings, projected here by the learned transform when one is set), best first.
    ``exclude``: per vector, a file id to leave out (the query image itself)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != state.record.dim:
        raise ValueError(f"query vectors must have shape (n, {state.record.dim}), "
                         f"not {vectors.shape}")
    if state.transform is not None:
        vectors = state.transform.transform(vectors)
    scores, keys = state.index.search(np.ascontiguousarray(vectors), k + 1)
    files = store.files_for_rows(state.record.key, keys.ravel())
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


def search_queries(store: Store, root: Root, state: SearchState, queries: Sequence[Query],
                   k: int, embed: Embed) -> list[list[Neighbour] | Exception]:
    """Per query its ``k`` neighbours, or, as data, why it cannot be searched
    (:class:`NotEmbedded` for an id, ValueError for a vector of the wrong size), so one
    bad query fails only itself; the others take one :func:`search_vectors`."""
    results: list[list[Neighbour] | Exception] = []
    vectors, own, searched = [], [], []  # searched: positions of the resolved queries
    for position, query in enumerate(queries):
        resolved = query_vector(store, root, state, query, embed)
        if isinstance(resolved, Exception):
            results.append(resolved)
            continue
        results.append([])
        vectors.append(resolved[0])
        own.append(resolved[1])
        searched.append(position)
    if searched:
        found = search_vectors(store, state, np.stack(vectors), k, exclude=own)
        for position, near in zip(searched, found):
            results[position] = near
    return results


def query_vector(store: Store, root: Root, state: SearchState, query: Query, embed: Embed
                 ) -> tuple[np.ndarray, int | None] | Exception:
    """``(vector, own file id)`` in the model's own space: an embedded image's stored
    vector (by id, or by a path inside the collection; its id is left out of its
    results), a vector as given, or another image file embedded. Or why not."""
    if isinstance(query, np.ndarray):
        dim = state.record.dim
        return ((query.astype(np.float32), None) if query.shape == (dim,) else
                ValueError(f"query vector must have {dim} numbers, not {query.size}"))
    file_id = query_file_id(store, root, query)
    row = None if file_id is None else store.row_for_file(state.record.key, file_id)
    if row is not None and row < len(state.stored):
        return np.asarray(state.stored[row], dtype=np.float32), file_id
    if isinstance(query, (int, np.integer)):
        return NotEmbedded(f"no embedded image with id {query}")
    return embed(query), None


def query_file_id(store: Store, root: Root, query: object) -> int | None:
    """The catalogue id a query names: an id, or a local path inside the folder."""
    if isinstance(query, (int, np.integer)):
        return int(query) if 0 <= query <= MAX_FILE_ID else None
    if isinstance(query, (str, os.PathLike)) and not is_remote(root):
        path = Path(query).expanduser().absolute()
        try:
            relative = path.resolve().relative_to(root).as_posix()
        except ValueError:
            return None
        found = store.file_by_path(relative)
        return found.id if found else None
    return None


def as_hits(root: Root, found: list[Neighbour]) -> list[SearchHit]:
    """Neighbours as ranked hits with their absolute paths."""
    return [SearchHit(rank, n.score, n.record.id, n.record.path, root / n.record.path)
            for rank, n in enumerate(found, start=1)]


def graph_hits(root: Root, paths: dict[int, str], file_ids: np.ndarray, graph: KnnGraph
               ) -> tuple[list[Root], list[list[SearchHit]]]:
    """Every image of a k-NN graph (``file_ids``: its positions' ids, ``paths``: id ->
    relative path) and its neighbours as ranked hits, best first."""
    images = [root / paths[int(i)] for i in file_ids]
    hits = [
        [SearchHit(rank + 1, float(score), int(file_ids[j]), paths[int(file_ids[j])],
                   images[j])
         for rank, (j, score) in enumerate(zip(row, scores)) if j >= 0]
        for row, scores in zip(graph.neighbours, graph.scores)
    ]
    return images, hits
