"""A search as a person asks it: an image file, a folder of query images, a catalogue id,
a text or a saved vector, and the matches of each query image.

    >>> for found in SearchQuery(image="queries/").search(collection, k=5):  # one per image
    ...     print(found.label, [hit.path for hit in found.hits])

:class:`~lookalike.Collection` searches vectors, files and ids; this resolves what a
command-line QUERY means (digits are an id) and what each query is shown as.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .discover import discover

if TYPE_CHECKING:
    from .collection import Collection, SearchHit

@dataclass(frozen=True)
class QueryMatches:
    """The matches of one query: ``label`` shows the query (its path, ``id N``, the text),
    ``file`` is the query image where there is one (for a contact sheet)."""

    label: str
    file: Path | None
    hits: list[SearchHit]


@dataclass(frozen=True)
class SearchQuery:
    """Exactly one of ``image`` (an image file, a folder of images, or a catalogue id as
    digits), ``text`` (CLIP-style models) or ``vector`` (a ``.npy`` file)."""

    image: str | None = None
    text: str | None = None
    vector: Path | None = None

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
            return [QueryMatches(self.text, None, collection.search_text(self.text, k))]
        if self.vector is not None:
            vector = np.load(self.vector).astype(np.float32).ravel()
            return [QueryMatches(str(self.vector), None, collection.search(vector, k))]
        path = self.path
        if path is None:
            file_id = int(str(self.image))
            hits = collection.search(file_id, k)  # StoreError: no such image
            record = collection.store.file(file_id)
            return [QueryMatches(f"id {self.image}",
                                 collection.root / record.path if record else None, hits)]
        if path.is_dir():
            files = [path / c.path for c in discover(path) if c.reason is None]
            if not files:
                raise ValueError(f"no images in {path}")
            return [QueryMatches(str(f), f, hits)
                    for f, hits in zip(files, collection.search_many(files, k))]
        if not path.exists():
            raise ValueError(f"query file {path} does not exist")
        return [QueryMatches(str(self.image), path, collection.search(path, k))]
