"""Duplicates: exact and near-duplicate grouping as pure functions over arrays.

Near duplicates are edited copies of one photo (re-encoded, resized, cropped, flipped,
rotated a little, recoloured, captioned, framed, blurred), *not* two photos of the same
kind of thing. Embedding similarity alone cannot tell those apart, so the pipeline is:

1. **candidates**: k-NN graph edges above a loose, per-model calibrated cosine
   (:func:`candidate_pairs`, :func:`thresholds_from_samples`); never N x N;
2. **verification** of each candidate by local-feature geometry (``lookalike.verify``,
   the I/O side), which gives every checked pair a weight in [0, 1];
3. **grouping without chains** (:func:`link_groups`): average linkage plus single-item
   moves over that sparse weighted graph, where a pair that was never linked counts as 0.
   ``a ~ b ~ c`` with ``a`` and ``c`` unrelated stays split, unlike connected components.

Exact duplicates (:func:`exact_groups`) share a key: the file's content hash, or a hash of
its decoded pixels. :func:`choose_keeper` picks the copy to keep; :func:`visit_order`
orders pairs for a bounded feature cache; :func:`pair_scores` measures predicted groups
against labels, pair by pair.

Everything here takes positions (rows of the embedding matrix) and plain arrays, and
returns plain data; nothing reads files.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import reverse_cuthill_mckee

from ..knn import KnnGraph

GroupKind = Literal["exact", "near", "similar"]
# How two files relate: the same pixels, one an edited copy of the other, or two shots of
# one scene (pose, viewpoint or moment differ). Only the first two are duplicates.
Tier = Literal["exact", "edited", "similar"]
TIER_OF_KIND: dict[str, Tier] = {"exact": "exact", "near": "edited", "similar": "similar"}
# Pair tiers as numbers (pair_tiers): not related, similar shot, edited copy.
UNRELATED, SIMILAR, EDITED = 0, 1, 2


@dataclass(frozen=True)
class DuplicateGroup:
    """Files that are the same picture (``kind`` "exact" or "near"), or shots of one scene
    ("similar": reported, never treated as duplicates).

    ``members``: positions, keeper first, then by descending score. ``keeper``: the copy
    to keep (largest resolution, then largest file). ``scores[i]``: how surely
    ``members[i]`` is a copy of the keeper, 1.0 for the keeper itself and for exact copies.
    ``tiers[i]``: how ``members[i]`` relates to the keeper (the keeper: the group's tier);
    ``evidence[i]``: what that rests on (e.g. ``{"inliers": 80, "agreement": 0.97,
    "cosine": 0.93}``), None for the keeper and where nothing was measured.
    """

    members: list[int]
    keeper: int
    kind: GroupKind
    scores: list[float]
    tiers: list[Tier] = field(default_factory=list)
    evidence: list[dict[str, Any] | None] = field(default_factory=list)

    @property
    def tier(self) -> Tier:
        """The group's tier: "exact", "edited" (a near group) or "similar"."""
        return TIER_OF_KIND[self.kind]

    def __len__(self) -> int:
        return len(self.members)


# -- candidates ---------------------------------------------------------------------------


def candidate_pairs(
    graph: KnnGraph, threshold: float, *, max_rank: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected k-NN edges ``(i, j, cosine)`` with ``i < j`` and cosine >= ``threshold``.

    ``max_rank``: use only each item's ``max_rank`` nearest neighbours (default: all ``k``).
    An edge is kept when either end lists the other, so a copy whose own list is crowded
    by look-alikes is still reached from the photo it was made from.
    """
    if max_rank is not None and max_rank < graph.k:
        graph = KnnGraph(graph.neighbours[:, :max_rank], graph.scores[:, :max_rank])
    return graph.pairs(threshold)


def thresholds_from_samples(
    edit_similarity: np.ndarray,
    other_similarity: np.ndarray,
    *,
    edit_kinds: Sequence[str] | None = None,
    recall: float = 0.95,
    near_recall: float = 0.75,
) -> dict[str, float]:
    """Cosine thresholds for one model, from samples labelled by construction.

    ``edit_similarity``: cosine of sample images to synthetic edits of themselves (what
    true duplicates score), with the edit's name in ``edit_kinds``. ``other_similarity``:
    cosine of images to their nearest *other* image in the collection (what look-alikes
    reach; a few may be real duplicates, so only its distribution as a whole is used).

    Returns:

    * ``candidate_threshold``: the loose gate before geometric verification. It keeps
      ``recall`` of *every* edit kind, not of all edits pooled: a model may shrug off
      JPEG and flips yet score greyscale copies far lower, and a pooled quantile would
      sacrifice exactly that kind.
    * ``near_threshold``: for deciding on the embedding alone. The cut that minimises
      missed edits plus look-alikes let through (both as fractions, i.e. where the two
      distributions cross), but never one that keeps less than ``near_recall`` of the
      edits: with a weak model (colour histograms) look-alikes crowd up to cosine 0.99 and
      the crossing would keep almost nothing. Never below ``candidate_threshold``.
    """
    edits = np.asarray(edit_similarity, dtype=np.float64).ravel()
    others = np.sort(np.asarray(other_similarity, dtype=np.float64).ravel())
    if len(edits) == 0:
        raise ValueError("no edit similarities to calibrate on")
    kinds = np.asarray(list(edit_kinds) if edit_kinds is not None else [""] * len(edits))
    if len(kinds) != len(edits):
        raise ValueError(f"{len(edits)} similarities but {len(kinds)} edit kinds")
    candidate = min(float(np.quantile(edits[kinds == kind], 1.0 - recall))
                    for kind in np.unique(kinds))
    edits = np.sort(edits)
    if len(others) == 0:
        near = candidate
    else:
        cuts = np.unique(np.concatenate([edits, others]))
        missed = np.searchsorted(edits, cuts, side="left") / len(edits)
        admitted = 1.0 - np.searchsorted(others, cuts, side="left") / len(others)
        near = float(cuts[int(np.argmin(missed + admitted))])
    near = min(near, float(np.quantile(edits, 1.0 - near_recall)))
    return {
        "candidate_threshold": round(candidate, 4),
        "near_threshold": round(max(near, candidate), 4),
    }


def agreement_from_samples(
    agreement: np.ndarray,
    *,
    edit_kinds: Sequence[str] | None = None,
    recall: float = 0.95,
) -> dict[str, object]:
    """The dense-agreement threshold that separates edited copies from other shots.

    ``agreement``: for each synthetic edit of a sample image, the dense agreement of its
    verified match with the original (NaN: the edit did not verify; it has no say here),
    with the edit's name in ``edit_kinds``. An edited copy agrees almost everywhere, so
    the threshold is a low quantile of what edits show: the one that keeps ``recall`` of
    *every* edit kind (like ``candidate_threshold``). Nothing is learned from other shots,
    which carry no labels. With no verified edit at all the threshold is 0: every
    geometric match counts as a copy.

    Returns ``{"agreement_threshold": t, "agreement_by_edit": {kind: quantile}}``.
    """
    values = np.asarray(agreement, dtype=np.float64).ravel()
    kinds = np.asarray(list(edit_kinds) if edit_kinds is not None else [""] * len(values))
    if len(kinds) != len(values):
        raise ValueError(f"{len(values)} agreements but {len(kinds)} edit kinds")
    measured = np.isfinite(values)
    by_kind = {str(kind): round(float(np.quantile(values[measured & (kinds == kind)],
                                                  1.0 - recall)), 4)
               for kind in np.unique(kinds[measured])}
    return {"agreement_threshold": min(by_kind.values(), default=0.0),
            "agreement_by_edit": by_kind}


def pair_tiers(
    same: np.ndarray,
    agreement: np.ndarray,
    cosine: np.ndarray,
    *,
    agreement_threshold: float,
    similar_cosine: float,
) -> np.ndarray:
    """The tier of each checked pair: :data:`EDITED`, :data:`SIMILAR` or :data:`UNRELATED`.

    ``same``: the pair matched geometrically; ``agreement``: the dense agreement of that
    match (NaN: not measurable, e.g. no texture; the geometric match then decides);
    ``cosine``: embedding similarity. An edited copy is a geometric match that agrees at
    least ``agreement_threshold``; a similar shot is a geometric match that agrees less
    (the same scene, but pose or moment differ), or a pair whose embeddings alone reach
    ``similar_cosine``.
    """
    same = np.asarray(same, dtype=bool)
    agreement = np.asarray(agreement, dtype=np.float64)
    edited = same & ~(agreement < agreement_threshold)
    similar = ~edited & (same | (np.asarray(cosine, dtype=np.float64) >= similar_cosine))
    return np.where(edited, EDITED, np.where(similar, SIMILAR, UNRELATED)).astype(np.int8)


def promote_shared_copies(i: np.ndarray, j: np.ndarray, tiers: np.ndarray) -> np.ndarray:
    """``tiers`` with each :data:`SIMILAR` pair that is an edited copy of a common third
    image (``a ~ c`` and ``b ~ c`` both :data:`EDITED`) made :data:`EDITED`: two copies of
    one photo are copies of each other, though two edits apart (a blurred copy and a
    captioned one) they agree less than either does with the photo. One pass, from the
    pairs as given: promotions do not chain."""
    tiers = np.asarray(tiers).copy()
    edited: dict[int, set[int]] = defaultdict(set)
    for a, b in zip(np.asarray(i)[tiers == EDITED].tolist(),
                    np.asarray(j)[tiers == EDITED].tolist()):
        edited[a].add(b)
        edited[b].add(a)
    similar = np.flatnonzero(tiers == SIMILAR)
    shared = [t for t in similar.tolist() if edited[int(i[t])] & edited[int(j[t])]]
    tiers[shared] = EDITED
    return tiers


def visit_order(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """An order of the pairs ``(i, j)`` in which pairs sharing images come close together.

    Verification keeps features of recently seen images in a bounded cache; sorting the
    pairs by a reverse Cuthill-McKee numbering of the pair graph (which keeps linked items
    at nearby numbers) cuts feature re-extraction several-fold once the candidate images
    outnumber the cache (neardup_flowers, cache of 400 of 1,100 images: 6,000 loads in
    plain id order, 1,600 in this one).
    """
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    if len(i) == 0:
        return np.zeros(0, dtype=np.int64)
    ones = np.ones(2 * len(i), dtype=np.int8)
    graph = csr_matrix((ones, (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n))
    rank = np.empty(n, dtype=np.int64)
    rank[reverse_cuthill_mckee(graph, symmetric_mode=True)] = np.arange(n)
    low, high = np.minimum(rank[i], rank[j]), np.maximum(rank[i], rank[j])
    return np.lexsort((high, low))


# -- grouping -----------------------------------------------------------------------------


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` items under edges ``(i, j)``.

    Labels are the smallest position in each component.
    """
    parent = np.arange(n, dtype=np.int64)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist()):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(x) for x in range(n)], dtype=np.int64)


def link_groups(
    n: int,
    i: np.ndarray,
    j: np.ndarray,
    weight: np.ndarray,
    *,
    min_link: float = 0.5,
    max_rounds: int = 10,
) -> list[list[int]]:
    """Groups over a sparse weighted graph in which an unlinked pair weighs 0.

    The partition sought maximises ``sum(weight - min_link)`` over the pairs inside groups
    (correlation clustering): a pair helps its group when linked more strongly than
    ``min_link`` and costs ``min_link`` when not linked at all. Chains therefore do not
    form: for ``a ~ b ~ c`` with weights 0.9, 0.9 and no ``a ~ c`` edge, adding ``c`` to
    ``{a, b}`` gains 0.4 and loses 0.5.

    Found in rounds of (1) average linkage: merge the two groups with the highest mean
    cross weight while it exceeds ``min_link`` (exactly when merging raises the sum), and
    (2) moves of single items to the group they gain most in (or out on their own), which
    undoes merges that the greedy order regrets: a lone strong edge between two triangles
    no longer steals one member of each. Edges with weight <= 0 are ignored. Each round
    is O(E log E) on the edges; no dense matrix is built.

    Returns groups of two or more positions, each sorted, largest group first.
    """
    adjacency: dict[int, dict[int, float]] = defaultdict(dict)
    for a, b, w in zip(np.asarray(i).tolist(), np.asarray(j).tolist(),
                       np.asarray(weight, dtype=np.float64).tolist()):
        if a == b or w <= 0:
            continue
        if not 0 <= a < n or not 0 <= b < n:
            raise ValueError(f"edge ({a}, {b}) outside 0..{n - 1}")
        # Keep the strongest weight when a pair is given twice.
        adjacency[a][b] = adjacency[b][a] = max(w, adjacency[a].get(b, 0.0))
    label = {node: node for node in adjacency}
    for _ in range(max_rounds):
        label = _agglomerate(adjacency, label, min_link)
        label, moved = _refine(adjacency, label, min_link)
        if not moved:
            break
    found: dict[int, list[int]] = defaultdict(list)
    for node, group in label.items():
        found[group].append(node)
    groups = [sorted(group) for group in found.values() if len(group) > 1]
    return sorted(groups, key=lambda group: (-len(group), group[0]))


def _agglomerate(
    adjacency: dict[int, dict[int, float]], label: dict[int, int], min_link: float
) -> dict[int, int]:
    """Average linkage starting from the partition ``label``; returns the new partition."""
    members: dict[int, list[int]] = defaultdict(list)
    for node, group in label.items():
        members[group].append(node)
    links: dict[int, dict[int, float]] = {group: {} for group in members}
    for a, row in adjacency.items():
        for b, w in row.items():
            ga, gb = label[a], label[b]
            if a < b and ga != gb:
                links[ga][gb] = links[ga].get(gb, 0.0) + w
                links[gb][ga] = links[gb].get(ga, 0.0) + w
    # Entries are (-mean link, a, b). Groups are never modified, only replaced by a new id
    # when merged, so an entry whose two ids are both alive is always up to date.
    heap = [(-total / (len(members[a]) * len(members[b])), a, b)
            for a, row in links.items() for b, total in row.items() if a < b]
    heapq.heapify(heap)
    next_id = max(members, default=-1) + 1
    while heap:
        negative_mean, a, b = heapq.heappop(heap)
        if a not in links or b not in links:
            continue
        if -negative_mean <= min_link:
            break  # popped best first: no later pair can pass
        merged, row = next_id, links.pop(a)
        next_id += 1
        for other, total in links.pop(b).items():
            row[other] = row.get(other, 0.0) + total
        row.pop(a, None)
        row.pop(b, None)
        members[merged] = members.pop(a) + members.pop(b)
        links[merged] = row
        for other, total in row.items():
            neighbour = links[other]
            neighbour.pop(a, None)
            neighbour.pop(b, None)
            neighbour[merged] = total
            mean = total / (len(members[merged]) * len(members[other]))
            heapq.heappush(heap, (-mean, merged, other))
    return {node: group for group, nodes in members.items() for node in nodes}


def _refine(
    adjacency: dict[int, dict[int, float]], label: dict[int, int], min_link: float,
    max_sweeps: int = 20,
) -> tuple[dict[int, int], bool]:
    """Move single items to the group (or solitude) where ``sum(w - min_link)`` gains most.

    Every move strictly raises the sum, so the sweeps end.
    """
    label = dict(label)
    size: dict[int, int] = defaultdict(int)
    for group in label.values():
        size[group] += 1
    next_id = max(size, default=-1) + 1
    moved_any = False
    for _ in range(max_sweeps):
        moved = False
        for node in sorted(adjacency):
            current = label[node]
            pull: dict[int, float] = defaultdict(float)
            for other, w in adjacency[node].items():
                pull[label[other]] += w
            stay = pull.get(current, 0.0) - min_link * (size[current] - 1)
            best, target = 0.0, None  # None: leave to be on its own
            for group, total in sorted(pull.items()):
                gain = total - min_link * size[group]
                if group != current and gain > best:
                    best, target = gain, group
            if best <= stay + 1e-12 or (target is None and size[current] == 1):
                continue
            if target is None:
                target, next_id = next_id, next_id + 1
            size[current] -= 1
            size[target] += 1
            label[node] = target
            moved = moved_any = True
        if not moved:
            break
    return label, moved_any


def choose_keeper(
    members: Sequence[int], width: np.ndarray, height: np.ndarray, size: np.ndarray,
    preferred: Collection[int] = (),
) -> int:
    """The copy to keep: most pixels, then the largest file, then a ``preferred`` one
    (e.g. a file that links point to: moving it would break them), then the lowest
    position.

    ``width``, ``height``, ``size``: per-position arrays (unknown values as 0).
    """
    return min(members, key=lambda p: (-int(width[p]) * int(height[p]), -int(size[p]),
                                       p not in preferred, p))


def make_group(
    members: Sequence[int],
    kind: GroupKind,
    width: np.ndarray,
    height: np.ndarray,
    size: np.ndarray,
    score: dict[int, float] | None = None,
    preferred: Collection[int] = (),
    relation: Callable[[int, int], tuple[Tier, dict[str, Any] | None]] | None = None,
) -> DuplicateGroup:
    """A :class:`DuplicateGroup` with its keeper chosen and members ordered keeper first.

    ``score``: per member, how surely it is a copy of the keeper (missing: 1.0).
    ``preferred``: keeper candidates to favour on a tie (see :func:`choose_keeper`).
    ``relation(member, keeper)``: the member's tier and evidence (default: the group's
    tier, no evidence).
    """
    keeper = choose_keeper(members, width, height, size, preferred)
    score = dict(score or {})
    score[keeper] = 1.0
    ordered = sorted(members, key=lambda p: (p != keeper, -score.get(p, 1.0), p))
    tier = TIER_OF_KIND[kind]
    related = [(tier, None) if p == keeper or relation is None else relation(p, keeper)
               for p in ordered]
    return DuplicateGroup(
        members=[int(p) for p in ordered],
        keeper=int(keeper),
        kind=kind,
        scores=[float(score.get(p, 1.0)) for p in ordered],
        tiers=[t for t, _ in related],
        evidence=[e for _, e in related],
    )


def exact_groups(*keys: Sequence[Hashable | None]) -> list[list[int]]:
    """Positions that share any key: e.g. ``exact_groups(content_hashes, pixel_hashes)``.

    Each argument is one key per position (``None``: no key, e.g. not computed). Two
    positions are exact duplicates when they agree on *any* of the key lists, transitively
    (same bytes, or same decoded pixels in another container). Groups of two or more,
    each sorted, in order of their first member.
    """
    lengths = {len(key_list) for key_list in keys}
    if len(lengths) > 1:
        raise ValueError(f"key lists differ in length: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    left: list[int] = []
    right: list[int] = []
    for key_list in keys:
        first: dict[Hashable, int] = {}
        for position, key in enumerate(key_list):
            if key is None:
                continue
            if key in first:
                left.append(first[key])
                right.append(position)
            else:
                first[key] = position
    labels = components(n, np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64))
    return _label_groups(labels)


def _label_groups(labels: np.ndarray) -> list[list[int]]:
    found: dict[int, list[int]] = defaultdict(list)
    for position, label in enumerate(labels.tolist()):
        found[label].append(position)
    return sorted((g for g in found.values() if len(g) > 1), key=lambda g: g[0])


# -- evaluation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PairScores:
    """Pairwise agreement of predicted groups with true groups.

    A pair counts as predicted when both files are in one predicted group, as true when
    both carry the same true group label. With no predicted pairs precision is 1.0 (no
    false claim), with no true pairs recall is 1.0 (nothing missed); F1 is 0.0 when
    precision + recall is 0.
    """

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        claimed = self.true_positives + self.false_positives
        return self.true_positives / claimed if claimed else 1.0

    @property
    def recall(self) -> float:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(count: int) -> int:
    return count * (count - 1) // 2


def pair_scores(
    groups: Sequence[Sequence[int]],
    truth: np.ndarray,
    *,
    involving: np.ndarray | None = None,
) -> PairScores:
    """Pairwise precision/recall of predicted ``groups`` against ``truth`` labels.

    ``truth``: one label per position; equal labels >= 0 are one true group, -1 means
    "duplicate of nothing". ``involving``: a boolean mask; when given, only pairs with at
    least one masked end are counted (e.g. every pair that touches a "crop" copy gives the
    score for crops). Counted in closed form per group, never pair by pair.
    """
    truth = np.asarray(truth)
    mask = np.ones(len(truth), dtype=bool) if involving is None else np.asarray(involving)

    def touching(count: int, masked: int) -> int:
        # pairs among ``count`` items with at least one of the ``masked`` ones in them
        return _pairs(count) - _pairs(count - masked)

    predicted = hits = 0
    for group in groups:
        members = np.asarray(list(group), dtype=np.int64)
        if len(np.unique(members)) != len(members):
            raise ValueError("a predicted group lists a position twice")
        predicted += touching(len(members), int(mask[members].sum()))
        labels = truth[members]
        for label in np.unique(labels[labels >= 0]):
            same = members[labels == label]
            hits += touching(len(same), int(mask[same].sum()))
    actual = 0
    for label in np.unique(truth[truth >= 0]):
        same = np.flatnonzero(truth == label)
        actual += touching(len(same), int(mask[same].sum()))
    return PairScores(hits, predicted - hits, actual - hits)


def pair_scores_by_tag(
    groups: Sequence[Sequence[int]], truth: np.ndarray, tags: Sequence[str]
) -> dict[str, PairScores]:
    """:func:`pair_scores` restricted to the pairs touching each tag (e.g. an edit type)."""
    tag_array = np.asarray(list(tags), dtype=object)
    return {
        tag: pair_scores(groups, truth, involving=tag_array == tag)
        for tag in sorted(set(tag_array.tolist()))
    }
