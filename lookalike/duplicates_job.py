"""The duplicate-finding job: a :class:`~lookalike.collection.Collection` in, a
:class:`DuplicateReport` out. The Collection and the CLI call :func:`find_duplicates`,
a short driver that reads the collection once (:func:`gather`) and runs the stages, each
a function of plain inputs; none of them is N x N:

1. :func:`exact_stage`: files with equal content hashes, plus files whose decoded pixels
   are equal (same picture, other container). Pixels are hashed only for k-NN neighbours
   with the same width x height and a near-identical embedding.
2. :func:`candidate_stage`: edges of the model's cached k-NN graph with cosine >= the
   calibrated ``candidate_threshold`` (loose: it keeps 95 % of every kind of synthetic
   edit), between one representative per exact group.
3. :func:`verify_stage`: local-feature geometry and, for a geometric match, its dense
   agreement (:mod:`lookalike.verify`); verdicts are cached per pair of file contents
   (:mod:`lookalike.verdict_cache`), so only pairs touching new or changed files are
   verified again. Pairs inside a small verified component are checked too.
4. :func:`tier_stage`: each pair an edited copy, a similar shot or unrelated
   (:func:`~lookalike.analyse.duplicates.pair_tiers`), with the calibrated
   ``agreement_threshold``: what the collection's own images show against synthetic
   edits of themselves.
5. :func:`group_stage`: near groups over edited-copy links without single-link chains
   (:func:`~lookalike.analyse.duplicates.link_groups`), exact copies joined to their
   representative, a keeper each; similar-shot groups over all links, where a similar
   shot holds them together.

``verify=False`` skips stage 3 and decides on the embedding alone, with the stricter
calibrated ``near_threshold``: much faster, much less precise, and no similar tier.
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
    EDITED,
    SIMILAR,
    DuplicateGroup,
    Tier,
    candidate_pairs,
    choose_keeper,
    components,
    exact_groups,
    link_groups,
    make_group,
    pair_tiers,
    promote_shared_copies,
    visit_order,
)
from .discover import Root, is_remote
from .knn import KnnGraph
from .store import StoreError
from .verdict_cache import VerdictCache, pair_key
from .verify import (
    CALIBRATION_VERSION,
    NO_MATCH,
    FeatureCache,
    Verdict,
    calibrate,
    pixel_hashes,
    verify_pairs,
)

if TYPE_CHECKING:
    from .collection import Collection

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
TIER_NAMES: dict[int, Tier] = {EDITED: "edited", SIMILAR: "similar"}


@dataclass
class DuplicateReport:
    """Exact and near-duplicate groups of a collection, and groups of similar shots.

    Groups hold *positions*: ``file_ids[p]`` and ``paths[p]`` (relative to the collection
    root) name the file at position ``p``. Near groups (edited copies) include the exact
    copies of their members; exact groups are also listed on their own. ``similar``:
    shots of one scene that are not copies of each other (a file may also be in a near
    group); they are reported, never treated as duplicates.
    """

    file_ids: np.ndarray
    paths: list[str]
    exact: list[DuplicateGroup]
    near: list[DuplicateGroup]
    threshold: float  # the cosine used; NaN when there was nothing to compare
    verified: bool
    calibration: dict[str, Any] | None
    candidates: int  # pairs checked (candidates plus closure pairs)
    confirmed: int  # of those, the ones that passed as copies
    seconds: dict[str, float] = field(default_factory=dict)
    similar: list[DuplicateGroup] = field(default_factory=list)
    cached: int = 0  # of the pairs checked, those whose verdict came from the cache

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
            tiers = group.tiers or [group.tier] * len(group.members)
            evidence = group.evidence or [None] * len(group.members)
            return {
                "kind": group.kind,
                "tier": group.tier,
                "keeper": {"id": int(self.file_ids[group.keeper]),
                           "path": self.paths[group.keeper]},
                "members": [
                    {"id": int(self.file_ids[p]), "path": self.paths[p], "score": round(s, 4),
                     "tier": t, "evidence": e}
                    for p, s, t, e in zip(group.members, group.scores, tiers, evidence)
                ],
            }

        return {
            "exact": [describe(g) for g in self.exact],
            "near": [describe(g) for g in self.near],
            "similar": [describe(g) for g in self.similar],
            "threshold": None if math.isnan(self.threshold) else self.threshold,
            "verified": self.verified,
            "calibration": self.calibration,
            "candidates": self.candidates,
            "confirmed": self.confirmed,
            "cached": self.cached,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def calibration_key(collection: Collection) -> str:
    record = collection.require_model()
    return "calibration:" + record.key


def load_calibration(collection: Collection) -> dict[str, Any] | None:
    """The stored calibration of the collection's model, if any."""
    stored = collection.store.meta(calibration_key(collection))
    found = json.loads(stored) if stored else None
    if found is None or found.get("version", 1) < CALIBRATION_VERSION:
        return None  # measured by an older method: lacks what verification now needs
    return found


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


@dataclass
class Inputs:
    """What the stages need from a collection, read once (:func:`gather`), position for
    position: file ids, paths relative to the root and absolute, width/height/size/hash
    columns, the model's own embeddings (memory-mapped) and their k-NN graph."""

    file_ids: np.ndarray
    relative: list[str]
    absolute: list[Root]
    columns: dict[str, np.ndarray]
    vectors: np.ndarray
    graph: KnnGraph | None


@dataclass
class Exact:
    """The exact stage's result: groups, each position's representative (the keeper of
    its exact group, else itself) and other names of one file (links) -> that file."""

    groups: list[DuplicateGroup]
    representative: np.ndarray
    alias_of: dict[int, int]


@dataclass
class Checked:
    """Pairs ``(i, j)`` of representatives with their cosine and verdict (NO_MATCH for
    pairs not verified); ``cached``: how many verdicts came from the cache."""

    i: np.ndarray
    j: np.ndarray
    cosine: np.ndarray
    verdicts: list[Verdict]
    cached: int = 0

    @property
    def same(self) -> np.ndarray:
        return np.array([v.same for v in self.verdicts], dtype=bool)

    @property
    def weight(self) -> np.ndarray:
        return np.array([v.weight for v in self.verdicts], dtype=np.float64)


def gather(collection: Collection, k: int, progress: Progress | None = None) -> Inputs:
    """Everything the stages read from ``collection``; the graph only with two or more
    embedded files."""
    file_ids, relative, columns = _paths(collection)  # or NoEmbeddings
    # as stored (a memmap): only the rows a step needs are read
    vector_ids, vectors = collection.vectors(raw=True, copy=False)
    graph = None
    if len(file_ids) >= 2:
        graph_ids, graph = _graph(collection, k, progress)
        if not (np.array_equal(graph_ids, file_ids) and np.array_equal(vector_ids, file_ids)):
            raise StoreError("the collection changed while its duplicates were being found "
                             "(an index run?): run duplicates again")
    return Inputs(file_ids, relative, [collection.root / path for path in relative], columns,
                  vectors, graph)


def find_duplicates(
    collection: Collection,
    *,
    threshold: float | None = None,
    verify: bool = True,
    k: int = 16,
    progress: Progress | None = None,
    workers: int | None = None,
) -> DuplicateReport:
    """Exact duplicates, edited copies and similar shots among the embedded files of
    ``collection``.

    ``threshold``: the cosine a k-NN edge needs to be considered; ``None`` uses the
    model's calibration (measured on first use, then stored in the collection):
    ``candidate_threshold`` with ``verify``, ``near_threshold`` without. ``verify``:
    confirm candidates by local-feature geometry and tell copies from similar shots
    (recommended). ``k``: neighbours per image in the candidate graph.
    ``progress(stage, done, total)``: optional callback.
    """
    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock[0]
        clock[0] = now

    inputs = gather(collection, k, progress)
    lap("load")
    if inputs.graph is None:
        return DuplicateReport(
            file_ids=inputs.file_ids, paths=inputs.relative, exact=[], near=[],
            threshold=math.nan if threshold is None else float(threshold), verified=verify,
            calibration=None, candidates=0, confirmed=0, seconds=timings)
    cache = VerdictCache(collection.directory / "index" / "verdicts.sqlite")
    exact = exact_stage(inputs, progress, workers, cache)
    lap("exact")
    calibration = None
    if threshold is None or verify:
        _report(progress, "calibrate", 0, 1)
        calibration = ensure_calibration(collection, inputs.absolute, inputs.vectors,
                                         inputs.graph, workers=workers)
        _report(progress, "calibrate", 1, 1)
    if threshold is None:
        assert calibration is not None
        threshold = float(calibration["candidate_threshold" if verify else "near_threshold"])
    lap("calibrate")
    i, j, cosine = candidate_stage(inputs.graph, float(threshold), exact.representative)
    if verify:
        assert calibration is not None
        checked = verify_stage(inputs, i, j, cosine, cache, progress, workers)
        lap("verify")
        tiers = tier_stage(checked, calibration)
        weight = checked.weight
    else:
        checked, weight = cosine_stage(inputs.vectors, i, j, cosine, float(threshold))
        tiers = np.where(weight > 0, EDITED, 0).astype(np.int8)
        lap("weights")
    near, similar = group_stage(inputs.columns, exact, checked, tiers, weight)
    lap("group")
    return DuplicateReport(
        file_ids=inputs.file_ids, paths=inputs.relative, exact=exact.groups, near=near,
        threshold=float(threshold), verified=verify, calibration=calibration,
        candidates=int(len(checked.i)), confirmed=int((tiers == EDITED).sum()),
        seconds=timings, similar=similar, cached=checked.cached)


def _report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def exact_stage(inputs: Inputs, progress: Progress | None = None,
                workers: int | None = None, cache: VerdictCache | None = None) -> Exact:
    """Same bytes, or same pixels among look-identical same-size neighbours (pixel hashes
    kept in ``cache`` per file content)."""
    assert inputs.graph is not None
    columns, n = inputs.columns, len(inputs.file_ids)
    pixel_keys: list[str | None] = [None] * n
    low, high, _ = inputs.graph.pairs(PIXEL_CHECK_COSINE)
    same_size = (columns["width"][low] == columns["width"][high]) & (
        columns["height"][low] == columns["height"][high])
    differ = columns["hash"][low] != columns["hash"][high]
    suspects = np.unique(np.concatenate([low[same_size & differ], high[same_size & differ]]))
    if len(suspects):
        _report(progress, "hash", 0, len(suspects))
        ids, hashes = inputs.file_ids, columns["hash"]
        known = cache.load_pixel_hashes() if cache is not None else {}
        todo = []
        for position in suspects.tolist():
            key = (int(ids[position]), str(hashes[position]))
            if key in known:
                pixel_keys[position] = known[key]
            else:
                todo.append(position)
        hashed = pixel_hashes([inputs.absolute[p] for p in todo], workers=workers)
        for position, pixel_key in zip(todo, hashed):
            pixel_keys[position] = pixel_key
        if cache is not None:
            cache.save_pixel_hashes((int(ids[p]), str(hashes[p]), pixel_keys[p])
                                    for p in todo if hashes[p])
        _report(progress, "hash", len(suspects), len(suspects))
    members = exact_groups(list(columns["hash"]), pixel_keys)
    # a link and its target (or two hard links) are one file: one name stands for it
    alias_of = _other_names(inputs.absolute, members)
    members = [kept for group in members
               if len(kept := [p for p in group if p not in alias_of]) > 1]
    linked_to = set(alias_of.values())  # keep the file that links point to
    groups = [make_group(g, "exact", columns["width"], columns["height"], columns["size"],
                         preferred=linked_to) for g in members]
    representative = np.arange(n)
    for group in groups:
        representative[group.members] = group.keeper
    for alias, name in alias_of.items():
        representative[alias] = representative[name]
    return Exact(groups, representative, alias_of)


def candidate_stage(
    graph: KnnGraph, threshold: float, representative: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k-NN edges ``(i, j, cosine)`` at or above ``threshold`` between representatives."""
    i, j, cosine = candidate_pairs(graph, threshold)
    keep = (representative[i] == i) & (representative[j] == j)
    return i[keep], j[keep], cosine[keep]


def verify_stage(
    inputs: Inputs, i: np.ndarray, j: np.ndarray, cosine: np.ndarray,
    cache: VerdictCache | None = None, progress: Progress | None = None,
    workers: int | None = None,
) -> Checked:
    """Verdicts of the candidates, then of the unchecked pairs inside small verified
    components (average linkage counts an unchecked pair as 0; checking them lets a copy
    missed as a candidate still count as a link). Cached verdicts are reused."""
    features = FeatureCache(inputs.absolute)
    first, cached = _verdicts(inputs, i, j, features, cache, progress, workers, 0)
    checked = Checked(i, j, cosine, first, cached)
    extra_i, extra_j = _closure(len(inputs.file_ids), i, j, checked.weight)
    if len(extra_i):
        more, cached_more = _verdicts(inputs, extra_i, extra_j, features, cache, progress,
                                      workers, len(i))
        extra_cosine = _cosines(inputs.vectors, extra_i, extra_j)
        checked = Checked(np.concatenate([i, extra_i]), np.concatenate([j, extra_j]),
                          np.concatenate([cosine, extra_cosine]), first + more,
                          cached + cached_more)
    return checked


def tier_stage(checked: Checked, calibration: dict[str, Any]) -> np.ndarray:
    """Each checked pair's tier (see :func:`~lookalike.analyse.duplicates.pair_tiers`)
    at the calibrated agreement threshold; similar by embedding alone from the calibrated
    ``near_threshold`` (above which an edit would be taken for a copy on cosine alone);
    two edited copies of one image are copies of each other
    (:func:`~lookalike.analyse.duplicates.promote_shared_copies`)."""
    agreement = np.array([v.agreement for v in checked.verdicts], dtype=np.float64)
    tiers = pair_tiers(checked.same, agreement, checked.cosine,
                       agreement_threshold=float(calibration["agreement_threshold"]),
                       similar_cosine=float(calibration["near_threshold"]))
    return promote_shared_copies(checked.i, checked.j, tiers)


def cosine_stage(
    vectors: np.ndarray, i: np.ndarray, j: np.ndarray, cosine: np.ndarray, threshold: float
) -> tuple[Checked, np.ndarray]:
    """Embedding-only link weights of the candidates and their small components' pairs."""
    weight = _cosine_weights(cosine, threshold)
    extra_i, extra_j = _closure(len(vectors), i, j, weight)
    extra_cosine = _cosines(vectors, extra_i, extra_j)
    checked = Checked(np.concatenate([i, extra_i]), np.concatenate([j, extra_j]),
                      np.concatenate([cosine, extra_cosine]),
                      [NO_MATCH] * (len(i) + len(extra_i)))
    return checked, np.concatenate([weight, _cosine_weights(extra_cosine, threshold)])


def group_stage(
    columns: dict[str, np.ndarray], exact: Exact, checked: Checked, tiers: np.ndarray,
    weight: np.ndarray,
) -> tuple[list[DuplicateGroup], list[DuplicateGroup]]:
    """``(near, similar)`` groups. Near: edited-copy links grouped without chains,
    expanded with exact copies. Similar: all links (an embedding-only similar pair links
    at its cosine), kept where a similar shot is among the members."""
    n = len(exact.representative)
    representative = exact.representative
    copies: dict[int, list[int]] = defaultdict(list)
    for position, rep in enumerate(representative.tolist()):
        if position not in exact.alias_of:
            copies[rep].append(position)
    pairs: dict[tuple[int, int], int] = {
        (a, b): t for t, (a, b) in enumerate(zip(checked.i.tolist(), checked.j.tolist()))}
    link = np.where(tiers == SIMILAR, np.maximum(weight, checked.cosine), weight)
    link = np.where(tiers > 0, link, 0.0)

    def find(a: int, b: int) -> int | None:
        return pairs.get((a, b), pairs.get((b, a)))

    def relation(member: int, keeper: int) -> tuple[Tier, dict[str, Any] | None]:
        a, b = int(representative[member]), int(representative[keeper])
        if a == b:
            return "exact", None
        t = find(a, b)
        if t is None or tiers[t] == 0:
            return "similar", None
        verdict = checked.verdicts[t]
        evidence: dict[str, Any] = {"cosine": round(float(checked.cosine[t]), 4)}
        if verdict is not NO_MATCH:
            evidence.update(inliers=verdict.inliers, flipped=verdict.flipped,
                            agreement=None if math.isnan(verdict.agreement)
                            else round(verdict.agreement, 4),
                            coverage=round(verdict.coverage, 4))
        return TIER_NAMES[int(tiers[t])], evidence

    def build(kind: str, members: list[int], strength: np.ndarray) -> DuplicateGroup:
        expanded = sorted(p for m in members for p in copies[m])
        keeper = int(representative[_keeper(expanded, columns)])
        links: dict[int, dict[int, float]] = defaultdict(dict)
        inside = set(members)
        for t in np.flatnonzero(strength > 0).tolist():
            a, b = int(checked.i[t]), int(checked.j[t])
            if a in inside and b in inside:
                links[a][b] = links[b][a] = float(strength[t])
        scores = {p: _score(int(representative[p]), keeper, inside, links) for p in expanded}
        return make_group(expanded, kind, columns["width"], columns["height"],  # type: ignore[arg-type]
                          columns["size"], scores, relation=relation)

    edited = np.where(tiers == EDITED, weight, 0.0)
    near = [build("near", members, edited)
            for members in link_groups(n, checked.i, checked.j, edited, min_link=MIN_LINK)]
    similar_links = tiers == SIMILAR
    similar = []
    for members in link_groups(n, checked.i, checked.j, link, min_link=MIN_LINK):
        inside = np.isin(checked.i, members) & np.isin(checked.j, members)
        if (inside & similar_links).any():
            similar.append(build("similar", members, link))
    return near, similar


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


def _verdicts(
    inputs: Inputs, i: np.ndarray, j: np.ndarray, features: FeatureCache,
    cache: VerdictCache | None, progress: Progress | None, workers: int | None,
    done_before: int,
) -> tuple[list[Verdict], int]:
    """``(verdict of each pair, how many came from the cache)``; the new ones are cached.
    ``done_before`` pairs were checked by an earlier call, so progress counts on."""
    ids, hashes = inputs.file_ids, inputs.columns["hash"]
    keys = [pair_key(int(ids[a]), int(ids[b]), str(hashes[a]), str(hashes[b]))
            if hashes[a] and hashes[b] else None for a, b in zip(i.tolist(), j.tolist())]
    stored: list[Verdict | None] = [None] * len(keys)
    if cache is not None:
        known = [t for t, key in enumerate(keys) if key is not None]
        for t, verdict in zip(known, cache.load([keys[t] for t in known])):  # type: ignore[misc]
            stored[t] = verdict
    todo = np.array([t for t, verdict in enumerate(stored) if verdict is None], dtype=np.int64)
    cached = len(keys) - len(todo)
    order = todo[visit_order(len(inputs.absolute), i[todo], j[todo])]

    def report(done: int, total: int) -> None:
        _report(progress, "verify", done_before + cached + done, done_before + len(keys))

    fresh = verify_pairs(inputs.absolute, i[order], j[order], cache=features,
                         workers=workers, progress=report)
    for t, verdict in zip(order.tolist(), fresh):
        stored[t] = verdict
    if cache is not None:
        cache.save((key, v) for t, v in zip(order.tolist(), fresh)
                   if (key := keys[t]) is not None)
    return [v if v is not None else NO_MATCH for v in stored], cached


def _cosines(vectors: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    if len(i) == 0:
        return np.zeros(0, dtype=np.float64)
    return np.einsum("ij,ij->i", np.asarray(vectors[i], np.float32),
                     np.asarray(vectors[j], np.float32)).astype(np.float64)


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
