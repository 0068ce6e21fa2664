"""What :class:`lookalike.Collection` returns and raises: search hits, index reports,
the group threshold, the collection's facts, and the errors of a model that does not fit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .discover import Root
from .pipeline import EmbedReport
from .store import CatalogueChanges, FileRecord, StoreError


class ModelMismatch(StoreError):
    """The model asked for is not the one the collection's embeddings came from."""


class NoEmbeddings(StoreError):
    """The collection has no embeddings yet (:meth:`Collection.require_model`)."""

    def __init__(self) -> None:
        super().__init__("the collection has no embeddings yet: run lookalike index first")


class NotEmbedded(StoreError, KeyError):
    """A catalogue id that names no embedded image: a StoreError to the CLI, a KeyError
    (a failed lookup) to the web server."""

    __str__ = Exception.__str__  # the message, not KeyError's quoted repr of it


@dataclass(frozen=True)
class Neighbour:
    """One result of :meth:`Collection.search_vectors`: a file and its cosine to the query."""

    score: float
    record: FileRecord


@dataclass(frozen=True)
class SearchHit:
    rank: int
    score: float  # cosine similarity, 1.0 = identical embedding
    id: int  # catalogue file id
    path: str  # relative to the collection root
    absolute_path: Root  # a local Path, or a UPath on object storage


@dataclass
class IndexReport:
    """What one ``index`` run did."""

    changes: CatalogueChanges
    embed: EmbedReport
    model: str
    index_kind: str
    seconds: float
    skipped_total: int  # all skipped files in the collection, not only this run's
    new_model: bool = False  # this run started the embeddings afresh (new or --rebuild)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Files found unusable in this run: at discovery (not images) or at decoding."""
        return self.changes.rejected + self.embed.skipped


@dataclass(frozen=True)
class GroupThreshold:
    """The cosine threshold groups are cut at, and where it came from.

    ``calibrated``: it is the collection's calibrated near-duplicate threshold for ``model``
    (:meth:`Collection.group_threshold`), not a value that was given. ``value`` is NaN when
    the collection has fewer than two images (nothing to calibrate on, nothing to group).
    """

    value: float
    calibrated: bool
    model: str | None = None

    def describe(self) -> str:
        """One line for people: the value and where it came from (groups, the report)."""
        if math.isnan(self.value):
            return "threshold: none (fewer than two images to compare)"
        if self.calibrated:
            return (f"threshold {self.value:.3f} (calibrated for {self.model} on this "
                    "collection; --threshold to change)")
        return f"threshold {self.value:g} (--threshold)"


@dataclass
class CollectionInfo:
    directory: Path
    root: Root
    counts: dict[str, int]
    model: str | None
    model_spec: str | None
    dim: int | None
    index_kind: str | None
    index_fresh: bool
    disk_bytes: dict[str, int]
    embedded: int
    dead_rows: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    identity: dict[str, Any] = field(default_factory=dict)
    augmentation: str = "no augmentation"
    transform: str | None = None  # the learned projection's stages, when one is set
