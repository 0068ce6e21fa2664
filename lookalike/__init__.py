"""lookalike: explore image collections by visual similarity.

Python API (the CLI and the web server are thin layers over it)::

    from lookalike import Collection
    collection, report = Collection.index_folder("~/photos")
    for hit in collection.search("query.jpg", k=10):
        print(hit.rank, f"{hit.score:.3f}", hit.path)

The names below (and ``__version__``) load on first use (PEP 562), so that ``import
lookalike`` (and the ``lookalike`` command, which imports it) stays light: the collection
pulls in FAISS, SciPy and the image stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {  # public name -> the module that defines it
    "Backbone": ".embed",
    "Collection": ".collection",
    "CollectionInfo": ".collection",
    "DecodeError": ".decode",
    "IndexReport": ".collection",
    "ModelMismatch": ".collection",
    "ModelUnavailable": ".embed",
    "SearchHit": ".collection",
    "StoreError": ".store",
    "list_backbones": ".embed",
    "load_backbone": ".embed",
    "locate": ".collection",
}

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

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ loads them
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


def __getattr__(name: str) -> Any:
    """Load a public name's module on first access and keep the name here."""
    if name == "__version__":
        globals()[name] = _version()
        return globals()[name]
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


def _version() -> str:
    """One version source: the installed package's metadata (pyproject.toml)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("lookalike")
    except importlib.metadata.PackageNotFoundError:  # a source tree never installed
        return "0+unknown"
