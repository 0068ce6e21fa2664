"""What every command shares: the Typer ``app``, the consoles, options, error handling and
JSON output.

Kept light: ``lookalike --version`` and ``lookalike models`` load only this and the command
modules, each of which imports the library (FAISS, SciPy, PIL...) inside its commands.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import logging
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..extras import MissingExtra

app = typer.Typer(
    help="Explore image collections by visual similarity.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped or redirected output is not wrapped at 80 columns: a line stays one line for grep
console = Console(soft_wrap=not sys.stdout.isatty())
errors = Console(stderr=True, soft_wrap=not sys.stderr.isatty())
F = TypeVar("F", bound=Callable[..., Any])


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(f"lookalike {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print lookalike's version and exit.")] = False) -> None:
    pass

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Collection directory (default: FOLDER/.lookalike, found from "
                 "the query's folder or the current directory)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
# Bounds of -k: memory grows with k per query (search) and per image (neighbour graphs).
MAX_MATCHES = 100_000
MAX_NEIGHBOURS = 1_000


def _expected_errors() -> tuple[type[BaseException], ...]:
    """The failures a user can fix, each shown as one line. Imported only when a command
    fails: the modules that define them are heavy to load."""
    from ..act.sort import SortError
    from ..decode import DecodeError
    from ..embed import ModelUnavailable
    from ..ownership import NotOwnedError
    from ..pipeline_ray import RayUnavailable
    from ..store import StoreError

    return (StoreError, ModelUnavailable, DecodeError, SortError, RayUnavailable,
            NotOwnedError, ValueError, OSError)


def friendly_errors(command: F) -> F:
    """Turn expected failures into one red line and exit code 1: no traceback for users."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except sqlite3.DatabaseError as error:  # a page of the catalogue went bad under us
            errors.print(f"[bold red]error:[/] the collection's catalogue is damaged "
                         f"({escape(str(error))}): run lookalike check to see what to do",
                         highlight=False)
            raise typer.Exit(1) from None
        except _expected_errors() as error:  # evaluated only when the command failed
            errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
            raise typer.Exit(1) from None
        except MissingExtra as error:  # an optional part not installed: how to add it
            errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


class _WarningLine(logging.Handler):
    """The library's warnings (a damaged file repaired, an index rebuilt) as one yellow
    line each on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        errors.print(f"[yellow]warning:[/] {record.getMessage()}", highlight=False)


logging.getLogger("lookalike").addHandler(_WarningLine(logging.WARNING))
logging.getLogger("lookalike").propagate = False


def parse_size(text: str) -> int:
    """``6G``, ``512M``, ``1.5GB``, ``2000000`` -> bytes (powers of 1024)."""
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = cleaned.rstrip("KMGT"), cleaned[len(cleaned.rstrip("KMGT")):]
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise ValueError(f"not a size: {text!r} (e.g. 6G, 512M)") from None
    if value <= 0:
        raise ValueError(f"size must be positive: {text!r}")
    return int(value)


def json_argument(value: str) -> dict[str, Any]:
    """A ``--preprocess`` value: a JSON object, or a file holding one."""
    if value.lstrip().startswith("{"):
        text = value
    elif Path(value).is_file():
        text = Path(value).read_text()
    else:
        raise ValueError(f"--preprocess: not JSON, not a file, not SPEC=JSON: {value}")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--preprocess is not valid JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise ValueError("--preprocess must be a JSON object")
    return parsed


def preprocess_options(values: list[str] | None) -> dict[str, dict[str, Any]]:
    """``--preprocess`` values (``eval``, ``learn``, ``index``) -> {model spec or "*":
    preprocess dict}: ``JSON`` or a JSON file for every model, ``SPEC=JSON`` (or
    ``SPEC=FILE``) for the ensemble member ``SPEC``."""
    options: dict[str, dict[str, Any]] = {}
    for value in values or []:
        spec, separator, text = value.partition("=")
        if separator and spec.strip() and not (value.lstrip().startswith("{")
                                               or Path(value).is_file()):
            options[spec.strip()] = json_argument(text)
        else:  # json_argument says what is wrong with anything else
            options["*"] = json_argument(value)
    return options


def to_json(value: Any) -> Any:
    """Dataclasses, dicts, sequences and paths (local or remote) as plain JSON values."""
    from ..discover import is_remote

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: to_json(item) for key, item in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, Path) or is_remote(value):
        return str(value)
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_json(value), indent=2) + "\n")


def find_collection(db: Path | None, *hints: Path | None) -> Path:
    """The collection directory: ``--db``, else the first ``.lookalike`` found in a hint's
    folder or above it, else in the current directory or above it."""
    from ..collection import DEFAULT_DIRNAME, locate
    from ..store import Store, StoreError

    if db is not None:
        return locate(db)
    for hint in [*hints, Path.cwd()]:
        if hint is None:
            continue
        start = Path(hint).expanduser().absolute()
        for folder in [start, *start.parents]:
            if (folder / DEFAULT_DIRNAME / Store.CATALOGUE).is_file():
                return folder / DEFAULT_DIRNAME
    raise StoreError("no collection found here: pass --db DIR, or run lookalike index FOLDER")


def print_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """An analysis result's ``rows()`` as CSV on stdout, header first."""
    writer = csv.DictWriter(sys.stdout, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
