"""Optional parts of lookalike and the pip extra that installs each.

The core install indexes, searches, finds duplicates and sorts with wheels only; the web
app, figures, Ray and the annoy index (built from source: it needs a C++ compiler) come
with extras. ``require`` imports a module of one and, where it is missing, says which
``pip install`` adds it.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# extra -> the modules it provides (import names)
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn", "python_multipart"),
    "plots": ("matplotlib",),
    "annoy": ("annoy",),
    "ray": ("ray",),
}


class MissingExtra(ImportError):
    """An optional part of lookalike is not installed; the message names the pip extra."""


def require(extra: str, purpose: str) -> None:
    """Raise :class:`MissingExtra` unless every module of ``extra`` is installed
    (``purpose``: what needs it, e.g. "lookalike serve")."""
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(f"{purpose} needs {', '.join(missing)}: "
                           f"pip install 'lookalike[{extra}]'")


def import_module(name: str, extra: str, purpose: str) -> ModuleType:
    """``import name``, or :class:`MissingExtra` naming the extra that installs it."""
    require(extra, purpose)
    return importlib.import_module(name)
