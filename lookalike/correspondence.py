"""How well searches find their own class, when the folders say what the class is.

A file's class is a folder of its path (relative to the collection root, or for a query to
the query folder): the first one (``top``, as ``eval`` reads a folder of class
sub-folders) or the one holding the file (``parent``). A query's *correspondence* is the
share of its hits in its class (P@k); over labelled queries the mean of it, the top-1
accuracy, and for each query class the share of its hits that land in each class (a
confusion table, whose diagonal is the class's own correspondence).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath
from typing import Literal

ClassFrom = Literal["top", "parent"]
NO_CLASS = "(none)"  # the confusion table's column for hits outside any class folder


def class_of(path: str | PurePath, how: ClassFrom = "top") -> str | None:
    """The class of a file at ``path`` (relative to its root): its first folder (``top``)
    or the folder holding it (``parent``); None for a file directly in the root."""
    folders = PurePosixPath(PurePath(path).as_posix()).parts[:-1]
    if not folders:
        return None
    return folders[0] if how == "top" else folders[-1]


def share_in_class(query_class: str | None, hit_classes: Sequence[str | None]
                   ) -> float | None:
    """The correspondence of one query: the share of its hits in its class (0 without
    hits); None for a query without a class."""
    if query_class is None:
        return None
    if not hit_classes:
        return 0.0
    return sum(found == query_class for found in hit_classes) / len(hit_classes)


@dataclass(frozen=True)
class Correspondence:
    """Labelled queries against their hits' classes."""

    queries: int  # queries with a class
    mean_precision: float  # mean over them of the share of their hits in their class
    top1: float  # share of them whose best hit is in their class
    # query class -> hit class (NO_CLASS for none) -> share of that query class's hits
    confusion: dict[str, dict[str, float]]


def correspondence(labelled: Sequence[tuple[str, Sequence[str | None]]]
                   ) -> Correspondence | None:
    """The summary over ``(query class, classes of its hits in rank order)`` pairs; None
    when there are none."""
    if not labelled:
        return None
    shares = [share_in_class(query_class, hits) or 0.0 for query_class, hits in labelled]
    top1 = [bool(hits) and hits[0] == query_class for query_class, hits in labelled]
    counts: dict[str, Counter[str]] = {}
    for query_class, hits in labelled:
        counts.setdefault(query_class, Counter()).update(h or NO_CLASS for h in hits)
    columns = sorted(set(counts) | {c for row in counts.values() for c in row},
                     key=lambda c: (c == NO_CLASS, c))
    confusion = {query_class: {c: row[c] / max(1, row.total()) for c in columns}
                 for query_class, row in sorted(counts.items())}
    return Correspondence(len(labelled), sum(shares) / len(shares), sum(top1) / len(top1),
                          confusion)
