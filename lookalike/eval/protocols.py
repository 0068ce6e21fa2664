"""Evaluation protocols: which labelled images query, which are searched (the gallery),
and which a learned stage may be fitted on.

Each protocol is a small splitter object in the manner of scikit-learn's cross-validators:
``split(labels)`` returns a :class:`Split` of positions into ``labels``, and
``description`` says in words what was measured. The pool of labels is the dataset,
followed by a separate query set's labels when there is one (:class:`SeparateQueries`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np


@dataclass(frozen=True)
class Split:
    """Positions into the pool of labels. ``leave_one_out``: the queries are the gallery, in
    the same order, and query q must not retrieve gallery item q (itself)."""

    queries: np.ndarray
    gallery: np.ndarray
    fit: np.ndarray  # the rows a learned transform may see: never a held-out query
    leave_one_out: bool


class Splitter(Protocol):
    holds_out: ClassVar[bool]  # False: every query is also fitted on (no learned stage)

    @property
    def description(self) -> str: ...

    def split(self, labels: np.ndarray) -> Split: ...


@dataclass(frozen=True)
class LeaveOneOut:
    """Every image queries all the others."""

    holds_out: ClassVar[bool] = False

    @property
    def description(self) -> str:
        return "leave-one-out over all images"

    def split(self, labels: np.ndarray) -> Split:
        everything = np.arange(len(labels))
        return Split(everything, everything, everything, leave_one_out=True)


@dataclass(frozen=True)
class HeldOut:
    """A stratified held-out share (``fraction``, or ``per_class`` images) of each class
    queries; the gallery is the rest (``gallery="rest"``) or the other held-out images
    (``"held-out"``: leave-one-out among images no learned stage has seen). A learned
    stage is fitted on the rest in both cases."""

    fraction: float = 0.0
    per_class: int | None = None
    seed: int = 0
    gallery: str = "rest"
    holds_out: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.gallery not in ("rest", "held-out"):
            raise ValueError(f"gallery must be rest or held-out, not {self.gallery!r}")

    @property
    def description(self) -> str:
        amount = f"{self.per_class}/class" if self.per_class is not None else f"{self.fraction:g}"
        if self.gallery == "held-out":
            return f"held-out {amount} (seed {self.seed}), leave-one-out among them"
        return f"held-out {amount} (seed {self.seed}) vs the rest"

    def split(self, labels: np.ndarray) -> Split:
        rest, held = stratified_split(labels, self.fraction, self.seed, per_class=self.per_class)
        if self.gallery == "held-out":
            return Split(held, held, rest, leave_one_out=True)
        return Split(held, rest, rest, leave_one_out=False)


@dataclass(frozen=True)
class ClassDisjoint:
    """Whole classes held out: ``fraction`` of the classes (see :func:`class_split`) query
    each other leave-one-out, and a learned stage is fitted on the other classes only.
    This is what a collection holding classes the labels do not looks like: a transform
    that only separates the classes it was fitted on shows it here, not under
    :class:`HeldOut`."""

    fraction: float = 0.5
    seed: int = 0
    holds_out: ClassVar[bool] = True

    @property
    def description(self) -> str:
        return (f"held-out classes {self.fraction:g} (seed {self.seed}), "
                "leave-one-out among them")

    def split(self, labels: np.ndarray) -> Split:
        seen, unseen = class_split(labels, self.fraction, self.seed)
        return Split(unseen, unseen, seen, leave_one_out=True)


@dataclass(frozen=True)
class SeparateQueries:
    """The last ``count`` labels are a separate query set, searched against (and fitted on)
    the dataset before them."""

    count: int
    holds_out: ClassVar[bool] = True

    @property
    def description(self) -> str:
        return f"{self.count} separate queries vs the dataset"

    def split(self, labels: np.ndarray) -> Split:
        dataset = np.arange(len(labels) - self.count)
        return Split(np.arange(len(dataset), len(labels)), dataset, dataset, leave_one_out=False)


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int = 0, *, per_class: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(rest, held_out)`` positions: ``fraction`` of each class (at least one, never all
    of a class with two or more items) or exactly ``per_class`` items per class held out.
    Reproducible for a given seed, independent of the order classes appear in."""
    labels = np.asarray(labels)
    if per_class is None and not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must be between 0 and 1, not {fraction}")
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        if per_class is not None:
            count = min(per_class, len(members) - 1 if len(members) > 1 else 1)
        else:
            count = int(round(fraction * len(members)))
            count = min(max(count, 1), max(len(members) - 1, 1))
        held.append(members[:count])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), held_out)
    return rest, held_out


def held_out_classes(labels: np.ndarray, fraction: float, seed: int = 0) -> list[str]:
    """The classes :func:`class_split` holds out: ``round(fraction * n)`` of the n classes
    (at least one, and two are always left to fit on), a consecutive block of the classes
    in name order: seed 0 takes the last ones, seed s the block s places before, wrapping
    round. Successive seeds are thus the folds of a class-disjoint cross-validation, and
    a split can be read off the class names."""
    classes = sorted(set(np.asarray(labels).tolist()))
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out class fraction must be between 0 and 1, not {fraction}")
    if len(classes) < 3:
        raise ValueError(f"a class-disjoint split needs at least 3 classes, not {len(classes)}")
    count = min(max(int(round(fraction * len(classes))), 1), len(classes) - 2)
    end = len(classes) - (seed * count) % len(classes)
    return [classes[i % len(classes)] for i in range(end - count, end)]


def class_split(labels: np.ndarray, fraction: float, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(seen, unseen)`` positions: the images of the classes :func:`held_out_classes`
    names are unseen, every other image is seen."""
    labels = np.asarray(labels)
    unseen = np.isin(labels, held_out_classes(labels, fraction, seed))
    return np.flatnonzero(~unseen), np.flatnonzero(unseen)
