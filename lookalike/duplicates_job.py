"""The duplicate-finding job: a :class:`~lookalike.collection.Collection` in, a
:class:`DuplicateReport` out. The Collection and the CLI call :func:`find_duplicates`.

Stages, none of them N x N:

1. **exact**: files with equal content hashes, plus files whose decoded pixels are equal
   (same picture, other container). Pixels are hashed only for k-NN neighbours with the
   same width x height and a near-identical embedding, so almost nothing is decoded.
2. **k-NN graph** of the model's own embeddings (:meth:`Collection.knn_graph
   <lookalike.collection.Collection.knn_graph>`: cached, and shared with the other
   analyses; read memory-mapped, like the embeddings).
3. **candidates**: graph edges with cosine >= the model's calibrated
   ``candidate_threshold`` (loose: it keeps 95 % of every kind of synthetic edit), between
   one representative per exact group.
4. **verification** of each candidate by local-feature geometry; pairs inside a small
   verified component are checked too, so that grouping sees their real relation.
5. **grouping** over the verified weights without single-link chains
   (:func:`~lookalike.analyse.duplicates.link_groups`), then a keeper per group (most
   pixels, then largest file); exact copies join their representative's group.

``verify=False`` skips stage 4 and decides on the embedding alone, with the stricter
calibrated ``near_threshold``: much faster, much less precise.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .analyse.duplicates import (
    DuplicateGroup,
    candidate_pairs,
    choose_keeper,
    components,
    exact_groups,
    link_groups,
    make_group,
    visit_order,
)
from .discover import Root, is_remote
from .knn import KnnGraph
from .store import StoreError
from .verify import FeatureCache, calibrate, pixel_hashes, verify_pairs

if TYPE_CHECKING:
    from .collection import Collection
    from .discover import Root

# (stage, done, total); stages: "graph", "hash", "calibrate", "verify".
Progress = Callable[[str, int, int], None]

# Embeddings this close (and equal image sizes) may be the same pixels: worth a decode.
PIXEL_CHECK_COSINE = 0.995
# Components of verified edges up to this size get every inner pair verified.
CLOSURE_LIMIT = 32
# The neighbour whose cosine stands for "a look-alike" in calibration: the 4th nearest.
# The very nearest is often a real duplicate; a photo rarely has more than three copies.
LOOKALIKE_RANK = 3
MIN_LINK = 0.5  # average link weight two groups need to merge (see link_groups)


@dataclass
class DuplicateReport:
    """Exact and near-duplicate groups of a collection.

    Groups hold *positions*: ``file_ids[p]`` and ``paths[p]`` (relative to the collection
    root) name the file at position ``p``. Near groups include the exact copies of their
    members; exact groups are also listed on their own.
    """

    file_ids: np.ndarray
    paths: list[str]
    exact: list[DuplicateGroup]
    near: list[DuplicateGroup]
    threshold: float  # the cosine used; NaN when there was nothing to compare
    verified: bool
    calibration: dict[str, Any] | None
    candidates: int  # pairs checked (candidates plus closure pairs)
    confirmed: int  # of those, the ones that passed
    seconds: dict[str, float] = field(default_factory=dict)

    def groups(self) -> list[list[int]]:
        """A partition of the duplicate files: every near group, and each exact group
        that no near group contains (what a pairwise evaluation should score)."""
        taken = {p for group in self.near for p in group.members}
        result = [list(group.members) for group in self.near]
        result += [list(g.members) for g in self.exact if not taken.intersection(g.members)]
        return result

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``: ids and paths instead of positions."""

        def describe(group: DuplicateGroup) -> dict[str, Any]:
            return {
                "kind": group.kind,
                "keeper": {"id": int(self.file_ids[group.keeper]),
                           "path": self.paths[group.keeper]},
                "members": [
                    {"id": int(self.file_ids[p]), "path": self.paths[p], "score": round(s, 4)}
                    for p, s in zip(group.members, group.scores)
                ],
            }

        return {
            "exact": [describe(g) for g in self.exact],
            "near": [describe(g) for g in self.near],
            "threshold": None if math.isnan(self.threshold) else self.threshold,
            "verified": self.verified,
            "calibration": self.calibration,
            "candidates": self.candidates,
            "confirmed": self.confirmed,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def calibration_key(collection: Collection) -> str:
    record = collection.require_model()
    return "calibration:" + record.key


def load_calibration(collection: Collection) -> dict[str, Any] | None:
    """The stored calibration of the collection's model, if any."""
    stored = collection.store.meta(calibration_key(collection))
    return json.loads(stored) if stored else None


def ensure_calibration(
    collection: Collection,
    paths: Sequence[Root],
    vectors: np.ndarray,
    graph: KnnGraph,
    *,
    workers: int | None = None,
) -> dict[str, Any]:
    """The model's calibration: stored, or measured now on the collection and stored.

    ``paths``, ``vectors`` and ``graph``: the live files, the model's own embeddings of
    them and their k-NN graph, position for position. A read-only collection still gets
    a calibration; it is just not saved.
    """
    found = load_calibration(collection)
    if found is not None:
        return found
    if graph.k <= LOOKALIKE_RANK:
        graph = collection.knn_graph(LOOKALIKE_RANK + 1, raw=True)[1]
    lookalike = graph.scores[:, LOOKALIKE_RANK]
    result = calibrate(collection.backbone, paths, vectors, lookalike, workers=workers)
    result["model"] = collection.model.spec if collection.model else None
    try:
        collection.store.set_meta(calibration_key(collection), json.dumps(result))
    except (sqlite3.Error, StoreError):
        pass  # read-only collection: use the calibration without caching it
    return result


def model_calibration(
    collection: Collection, *, k: int = 16, workers: int | None = None
) -> dict[str, Any]:
    """The calibration of the collection's model, measured the way :func:`find_duplicates`
    measures it (and stored under the same key, so either finds the other's).

    For callers without the duplicate job's own files, embeddings and graph at hand, e.g.
    threshold groups, whose default is the calibrated ``near_threshold``. ``k``: neighbours
    per image of the k-NN graph to measure look-alikes on (the analyses' cached graph).
    """
    found = load_calibration(collection)
    if found is not None:
        return found
    file_ids, relative, _ = _paths(collection)
    vector_ids, vectors = collection.vectors(raw=True, copy=False)
    graph_ids, graph = collection.knn_graph(max(k, LOOKALIKE_RANK + 1), raw=True)
    if not (np.array_equal(graph_ids, file_ids) and np.array_equal(vector_ids, file_ids)):
        raise StoreError("the collection changed while its model was being calibrated "
                         "(an index run?): try again")
    if len(file_ids) < 2:
        raise StoreError("the collection needs at least two embedded images to calibrate "
                         "its model")
    return ensure_calibration(collection, [collection.root / path for path in relative],
                              vectors, graph, workers=workers)


def _paths(collection: Collection) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """Per embedded position: file ids, relative paths, and width/height/size/hash columns."""
    record = collection.require_model()
    ids, _rows = collection.store.live_rows(record.key)
    by_id = {f.id: f for f in collection.store.files()}
    files = [by_id[int(i)] for i in ids]
    columns = {
        "width": np.array([f.width or 0 for f in files], dtype=np.int64),
        "height": np.array([f.height or 0 for f in files], dtype=np.int64),
        "size": np.array([f.size or 0 for f in files], dtype=np.int64),
        "hash": np.array([f.content_hash for f in files], dtype=object),
    }
    return ids, [f.path for f in files], columns


def find_duplicates(
    collection: Collection,
    *,
    threshold: float | None = None,
    verify: bool = True,
    k: int = 16,
    progress: Progress | None = None,
    workers: int | None = None,
) -> DuplicateReport:
    """Exact and near duplicates of every embedded file of ``collection``.

    ``threshold``: the cosine a k-NN edge needs to be considered; ``None`` uses the
    model's calibration (measured on first use, then stored in the collection):
    ``candidate_threshold`` with ``verify``, ``near_threshold`` without. ``verify``:
    confirm candidates by local-feature geometry (recommended: it is what separates an
    edited copy from a look-alike). ``k``: neighbours per image in the candidate graph.
    ``progress(stage, done, total)``: optional callback.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    file_ids, relative, columns = _paths(collection)  # or NoEmbeddings
    # as stored (a memmap): only the rows a step needs are read
    vector_ids, vectors = collection.vectors(raw=True, copy=False)
    absolute = [collection.root / path for path in relative]
    n = len(file_ids)
    lap("load")
    if n < 2:
        return DuplicateReport(file_ids=file_ids, paths=relative, exact=[], near=[],
                               threshold=math.nan if threshold is None else float(threshold),
                               verified=verify, calibration=None,
                               candidates=0, confirmed=0, seconds=timings)

    graph_ids, graph = _graph(collection, k, progress)
    if not (np.array_equal(graph_ids, file_ids) and np.array_equal(vector_ids, file_ids)):
        raise StoreError("the collection changed while its duplicates were being found "
                         "(an index run?): run duplicates again")
    lap("graph")

    # 1. exact duplicates: same bytes, or same pixels among look-identical same-size pairs.
    pixel_keys: list[str | None] = [None] * n
    low, high, score = graph.pairs(PIXEL_CHECK_COSINE)
    same_size = (columns["width"][low] == columns["width"][high]) & (
        columns["height"][low] == columns["height"][high])
    differ = columns["hash"][low] != columns["hash"][high]
    suspects = np.unique(np.concatenate([low[same_size & differ], high[same_size & differ]]))
    if len(suspects):
        if progress:
            progress("hash", 0, len(suspects))
        for position, key in zip(suspects.tolist(),
                                 pixel_hashes([absolute[p] for p in suspects], workers=workers)):
            pixel_keys[position] = key
        if progress:
            progress("hash", len(suspects), len(suspects))
    exact_members = exact_groups(list(columns["hash"]), pixel_keys)
    # a link and its target (or two hard links) are one file: one name stands for it
    alias_of = _other_names(absolute, exact_members)
    exact_members = [kept for members in exact_members
                     if len(kept := [p for p in members if p not in alias_of]) > 1]
    linked_to = set(alias_of.values())  # keep the file that links point to
    exact = [make_group(g, "exact", columns["width"], columns["height"], columns["size"],
                        preferred=linked_to) for g in exact_members]
    representative = np.arange(n)
    for group in exact:
        representative[group.members] = group.keeper
    for alias, name in alias_of.items():
        representative[alias] = representative[name]
    lap("exact")

    # 2. thresholds
    calibration = None
    if threshold is None:
        if progress:
            progress("calibrate", 0, 1)
        calibration = ensure_calibration(collection, absolute, vectors, graph,
                                         workers=workers)
        threshold = float(calibration["candidate_threshold" if verify else "near_threshold"])
        if progress:
            progress("calibrate", 1, 1)
    threshold = float(threshold)
    lap("calibrate")

    # 3. candidates between representatives only
    i, j, cosine = candidate_pairs(graph, threshold)
    keep = (representative[i] == i) & (representative[j] == j)
    i, j, cosine = i[keep], j[keep], cosine[keep]

    # 4. weights: verified geometry, or the cosine itself
    if verify:
        cache = FeatureCache(absolute)
        weight = _verified_weights(absolute, i, j, cache, progress, workers)
        extra_i, extra_j = _closure(n, i, j, weight)
        if len(extra_i):
            extra_w = _verified_weights(absolute, extra_i, extra_j, cache, progress, workers,
                                        done_before=len(i))
            i, j = np.concatenate([i, extra_i]), np.concatenate([j, extra_j])
            weight = np.concatenate([weight, extra_w])
    else:
        weight = _cosine_weights(cosine, threshold)
        extra_i, extra_j = _closure(n, i, j, weight)
        if len(extra_i):
            extra_cos = np.einsum("ij,ij->i", np.asarray(vectors[extra_i], np.float32),
                                  np.asarray(vectors[extra_j], np.float32))
            i, j = np.concatenate([i, extra_i]), np.concatenate([j, extra_j])
            weight = np.concatenate([weight, _cosine_weights(extra_cos, threshold)])
    lap("verify" if verify else "weights")

    # 5. groups without chains, expanded with exact copies
    copies: dict[int, list[int]] = defaultdict(list)
    for position, rep in enumerate(representative.tolist()):
        if position not in alias_of:
            copies[rep].append(position)
    links: dict[int, dict[int, float]] = defaultdict(dict)
    for a, b, w in zip(i.tolist(), j.tolist(), weight.tolist()):
        if w > 0:
            links[a][b] = links[b][a] = w
    near = []
    for members in link_groups(n, i, j, weight, min_link=MIN_LINK):
        expanded = sorted(p for m in members for p in copies[m])
        keeper_rep = int(representative[_keeper(expanded, columns)])
        inside = set(members)
        scores = {p: _score(int(representative[p]), keeper_rep, inside, links)
                  for p in expanded}
        near.append(make_group(expanded, "near", columns["width"], columns["height"],
                               columns["size"], scores))
    lap("group")
    return DuplicateReport(
        file_ids=file_ids, paths=relative, exact=exact, near=near, threshold=threshold,
        verified=verify, calibration=calibration, candidates=int(len(i)),
        confirmed=int((weight > 0).sum()), seconds=timings,
    )


def _other_names(paths: list[Root], groups: list[list[int]]) -> dict[int, int]:
    """Among exact-duplicate groups, the positions that are another name of a file already
    in the group (a symbolic link to it, a hard link), each mapped to the name that stands
    for the file: a real name before a link, then the first. A link and its target are one
    file, never a pair to clean up (moving the "copy" would move the only data)."""
    alias_of: dict[int, int] = {}
    for members in groups:
        named: dict[tuple[int, int], int] = {}
        keyed = []
        for position in members:
            path = paths[position]
            if is_remote(path):  # object storage has no links
                continue
            try:
                info = os.stat(path)
            except OSError:  # gone meanwhile: judged by its content like any other
                continue
            keyed.append((os.path.islink(path), position, (info.st_dev, info.st_ino)))
        for _link, position, file in sorted(keyed):
            first = named.setdefault(file, position)
            if first != position:
                alias_of[position] = first
    return alias_of


def _graph(collection: Collection, k: int,
           progress: Progress | None) -> tuple[np.ndarray, KnnGraph]:
    """``(file_ids, graph)``: the collection's cached k-NN graph of the model's own
    embeddings (a learned transform serves class retrieval; duplicates are judged where
    the calibrated thresholds hold)."""
    report = (lambda done, total: progress("graph", done, total)) if progress else None
    return collection.knn_graph(k, report, raw=True)


def _keeper(members: list[int], columns: dict[str, np.ndarray]) -> int:
    return choose_keeper(members, columns["width"], columns["height"], columns["size"])


def _score(
    member: int, keeper: int, group: set[int], links: dict[int, dict[int, float]]
) -> float:
    """A member's link weight to the keeper; failing a direct link, its mean link to the
    rest of the group (unlinked members counting 0)."""
    if member == keeper:
        return 1.0
    own = links.get(member, {})
    if keeper in own:
        return own[keeper]
    inside = [w for other, w in own.items() if other in group]
    return sum(inside) / max(len(group) - 1, 1)


def _verified_weights(
    paths: Sequence[Root], i: np.ndarray, j: np.ndarray, cache: FeatureCache,
    progress: Progress | None, workers: int | None, done_before: int = 0,
) -> np.ndarray:
    """Verification weight of each pair; ``done_before`` pairs were checked by an earlier
    call, so that progress counts on across the two passes."""
    order = visit_order(len(paths), i, j)

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress("verify", done_before + done, done_before + total)

    verdicts = verify_pairs(paths, i[order], j[order], cache=cache, workers=workers,
                            progress=report)
    weight = np.zeros(len(i), dtype=np.float64)
    weight[order] = [v.weight for v in verdicts]
    return weight


def _cosine_weights(cosine: np.ndarray, threshold: float) -> np.ndarray:
    """Embedding-only link weights: 0 below ``threshold``, then 0.5 rising to 1 at cosine 1
    (the same scale as verified weights, so grouping behaves alike)."""
    cosine = np.asarray(cosine, dtype=np.float64)
    span = max(1.0 - threshold, 1e-6)
    return np.where(cosine >= threshold, 0.5 + 0.5 * np.clip((cosine - threshold) / span, 0, 1),
                    0.0)


def _closure(
    n: int, i: np.ndarray, j: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Unchecked pairs inside components (of positive edges) of 3..CLOSURE_LIMIT items.

    Average linkage counts an unchecked pair as 0; checking the few pairs inside small
    components lets a copy that was missed as a candidate still count as a link.
    """
    linked = weight > 0
    labels = components(n, i[linked], j[linked])
    sizes = np.bincount(labels, minlength=n)
    checked = set(zip(i.tolist(), j.tolist()))
    members: dict[int, list[int]] = defaultdict(list)
    for position in np.flatnonzero((sizes[labels] >= 3) & (sizes[labels] <= CLOSURE_LIMIT)):
        members[int(labels[position])].append(int(position))
    extra_i: list[int] = []
    extra_j: list[int] = []
    for group in members.values():
        for x, a in enumerate(group):
            for b in group[x + 1:]:
                if (a, b) not in checked:
                    extra_i.append(a)
                    extra_j.append(b)
    return np.asarray(extra_i, dtype=np.int64), np.asarray(extra_j, dtype=np.int64)
