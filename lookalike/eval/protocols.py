"""How a labelled set is divided into queries and gallery."""

from __future__ import annotations

import numpy as np


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
