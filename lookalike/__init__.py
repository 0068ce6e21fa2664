"""lookalike: explore image collections by visual similarity.

Python API (the CLI and the web server are thin layers over it)::

    from lookalike import Collection
    collection, report = Collection.index_folder("~/photos")
    for hit in collection.search("query.jpg", k=10):
        print(hit.rank, f"{hit.score:.3f}", hit.path)
"""

import importlib.metadata

from .collection import (
    Collection,
    CollectionInfo,
    IndexReport,
    ModelMismatch,
    SearchHit,
    locate,
)
from .decode import DecodeError
from .embed import Backbone, ModelUnavailable, list_backbones, load_backbone
from .store import StoreError

try:  # one version source: the installed package's metadata (pyproject.toml)
    __version__ = importlib.metadata.version("lookalike")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Backbone",
    "Collection",
    "CollectionInfo",
    "DecodeError",
    "IndexReport",
    "ModelMismatch",
    "ModelUnavailable",
    "SearchHit",
    "StoreError",
    "list_backbones",
    "load_backbone",
    "locate",
]
