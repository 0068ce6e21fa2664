"""Sort files into folders without ever losing one: plan first, then act under a journal.

Planning (``plan_sort``, ``describe_plan``) only reads the disk. Acting (``execute_plan``)
appends to a JSON-lines journal, fsynced, *before* each step and after it, so that after an
error, a full disk or a ``kill -9`` at any instant ``undo`` (or ``recover``) can put things
back:

* copy: the bytes go to a temporary file in the destination folder, are fsynced, read back
  and compared (size + blake2b) with what was read from the source, and only then get the
  final name, by a rename that never replaces an existing file;
* move: an atomic no-replace rename where the file system allows it (the file has exactly
  one name at every instant), else a hard link then unlinking the source (two names for one
  file for a moment), else - across file systems - the verified copy above, after which the
  source is unlinked;
* symlink: a link at the destination pointing at the source.

``undo`` decides what to do for each operation from what is on disk, guided by the journal,
so it is idempotent: an interrupted undo is simply run again.

Cost: two journal fsyncs per file (three for a copy, plus its data). Folders are fsynced only
where a new name must be durable before something is deleted (the copy of a cross-device
move, before its source goes): a rename that a power cut forgets is harmless, since undo
goes by what it finds on disk.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..discover import is_remote

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no journal locking
    fcntl = None  # type: ignore[assignment]

MODES = ("copy", "move", "symlink")
JOURNAL_VERSION = 1
TEMP_PREFIX = ".lookalike-tmp-"
CHUNK = 1 << 20
NAME_BYTES = 255  # longest file name most file systems accept
FOLDER_BYTES = 200  # leaves room for " (12)" and friends

Progress = Callable[[int, int], None]  # (operations done, operations to do)


class SortError(Exception):
    """Bad input to the sorter: unknown mode, unusable destination, unreadable journal."""


class JournalError(SortError):
    """A journal lookalike cannot act on. ``empty``: it holds no record at all, so its run
    stopped before its first step (or it is not a journal): nothing of it to undo."""

    def __init__(self, message: str, empty: bool = False) -> None:
        super().__init__(message)
        self.empty = empty


class _Failed(Exception):
    """One operation could not be done; ``clean`` says whether everything was put back."""

    def __init__(self, reason: str, clean: bool = True) -> None:
        super().__init__(reason)
        self.clean = clean


@dataclass(frozen=True)
class Move:
    source: Path  # absolute
    destination: Path  # absolute


@dataclass
class SortPlan:
    moves: list[Move]
    mode: str  # "copy" | "move" | "symlink"
    destination: Path | None = None
    in_place: list[Path] = field(default_factory=list)  # already in their folder: left alone


@dataclass
class SortResult:
    journal: Path
    mode: str
    done: list[Move] = field(default_factory=list)
    failed: list[tuple[Move, str]] = field(default_factory=list)  # and why; source intact
    disk_full: bool = False  # some failed because the disk (or a quota) was full

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class UndoResult:
    journal: Path
    undone: list[Move] = field(default_factory=list)  # reversed, or found already reversed
    kept: list[tuple[Path, str]] = field(default_factory=list)  # left in place on purpose
    failed: list[tuple[Move, str]] = field(default_factory=list)  # could not be reversed
    skipped: int = 0  # needed nothing: undone earlier, rolled back when they failed, or
    # (for recover) completed
    unrecorded: int = 0  # files the run planned that its journal has no record of, when the
    # journal ends before the run's end (interrupted, or the journal was cut short)
    destination: Path | None = None  # where the run sorted into

    @property
    def ok(self) -> bool:
        return not self.kept and not self.failed


# -- planning ---------------------------------------------------------------------------------

_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{port}{n}" for port in ("COM", "LPT")
                                            for n in range(1, 10)}


def safe_folder_name(name: str) -> str:
    """A folder name that is valid on Linux, macOS and Windows and cannot escape its parent."""
    text = str(name)
    try:
        os.fsencode(text)
    except UnicodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    text = _UNSAFE.sub("_", text).strip().strip(". ")
    if not text:
        return "unnamed"
    if text.split(".")[0].upper() in _RESERVED:
        text = "_" + text
    return _trim(text, FOLDER_BYTES)


def plan_sort(
    assignments: Mapping[Path, str], destination: str | os.PathLike[str], mode: str = "copy"
) -> SortPlan:
    """Where each file goes: ``destination/<safe folder>/<name>``; touches nothing.

    A name already used in the plan or present on disk (a file, a link, anything) gets
    " (1)", " (2)"... before its extension, so no existing file is ever a target. A file
    that already sits in its folder (a second run) stays as it is.
    """
    root = _checked_destination(assignments, destination, mode)
    folders = _folder_names(assignments.values(), root)
    sources = {Path(source).expanduser().absolute(): folder
               for source, folder in assignments.items()}
    plan = SortPlan([], mode, root)
    taken: set[str] = set()
    for source, label in sorted(sources.items(), key=lambda item: (folders[item[1]],
                                                                    str(item[0]))):
        folder = root / folders[label]
        if source.parent == folder:
            plan.in_place.append(source)
        else:
            plan.moves.append(Move(source, _free_name(folder, source.name, taken)))
    return plan


def plan_paths(targets: Mapping[Path, Path], destination: str | os.PathLike[str],
               mode: str = "move") -> SortPlan:
    """Each file to the path ``targets`` gives it, relative to ``destination`` (sub-folders
    kept, as they are: no folder is renamed); a name already planned or on disk gets
    " (1)", " (2)"... as in :func:`plan_sort`. Touches nothing."""
    root = _checked_destination(targets, destination, mode)
    plan = SortPlan([], mode, root)
    taken: set[str] = set()
    for source, target in sorted(targets.items(), key=lambda item: str(item[1])):
        target = root / target
        plan.moves.append(Move(Path(source).expanduser().absolute(),
                               _free_name(target.parent, target.name, taken)))
    return plan


def _checked_destination(sources: Iterable[Path], destination: str | os.PathLike[str],
                         mode: str) -> Path:
    """``destination`` made absolute, once the mode, the sources (local files only) and
    the destination (a folder, or nothing yet) are fine; else :class:`SortError`."""
    if mode not in MODES:
        raise SortError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    remote = next((source for source in sources if is_remote(source)), None)
    if remote is not None:
        raise SortError(f"sorting moves local files only; {remote} is on object storage: "
                        "copy the images to a local folder first and index that")
    root = Path(destination).expanduser().absolute()
    if os.path.lexists(root) and not root.is_dir():
        raise SortError(f"{root} exists and is not a folder")
    return root


def duplicate_assignments(groups: Iterable[tuple[str, Iterable[Path]]]) -> dict[Path, str]:
    """File -> folder for ``sort --by duplicates``: the copies of each group go to its folder,
    the kept file stays.

    ``groups``: (folder name, members with the suggested keeper first). Names are compared
    as *files*: a symbolic link and its target, and hard links, are one file under several
    names, never a pair of copies, so

    * the keeper's file stays under all its names (a link suggested as keeper keeps its
      target where it is);
    * a file that a link in the group points to stays, with the link, wherever it is in
      the group: moving it would leave the link dangling;
    * a link is never moved; nor is a name that no longer resolves (vanished, dangling);
    * when every file that stays is reached only through links (their targets lie outside
      the group), the first real file stays too, so a real copy is always left in place;
    * the other files move, each with all its names (hard links move together).

    A file kept in one group is never moved by another.
    """
    files: list[tuple[str, dict[tuple[int, int], list[tuple[Path, bool]]]]] = []
    kept: set[tuple[int, int]] = set()
    for label, members in groups:
        names: dict[tuple[int, int], list[tuple[Path, bool]]] = {}  # file -> (name, is link)
        for member in members:
            path = Path(member).expanduser().absolute()
            try:
                is_link = stat.S_ISLNK(os.lstat(path).st_mode)
                info = os.stat(path)
            except OSError:
                continue
            names.setdefault((info.st_dev, info.st_ino), []).append((path, is_link))
        order = list(names)  # the keeper's file first
        staying = set(order[:1]) | {key for key, named in names.items()
                                    if any(link for _, link in named)}
        if not any(not link for key in staying for _, link in names[key]):
            staying |= set([key for key in order if key not in staying][:1])
        kept |= staying
        files.append((label, names))
    assignments: dict[Path, str] = {}
    for label, names in files:
        for key, named in names.items():
            if key not in kept:
                assignments.update((path, label) for path, _ in named)
    return assignments


def describe_plan(plan: SortPlan, notes: Mapping[Path, str] | None = None) -> list[str]:
    """Human-readable lines for ``--dry-run``: a summary, then one line per file, with its
    note from ``notes`` (by source path) if any."""
    in_place = f" ({len(plan.in_place)} already in place)" if plan.in_place else ""
    if not plan.moves:
        return [f"nothing to sort{in_place}"]
    verb = {"copy": "copy", "move": "move", "symlink": "link"}[plan.mode]
    folders = {move.destination.parent for move in plan.moves}
    renamed = sum(move.destination.name != move.source.name for move in plan.moves)
    where = f" in {plan.destination}" if plan.destination else ""
    head = (f"would {verb} {len(plan.moves)} file(s) into {len(folders)} folder(s){where}"
            f"{in_place}")
    if renamed:
        head += f"; {renamed} renamed because the name was taken (nothing is overwritten)"
    lines = [head]
    for move in plan.moves:
        shown = move.destination
        if plan.destination and move.destination.is_relative_to(plan.destination):
            shown = move.destination.relative_to(plan.destination)
        note = "  (renamed: name taken)" if move.destination.name != move.source.name else ""
        lines.append(f"{verb} {move.source} -> {shown}{note}{(notes or {}).get(move.source, '')}")
    return lines


def _folder_names(labels: Iterable[str], root: Path) -> dict[str, str]:
    """Safe, distinct folder names; a label that is already safe keeps its name first."""
    result: dict[str, str] = {}
    used: set[str] = set()
    for label in sorted(set(labels), key=lambda raw: (safe_folder_name(raw) != raw, str(raw))):
        base = safe_folder_name(label)
        name, counter = base, 0
        while name.casefold() in used or (os.path.lexists(root / name)
                                           and not (root / name).is_dir()):
            counter += 1
            name = f"{base} ({counter})"
        used.add(name.casefold())
        result[label] = name
    return result


def _free_name(folder: Path, name: str, taken: set[str]) -> Path:
    """The first of name, "stem (1).ext", ... that is neither planned nor on disk.

    Compared case-insensitively, so the plan also holds on macOS and Windows disks.
    """
    stem, suffix = _split_name(name)
    counter = 0
    while True:
        candidate = name if counter == 0 else _with_counter(stem, suffix, counter)
        path = folder / candidate
        key = str(path).casefold()
        if key not in taken and not os.path.lexists(path):
            taken.add(key)
            return path
        counter += 1


def _split_name(name: str) -> tuple[str, str]:
    dot = name.rfind(".")
    if dot <= 0 or len(name) - dot > 16:  # ".hidden", no extension, or not an extension
        return name, ""
    return name[:dot], name[dot:]


def _with_counter(stem: str, suffix: str, counter: int) -> str:
    label = f" ({counter})"
    return _trim(stem, NAME_BYTES - _byte_length(label + suffix)) + label + suffix


def _trim(text: str, limit: int) -> str:
    while text and _byte_length(text) > limit:
        text = text[:-1]
    return text


def _byte_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


# -- the journal ------------------------------------------------------------------------------


class _Journal:
    """Append-only JSON lines; every record is on disk before the step it announces starts.

    An exclusive lock keeps a second process (an ``undo`` while the sort still runs) out.
    Paths are written with ``ensure_ascii`` so names that are not UTF-8 survive the round
    trip as surrogate escapes.
    """

    def __init__(self, path: Path, create: bool) -> None:
        flags = os.O_APPEND | (os.O_WRONLY | os.O_CREAT | os.O_EXCL if create else os.O_RDWR)
        self.path = path
        self.fd = os.open(path, flags, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(self.fd)
                raise SortError(f"{path} is in use by another lookalike process: wait for "
                                "it to finish, then run lookalike undo again") from error
        if not create:  # a crash (or a full disk) may have cut the last line short:
            size = os.fstat(self.fd).st_size  # new records start on a line of their own
            if size and os.pread(self.fd, 1, size - 1) != b"\n":
                os.write(self.fd, b"\n")

    @classmethod
    def create(cls, directory: Path) -> _Journal:
        directory.mkdir(parents=True, exist_ok=True)
        micros = time.time_ns() // 1000
        while True:
            stamp = datetime.fromtimestamp(micros / 1e6, timezone.utc)
            path = directory / f"sort-{stamp:%Y%m%dT%H%M%S.%f}Z.jsonl"
            try:
                journal = cls(path, create=True)
            except FileExistsError:
                micros += 1
                continue
            _fsync_directory(directory)
            return journal

    def write(self, **record: Any) -> None:
        data = (json.dumps(record) + "\n").encode("ascii")
        while data:
            data = data[os.write(self.fd, data):]
        _fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> _Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Op:
    """Everything the journal says about one operation."""

    index: int
    move: Move
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def temps(self) -> list[Path]:
        return [Path(event["temp"]) for event in self.events if event.get("temp")]

    @property
    def copied(self) -> tuple[int, str] | None:
        """Size and hash of the copy this run made, once it was verified."""
        for event in self.events:
            if event["event"] == "verified":
                return event["size"], event["hash"]
        return None

    @property
    def undone(self) -> bool:
        return any(event["event"] == "undone" for event in self.events)

    @property
    def finished(self) -> bool:
        return self.events[-1]["event"] in ("done", "failed", "undone", "undo-kept",
                                            "undo-failed")

    @property
    def rolled_back(self) -> bool:
        """It failed and everything was put back at the time: nothing to undo."""
        outcomes = [event for event in self.events if event["event"] in ("done", "failed")]
        return bool(outcomes) and outcomes[-1]["event"] == "failed" and outcomes[-1]["clean"]


@dataclass
class _Log:
    mode: str
    ops: list[_Op]
    folders: list[Path]  # created by the run, in creation order
    start: dict[str, Any] = field(default_factory=dict)  # the run's first record
    finished: bool = False  # the run wrote its "finish" record


# What each kind of record must hold for undo to act on it (others need only "event").
_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "start": {"mode": str},
    "mkdir": {"path": str},
    "intent": {"op": int, "source": str, "destination": str},
    "reserve": {"op": int, "path": str, "inode": list},
    "verified": {"op": int, "size": int, "hash": str},
    "undo-verified": {"op": int, "size": int, "hash": str},
    "failed": {"op": int, "clean": bool},
    **{event: {"op": int} for event in ("done", "undo-intent", "undone", "undo-kept",
                                          "undo-failed")},
}


def _problem(record: Any) -> str | None:
    """Why ``record`` is not a journal record undo can act on, or None."""
    if not isinstance(record, dict) or not isinstance(record.get("event"), str):
        return "not a journal record"
    for name, kind in _FIELDS.get(record["event"], {}).items():
        value = record.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"{record['event']!r} record without a valid {name!r}"
    if record.get("temp") is not None and not isinstance(record["temp"], str):
        return f"{record['event']!r} record without a valid 'temp'"
    inode = record.get("inode")
    if inode is not None and not (isinstance(inode, list) and len(inode) == 2
                                  and all(type(n) is int for n in inode)):
        return "'reserve' record without a valid 'inode'"
    return None


def _damaged(path: Path, number: int, problem: str) -> JournalError:
    return JournalError(
        f"{path} is damaged at line {number} ({problem}), so lookalike cannot tell what "
        "that run did; nothing was changed. Undo another run with: lookalike undo JOURNAL; "
        "or put this run's files back by hand: each \"intent\" line of the journal names a "
        "file's source and its destination")


def _read_journal(path: Path) -> _Log:
    records: list[tuple[int, dict[str, Any]]] = []
    garbage = 0
    with open(path, encoding="ascii", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                if line.lstrip().startswith("{"):  # a record cut short by a crash (or a
                    continue  # full disk): its step never started
                garbage = garbage or number
                continue
            problem = _problem(record)
            if problem:
                raise _damaged(path, number, problem)
            records.append((number, record))
    if garbage:
        raise _damaged(path, garbage, "not a journal record")
    if not records:
        raise JournalError(
            f"{path} holds no complete record: its run stopped before its first step, so "
            "nothing was changed by it (or it is not a lookalike sort journal). Undo another "
            "run with: lookalike undo JOURNAL", empty=True)
    number, start = records[0]
    if start["event"] != "start":
        raise _damaged(path, number, "it does not begin with the run's start record")
    if start.get("version") != JOURNAL_VERSION:
        raise JournalError(
            f"{path} is journal version {start.get('version')}; this lookalike reads version "
            f"{JOURNAL_VERSION}: nothing was changed. Undo it with the lookalike that wrote it")
    if start["mode"] not in MODES:
        raise _damaged(path, number, f"unknown mode {start['mode']!r}")
    ops: dict[int, _Op] = {}
    folders: list[Path] = []
    finished = False
    for _, record in records[1:]:
        finished = finished or record["event"] == "finish"
        if record["event"] == "mkdir":
            folders.append(Path(record["path"]))
        elif record["event"] == "intent":
            move = Move(Path(record["source"]), Path(record["destination"]))
            ops[record["op"]] = _Op(record["op"], move, [record])
        elif record.get("op") in ops:
            ops[record["op"]].events.append(record)
    return _Log(start["mode"], [ops[index] for index in sorted(ops)], folders, start, finished)


def list_journals(journal_dir: str | os.PathLike[str]) -> list[Path]:
    """The sort journals in a folder, oldest first (newest last)."""
    directory = Path(journal_dir).expanduser()
    return sorted(directory.glob("sort-*.jsonl")) if directory.is_dir() else []


@dataclass(frozen=True)
class JournalSummary:
    path: Path
    mode: str
    started: str  # when the run began (ISO 8601), or "" if not recorded
    changed: int  # operations that changed something (all but those rolled back at once)
    pending: int  # of those, the ones not undone yet


def summarise_journal(path: str | os.PathLike[str]) -> JournalSummary:
    """What a run did, from its journal (read only). Raises :class:`JournalError`."""
    path = Path(path)
    log = _read_journal(path)
    changed = [op for op in log.ops if not op.rolled_back]
    return JournalSummary(path, log.mode, str(log.start.get("created") or ""), len(changed),
                          sum(not op.undone for op in changed))


def choose_journal(journal_dir: str | os.PathLike[str]) -> tuple[Path | None, list[str]]:
    """The run a plain ``undo`` undoes: the newest that changed something. Runs that
    changed nothing (every file failed and was rolled back, nothing to sort, stopped before
    the first step) are passed over; a damaged journal stops the search, since what its run
    did is unknown. Returns the journal (None: nothing to undo) and lines saying what was
    chosen and how to choose another."""
    directory = Path(journal_dir).expanduser()
    journals = list_journals(directory)
    if not journals:
        raise SortError(f"no sort runs to undo: no journals in {directory}")
    passed = 0
    for position in range(len(journals) - 1, -1, -1):
        path = journals[position]
        earlier = journals[position - 1] if position else None
        try:
            summary = summarise_journal(path)
        except JournalError as error:
            if error.empty:
                passed += 1
                continue
            if earlier is None:
                raise
            raise JournalError(f"{error}; the run before it: lookalike undo {earlier}"
                               ) from None
        if not summary.changed:
            passed += 1
            continue
        notes = [f"passed over {passed} later run(s) that changed nothing"] if passed else []
        if summary.pending:
            notes.append(f"undoing the last sort that changed files: {summary.mode} of "
                         f"{summary.changed} file(s), started {summary.started or '?'} "
                         f"({path})")
        else:
            notes.append(f"the last sort that changed files ({path}, started "
                         f"{summary.started or '?'}) was already undone")
        notes.append(f"to undo an earlier run: lookalike undo {earlier}" if earlier else
                     f"to undo another run: lookalike undo JOURNAL (journals in {directory})")
        return path, notes
    return None, [f"nothing to undo: none of the {len(journals)} sort run(s) in {directory} "
                  "changed anything"]


# -- acting -----------------------------------------------------------------------------------


def execute_plan(
    plan: SortPlan, journal_dir: str | os.PathLike[str], progress: Progress | None = None
) -> SortResult:
    """Carry a plan out under a new journal ``<journal_dir>/sort-<timestamp>.jsonl``.

    A failing file is rolled back (temporary copy removed, source untouched), recorded with
    its reason, and the run goes on with the next one. When the journal itself cannot be
    written (a full disk) the run stops at once with a :class:`SortError` saying how to
    put back what it did.
    """
    if plan.mode not in MODES:
        raise SortError(f"mode must be one of {', '.join(MODES)}, not {plan.mode!r}")
    total = len(plan.moves)
    with _Journal.create(Path(journal_dir).expanduser().absolute()) as journal:
        result = SortResult(journal.path, plan.mode)
        try:
            journal.write(event="start", version=JOURNAL_VERSION, mode=plan.mode, total=total,
                          destination=str(plan.destination) if plan.destination else None,
                          created=datetime.now(timezone.utc).isoformat(), pid=os.getpid())
            if progress:
                progress(0, total)
            for index, move in enumerate(plan.moves):
                reason, full = _run_one(index, move, plan.mode, journal)
                result.disk_full |= full
                if reason is None:
                    result.done.append(move)
                else:
                    result.failed.append((move, reason))
                if progress:
                    progress(index + 1, total)
            journal.write(event="finish", done=len(result.done), failed=len(result.failed))
        except OSError as error:  # the journal could not be written: stop here
            problem = "the disk is full" if _is_full(error) else _reason(error)
            raise SortError(
                f"the sort stopped after {len(result.done)} of {total} file(s): {problem} "
                f"(writing its journal {journal.path}). Nothing is lost: run lookalike undo to "
                "put back what it did, or free some space and run the same sort again"
            ) from error
    return result


def _is_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC,
                                                          getattr(errno, "EDQUOT", -1))


def _run_one(index: int, move: Move, mode: str, journal: _Journal) -> tuple[str | None, bool]:
    """Do one operation; the reason it failed (everything put back), or None, and whether
    it failed because the disk was full."""
    temp = move.destination.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    journal.write(event="intent", op=index, source=str(move.source),
                  destination=str(move.destination), temp=None if mode == "symlink" else str(temp))
    try:
        try:
            _make_folders(move.destination.parent, journal)
            method = _perform(index, move, mode, temp, journal)
        finally:
            temp_gone = _discard(temp)
    except (OSError, _Failed) as error:
        reason = _reason(error)
        clean = temp_gone and (error.clean if isinstance(error, _Failed) else True)
        journal.write(event="failed", op=index, reason=reason, clean=clean)
        return reason, _is_full(error)
    journal.write(event="done", op=index, method=method)
    return None, False


def _perform(index: int, move: Move, mode: str, temp: Path, journal: _Journal) -> str:
    source, destination = move.source, move.destination
    try:
        info = os.lstat(source) if mode == "move" else os.stat(source)
    except FileNotFoundError:
        raise _Failed("the source has vanished") from None
    if not (stat.S_ISREG(info.st_mode) or (mode == "move" and stat.S_ISLNK(info.st_mode))):
        raise _Failed("the source is not a regular file")
    if os.path.lexists(destination):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(destination))
    if mode == "symlink":
        os.symlink(source, destination)  # fails if the name exists
        return "symlink"
    if mode == "move":
        try:
            method = _place(source, destination, index, journal)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
        else:
            return method
        if stat.S_ISLNK(info.st_mode):
            raise _Failed("cannot move a symbolic link to another file system")
    size, digest, copied = _copy_verified(source, temp)
    journal.write(event="verified", op=index, size=size, hash=digest)
    _place(temp, destination, index, journal)
    if mode == "copy":
        return "copy"
    _unlink_original(source, copied, destination)
    return "copy+unlink"


def _unlink_original(source: Path, copied: os.stat_result, copy: Path) -> None:
    """Remove the source of a verified cross-device copy, or take the copy back.

    The copy's name is made durable first, so not even a power cut can lose both.
    """
    try:
        _fsync_directory(copy.parent)
        now = os.lstat(source)
        if _signature(now) != _signature(copied):
            raise _Failed("the source changed while it was being moved; it was left as it is")
        os.unlink(source)
    except (OSError, _Failed) as error:
        try:
            os.unlink(copy)
        except OSError:
            raise _Failed(f"{_reason(error)}; the verified copy stays at {copy}",
                          clean=False) from error
        raise
    _fsync_directory(source.parent)


def _make_folders(folder: Path, journal: _Journal) -> None:
    """Create missing folders one level at a time, each announced so undo can remove it."""
    missing: list[Path] = []
    while not folder.is_dir() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        journal.write(event="mkdir", path=str(path))
        try:
            os.mkdir(path)
        except FileExistsError:
            if not path.is_dir():
                raise


# -- safe primitives --------------------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _load_renameat2() -> Any:
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):  # not glibc/musl on Linux
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _load_renameat2()


def _rename_noreplace(source: Path, target: Path) -> bool:
    """Atomic rename that fails with FileExistsError rather than replace ``target``.

    False where the kernel or file system does not offer it (the caller falls back).
    """
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target),
                  _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(source), None, str(target))


def _place(source: Path, target: Path, index: int, journal: _Journal) -> str:
    """Give ``source`` the name ``target`` without ever replacing an existing file.

    Raises FileExistsError when the name is taken and OSError(EXDEV) across file systems.
    """
    if _rename_noreplace(source, target):
        return "rename"
    try:
        os.link(source, target, follow_symlinks=False)  # fails if the name exists
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
    else:  # one file, two names, until the old name goes
        try:
            os.unlink(source)
        except OSError as error:
            try:
                os.unlink(target)
            except OSError:
                raise _Failed(f"{_reason(error)}; {source} is also linked as {target}",
                              clean=False) from error
            raise
        return "link"
    # No no-replace rename and no hard links (exFAT, some FUSE): claim the name with O_EXCL,
    # then replace our own empty placeholder. The journal names the inode being placed, so
    # after a crash the placeholder (any other inode, empty) can be told from the file.
    info = os.lstat(source)
    journal.write(event="reserve", op=index, path=str(target), inode=[info.st_dev, info.st_ino])
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        os.replace(source, target)
    except BaseException:
        os.unlink(target)
        raise
    return "reserve+replace"


def _copy_verified(source: Path, temp: Path) -> tuple[int, str, os.stat_result]:
    """Copy ``source`` into the new file ``temp``, fsync it, read it back and compare.

    Returns the size, the blake2b hex digest, and the source's stat as it was copied.
    """
    digest = hashlib.blake2b()
    size = 0
    reader = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO can't hang us
    try:
        before = os.fstat(reader)
        if not stat.S_ISREG(before.st_mode):
            raise _Failed("the source is not a regular file")
        writer = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o600)
        try:
            while chunk := os.read(reader, CHUNK):
                _write_chunk(writer, chunk)
                digest.update(chunk)
                size += len(chunk)
            try:
                shutil.copystat(source, temp)  # dates and permissions of the original
            except OSError:
                pass  # metadata only; the bytes are what must not be lost
            _fsync(writer)
        finally:
            os.close(writer)
        after = os.fstat(reader)
    finally:
        os.close(reader)
    if _signature(after) != _signature(before) or size != after.st_size:
        raise _Failed("the source changed while it was being copied; it was left as it is")
    if _hash_file(temp) != (size, digest.hexdigest()):
        raise _Failed("the copy read back differs from the source; it was discarded")
    return size, digest.hexdigest(), before


def _write_chunk(fd: int, data: bytes) -> None:
    """Write all of ``data`` (the one place bytes are written: tests inject ENOSPC here)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.blake2b()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _signature(info: os.stat_result) -> tuple[int, int, int, int]:
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def _fsync(fd: int) -> None:
    os.fsync(fd)


def _fsync_directory(path: Path) -> None:
    """Make a new or removed name durable; best effort where directories can't be fsynced."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        _fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _discard(path: Path) -> bool:
    """Remove one of our temporary files if it is there; True when it is gone."""
    try:
        if os.path.lexists(path):
            os.unlink(path)
        return True
    except OSError:
        return False


def _reason(error: BaseException) -> str:
    if isinstance(error, _Failed):
        return str(error)
    if isinstance(error, OSError):
        name = error.filename2 or error.filename
        if isinstance(error, FileExistsError):
            return f"{name} already exists; nothing was overwritten"
        text = error.strerror or str(error)
        return f"{text}: {name}" if name else text
    return str(error)


# -- undo and recovery ------------------------------------------------------------------------


def undo(journal_path: str | os.PathLike[str], progress: Progress | None = None) -> UndoResult:
    """Bring back the state before the run: every operation reversed, newest first, then
    the folders the run created removed if empty. Safe to run again after an interruption."""
    return _reverse_all(Path(journal_path), progress, everything=True)


def recover(journal_path: str | os.PathLike[str], progress: Progress | None = None) -> UndoResult:
    """After a crash, settle only the operations caught in the middle (rolled back, or for an
    interrupted undo, finished); completed ones stay as they are."""
    return _reverse_all(Path(journal_path), progress, everything=False)


def _reverse_all(path: Path, progress: Progress | None, everything: bool) -> UndoResult:
    path = path.expanduser().absolute()
    result = UndoResult(path)
    if not path.is_file():
        raise SortError(f"no journal at {path}")
    log = _read_journal(path)  # a damaged journal is refused before anything is touched
    with _Journal(path, create=False) as journal:
        log = _read_journal(path)  # again, under the lock: a running sort may have added
        pending = [op for op in reversed(log.ops) if not op.undone and not op.rolled_back
                   and (everything or not op.finished)]
        result.skipped = len(log.ops) - len(pending)
        total = log.start.get("total")
        if not log.finished and type(total) is int:
            result.unrecorded = max(0, total - len(log.ops))
        if isinstance(log.start.get("destination"), str):
            result.destination = Path(log.start["destination"])
        if progress:
            progress(0, len(pending))
        try:
            for done, op in enumerate(pending, 1):
                _reverse_one(op, log.mode, journal, result)
                if progress:
                    progress(done, len(pending))
            if everything:
                for folder in reversed(log.folders):
                    try:
                        os.rmdir(folder)  # only if empty: anything left in it stays
                    except OSError:
                        continue
            journal.write(event="undo-finish" if everything else "recover-finish",
                          undone=len(result.undone), kept=len(result.kept),
                          failed=len(result.failed))
        except OSError as error:  # the journal could not be written
            full = "the disk is full" if _is_full(error) else _reason(error)
            raise SortError(
                f"undo stopped after {len(result.undone)} file(s): {full} (writing the journal "
                f"{path}). Free some space and run lookalike undo {path} again: it carries on "
                "where it stopped") from error
    return result


def _reverse_one(op: _Op, mode: str, journal: _Journal, result: UndoResult) -> None:
    temp = op.move.source.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    journal.write(event="undo-intent", op=op.index, temp=str(temp))
    try:
        try:
            outcome, detail = _reverse(op, mode, temp, journal)
        finally:
            _discard(temp)
    except (OSError, _Failed) as error:
        outcome, detail = "failed", _reason(error)
    journal.write(event="undone" if outcome == "undone" else f"undo-{outcome}", op=op.index,
                  detail=detail)
    if outcome == "undone":
        result.undone.append(op.move)
    elif outcome == "kept":
        result.kept.append((op.move.destination, detail))
    else:
        result.failed.append((op.move, detail))


def _reverse(op: _Op, mode: str, temp: Path, journal: _Journal) -> tuple[str, str]:
    """Undo one operation from what is on disk: ('undone' | 'kept' | 'failed', detail)."""
    last = op.events[-1]
    if last["event"] == "reserve":  # killed between claiming a name and filling it
        _clear_placeholder(Path(last["path"]), tuple(last["inode"]))
    for leftover in op.temps:  # ours by construction: random names created with O_EXCL
        if os.path.lexists(leftover):
            os.unlink(leftover)
    if mode == "symlink":
        return _reverse_symlink(op.move)
    if mode == "copy":
        return _reverse_copy(op, temp, journal)
    return _reverse_move(op, temp, journal)


def _clear_placeholder(path: Path, placed: tuple[int, ...]) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(info.st_mode) and info.st_size == 0 and (info.st_dev, info.st_ino) != placed:
        os.unlink(path)


def _reverse_symlink(move: Move) -> tuple[str, str]:
    link = move.destination
    if not os.path.lexists(link):
        return "undone", "no link there"
    if link.is_symlink() and os.readlink(link) == str(move.source):
        os.unlink(link)
        return "undone", "link removed"
    return "kept", "no longer the link lookalike made; left as it is"


def _reverse_copy(op: _Op, temp: Path, journal: _Journal) -> tuple[str, str]:
    source, copy = op.move.source, op.move.destination
    copied = op.copied
    if not os.path.lexists(copy) or copied is None:  # gone, or the copy never got the name
        return "undone", "no copy there"
    if not stat.S_ISREG(os.lstat(copy).st_mode) or _hash_file(copy) != tuple(copied):
        return "kept", "changed since lookalike copied it; kept"
    if source.is_file():
        os.unlink(copy)
        return "undone", "copy deleted"
    if os.path.lexists(source):
        return "kept", f"the original is gone and {source} holds something else; copy kept"
    # The original was deleted since: this copy is now the only one, so it goes back.
    _relocate(copy, source, op.index, temp, journal)
    return "undone", "the original was missing: the copy was moved back in its place"


def _reverse_move(op: _Op, temp: Path, journal: _Journal) -> tuple[str, str]:
    source, moved = op.move.source, op.move.destination
    at_source, at_destination = os.path.lexists(source), os.path.lexists(moved)
    if at_source and at_destination:
        old, new = os.lstat(source), os.lstat(moved)
        if (old.st_dev, old.st_ino) == (new.st_dev, new.st_ino):  # killed between link and unlink
            os.unlink(moved)
            return "undone", "second name removed"
        if (_was_copied(op) and stat.S_ISREG(old.st_mode) and stat.S_ISREG(new.st_mode)
                and _hash_file(source) == _hash_file(moved)):  # killed before unlinking
            os.unlink(moved)
            return "undone", "duplicate of the original removed"
        return "kept", f"{source} now holds another file; the moved file stays here"
    if not at_destination:
        if at_source:
            return "undone", "already in place"
        return "failed", "the file is at neither its old nor its new path (changed elsewhere)"
    _relocate(moved, source, op.index, temp, journal)
    return "undone", "moved back"


def _was_copied(op: _Op) -> bool:
    return any(event["event"] in ("verified", "undo-verified") for event in op.events)


def _relocate(current: Path, target: Path, index: int, temp: Path, journal: _Journal) -> None:
    """Move a file back to ``target`` (never replacing anything), verified across devices."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        _place(current, target, index, journal)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    else:
        return
    size, digest, copied = _copy_verified(current, temp)
    journal.write(event="undo-verified", op=index, size=size, hash=digest)
    _place(temp, target, index, journal)
    _unlink_original(current, copied, target)
