"""lookalike: explore image collections by visual similarity.

Python API (the CLI and the web server are thin layers over it)::

    from lookalike import Collection
    collection, report = Collection.index_folder("~/photos")
    for hit in collection.search("query.jpg", k=10):
        print(hit.rank, f"{hit.score:.3f}", hit.path)
"""

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

__version__ = "0.1.0"

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
