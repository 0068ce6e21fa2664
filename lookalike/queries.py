"""A search as a person asks it: an image file, a folder of query images, a catalogue id,
a text or a saved vector, and the matches of each query image.

    >>> for found in SearchQuery(image="queries/").search(collection, k=5):  # one per image
    ...     print(found.label, found.query_class, found.correspondence,
    ...           [(hit.path, hit.class_name) for hit in found.hits])

:class:`~lookalike.Collection` searches vectors, files and ids; this resolves what a
command-line QUERY means (digits are an id), what each query is shown as, and the class
(folder, :mod:`lookalike.correspondence`) of each hit and of each query in a class
sub-folder of a query folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .collection import SearchHit
from .correspondence import ClassFrom, Correspondence, class_of, correspondence, share_in_class
from .discover import Root, discover

if TYPE_CHECKING:
    from .collection import Collection


@dataclass(frozen=True)
class ClassedHit(SearchHit):
    """A match and its class: a folder of its path in the collection (None for a file
    directly in the collection's root)."""

    class_name: str | None


@dataclass(frozen=True)
class QueryMatches:
    """The matches of one query: ``label`` shows the query (its path, ``id N``, the text),
    ``file`` is the query image where there is one (for a contact sheet), ``query_class``
    its class where it lies in a class sub-folder of a query folder."""

    label: str
    file: Root | None
    hits: list[ClassedHit]
    query_class: str | None = None

    @property
    def correspondence(self) -> float | None:
        """The share of the hits in the query's class; None for a query without one."""
        return share_in_class(self.query_class, [hit.class_name for hit in self.hits])


def summarise(found: list[QueryMatches]) -> Correspondence | None:
    """Mean correspondence, top-1 accuracy and confusion over the queries with a class;
    None when no query has one."""
    return correspondence([(m.query_class, [hit.class_name for hit in m.hits])
                           for m in found if m.query_class is not None])


@dataclass(frozen=True)
class SearchQuery:
    """Exactly one of ``image`` (an image file, a folder of images, or a catalogue id as
    digits), ``text`` (CLIP-style models) or ``vector`` (a ``.npy`` file)."""

    image: str | None = None
    text: str | None = None
    vector: Path | None = None
    class_from: ClassFrom = "top"  # which folder is a file's class

    def __post_init__(self) -> None:
        if sum(source is not None for source in (self.image, self.text, self.vector)) != 1:
            raise ValueError("give exactly one of: QUERY, --text or --vector")

    @property
    def path(self) -> Path | None:
        """The image query as a path (where its collection is looked for); None for an
        id, a text or a vector."""
        if self.image is None or self.image.isdigit():
            return None
        return Path(self.image).expanduser()

    def search(self, collection: Collection, k: int = 10) -> list[QueryMatches]:
        """The ``k`` best matches of each query image: one entry, or one per image of a
        folder. Raises ValueError for a missing file or an empty folder, StoreError for
        an id that names no embedded image (:class:`~lookalike.collection.NotEmbedded`)."""
        if self.text is not None:
            return [self._matches(self.text, None, collection.search_text(self.text, k))]
        if self.vector is not None:
            vector = np.load(self.vector).astype(np.float32).ravel()
            return [self._matches(str(self.vector), None, collection.search(vector, k))]
        path = self.path
        if path is None:
            file_id = int(str(self.image))
            hits = collection.search(file_id, k)  # StoreError: no such image
            record = collection.store.file(file_id)
            return [self._matches(f"id {self.image}",
                                  collection.root / record.path if record else None, hits)]
        if path.is_dir():
            found = [c.path for c in discover(path) if c.reason is None]
            if not found:
                raise ValueError(f"no images in {path}")
            files = [path / relative for relative in found]
            return [self._matches(str(f), f, hits, class_of(relative, self.class_from))
                    for f, relative, hits in zip(files, found,
                                                 collection.search_many(files, k))]
        if not path.exists():
            raise ValueError(f"query file {path} does not exist")
        return [self._matches(str(self.image), path, collection.search(path, k))]

    def _matches(self, label: str, file: Root | None, hits: list[SearchHit],
                 query_class: str | None = None) -> QueryMatches:
        """One query's matches, each hit with its class in the collection."""
        classed = [ClassedHit(**vars(hit), class_name=class_of(hit.path, self.class_from))
                   for hit in hits]
        return QueryMatches(label, file, classed, query_class)
