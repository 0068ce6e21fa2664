"""The ``lookalike`` command line: one small command per verb over the Python API.

Exit codes: 0 success; 1 a clear error was printed (no collection, bad query image,
model unavailable...); 2 bad usage.

Each area's commands live in their own module and import the library when they run, so
that ``lookalike --version``, ``--help`` and ``models`` start in a fraction of a second.
The table below registers them, in the order ``--help`` lists them.
"""

from collections.abc import Callable

from . import analyses, curate, eval, files, index, photos, search, serve
from .common import app, friendly_errors, parse_size

commands: list[tuple[str, Callable[..., object]]] = [
    ("index", index.index),
    ("search", search.search),
    ("grid", search.grid),
    ("duplicates", analyses.duplicates),
    ("groups", analyses.groups),
    ("cluster", analyses.cluster),
    ("outliers", analyses.outliers),
    ("suspects", curate.suspects),
    ("leakage", curate.leakage),
    ("quality", curate.quality),
    ("metadata", curate.metadata),
    ("moments", photos.moments),
    ("report", files.report),
    ("sort", files.sort_files),
    ("undo", files.undo),
    ("models", index.models),
    ("info", index.info),
    ("check", index.check),
    ("serve", serve.serve),
    ("eval", eval.eval_command),
    ("learn", eval.learn),
]
for name, command in commands:
    app.command(name)(command)

__all__ = ["app", "friendly_errors", "parse_size"]
