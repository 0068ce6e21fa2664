"""Duplicates against fastdup: both tools on the same images in one run, timed and scored.

    nice .venv/bin/python benchmarks/bench_fastdup.py                  # everything
    nice .venv/bin/python benchmarks/bench_fastdup.py --sets neardup --skip-growth
    nice .venv/bin/python benchmarks/bench_fastdup.py --skip-fastdup   # fastdup from last run
    nice .venv/bin/python benchmarks/bench_fastdup.py --at HEAD        # committed code only
    nice .venv/bin/python benchmarks/bench_fastdup.py --sets copyset --size 1000  # a subset

Sets, built under --work (default /tmp/lookalike-bench; never inside the repository):

* ``neardup``: ../shared/data/neardup_flowers as is (1,100 images, ``groups.csv``, audited:
  flowers17's own 20 duplicate pairs are already joined into their groups);
* ``copyset``: all of scene15 + flowers17 + dogs_vs_cats_2k and 2,000 edited copies of
  1,000 of their files (``copyset.py``), 9,845 images.

fastdup runs in its own throw-away virtualenv (``--work``/fastdup-venv, ``pip install
fastdup`` on first use; never a lookalike dependency: its licence is non-commercial), as
``fastdup.create(work_dir, input_dir).run()`` in a subprocess (``fastdup_job.py``).
lookalike runs as its CLI in subprocesses, cold: ``lookalike index DIR --db NEW --model
mobilenetv2`` then ``lookalike duplicates --db NEW --json``; then ``duplicates`` again with
nothing changed (warm), and on the copyset ``index`` + ``duplicates`` after 100 edited
copies are added. Times are wall times of whole processes (start-up and imports
included, for both tools) and their CPU time (user + system, steadier on a shared
machine); the page cache is primed by reading every file first. Each cold ``duplicates
--json`` report is kept in WORK/results, next to a log of every command's stderr.

Scores are pairwise (every pair of files put in one group vs the true groups):

* **planted**: pairs that touch a file of a planted group (the labels as built);
* **unplanted pairs**: pairs a tool found between two files with no planted copy; the
  source sets hold duplicates of their own, so each such pair (and every wrong pair between
  two source files) is checked by pixels: mean absolute difference < 3 after resizing one
  onto the other;
* **audited**: all pairs, against the labels with the pixel-identical source pairs found
  by either tool joined.

lookalike's groups are its ``exact`` + ``near`` lists (copies); a ``similar`` list, where
the finder has one, is counted but not scored. fastdup is scored at its default (its own
connected components at 0.96) and at the best threshold of a sweep over its similarity
pairs (chosen with the labels: an upper bound).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.analyse.duplicates import PairScores, components, pair_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))
import copyset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NEARDUP = SHARED / "data" / "neardup_flowers"
LOOKALIKE = REPO / ".venv" / "bin" / "lookalike"
FASTDUP_JOB = Path(__file__).resolve().parent / "fastdup_job.py"
GROWTH_SIZES = (1000, 2000, 5000)
ADDED = 100
SWEEP = np.round(np.arange(0.90, 0.9951, 0.005), 3)
LARGEST_GROUP_CHECKED = 200  # pixel checks skip pairs inside bigger predicted groups


# -- labels and scores -----------------------------------------------------------------------


@dataclass
class Labels:
    """True groups of one image folder: ``truth[i]`` for ``files[i]`` (-1: no planted copy)."""

    files: list[str]
    truth: np.ndarray
    kinds: list[str]
    position: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.position = {name: p for p, name in enumerate(self.files)}

    @classmethod
    def read(cls, groups_csv: Path, files: Iterable[str] | None = None) -> Labels:
        rows = {row["file"]: row for row in csv.DictReader(open(groups_csv, newline=""))}
        names = sorted(rows) if files is None else sorted(files)
        return cls(names, np.array([int(rows[n]["group"]) for n in names]),
                   [rows[n]["kind"] for n in names])

    def with_added(self, added: Sequence[tuple[str, str, str]]) -> Labels:
        """These labels plus (copy, original, edit) rows: each copy joins its original."""
        truth = list(self.truth)
        next_group = int(self.truth.max()) + 1
        for _, original, _ in added:
            group = truth[self.position[original]]
            if group < 0:
                group, next_group = next_group, next_group + 1
                truth[self.position[original]] = group
            truth.append(group)
        return Labels(self.files + [copy for copy, _, _ in added], np.array(truth),
                      self.kinds + ["copy"] * len(added))

    def groups(self, named: Iterable[Iterable[str]]) -> list[list[int]]:
        return [[self.position[name] for name in group] for group in named]


def predicted_pairs(groups: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    return [pair for group in groups if len(group) <= LARGEST_GROUP_CHECKED
            for pair in itertools.combinations(sorted(group), 2)]


def same_pixels(first: Path, second: Path) -> bool:
    """Pixel-identical up to JPEG noise: mean |a - b| < 3 after resizing b onto a."""
    with Image.open(first) as a, Image.open(second) as b:
        x = np.asarray(a.convert("RGB"), dtype=np.float32)
        y = np.asarray(b.convert("RGB").resize(a.size), dtype=np.float32)
    return float(np.abs(x - y).mean()) < 3.0


class PixelAudit:
    """Pixel checks of pairs between two source (not planted-copy) files, cached."""

    def __init__(self, images: Path, labels: Labels) -> None:
        self.images, self.labels = images, labels
        self.checked: dict[tuple[int, int], bool] = {}

    def wrong_source_pairs(self, groups: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
        truth, kinds = self.labels.truth, self.labels.kinds
        return [(i, j) for i, j in predicted_pairs(groups)
                if kinds[i] != "copy" and kinds[j] != "copy"
                and (truth[i] < 0 or truth[i] != truth[j])]

    def check(self, groups: Sequence[Sequence[int]]) -> None:
        for i, j in self.wrong_source_pairs(groups):
            if (i, j) not in self.checked:
                self.checked[i, j] = same_pixels(self.images / self.labels.files[i],
                                                 self.images / self.labels.files[j])

    def audited_truth(self) -> np.ndarray:
        """The labels with every pixel-identical pair checked so far joined."""
        truth = self.labels.truth
        loose = np.flatnonzero(truth < 0)
        unique = truth.copy()
        unique[loose] = truth.max() + 1 + np.arange(len(loose))
        values, labels = np.unique(unique, return_inverse=True)
        same = [pair for pair, identical in self.checked.items() if identical]
        left = labels[[i for i, _ in same]] if same else np.zeros(0, dtype=np.int64)
        right = labels[[j for _, j in same]] if same else np.zeros(0, dtype=np.int64)
        joined = components(len(values), left, right)[labels]
        return np.where(np.bincount(joined)[joined] > 1, joined, -1)


@dataclass
class Score:
    planted: PairScores
    audited: PairScores
    unplanted_pairs: int
    unplanted_identical: int
    groups: int


def score(groups: list[list[int]], labels: Labels, audit: PixelAudit) -> Score:
    """Scores of ``groups``; ``audit`` must have checked every row's groups of this set."""
    truth = labels.truth
    unplanted = [(i, j) for i, j in predicted_pairs(groups) if truth[i] < 0 and truth[j] < 0]
    identical = sum(audit.checked.get(pair, False) for pair in unplanted)
    return Score(pair_scores(groups, truth, involving=truth >= 0),
                 pair_scores(groups, audit.audited_truth()), len(unplanted), identical,
                 len(groups))


# -- running the tools -----------------------------------------------------------------------


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def prime_page_cache(images: Path) -> None:
    for path in images.rglob("*"):
        if path.is_file():
            path.read_bytes()


@dataclass
class Timed:
    wall: float
    cpu: float  # user + system seconds of the process and the children it waited for
    stdout: str


def timed(command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Timed:
    """Run ``command`` from ``log``'s folder, outside the repository (so a PYTHONPATH export
    is what gets imported); its wall and CPU time and stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=log.parent,
                          env={**os.environ, **(env or {})})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "a") as handle:
        handle.write(f"$ {' '.join(map(str, command))}\n{done.stderr}\n")
    if done.returncode:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}), see {log}:\n"
                           f"{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(wall, cpu, done.stdout)


class Lookalike:
    """lookalike's CLI on one folder and one collection; ``source``: run the code exported
    there (``--at COMMIT``) instead of the working tree the venv is installed from."""

    def __init__(self, images: Path, db: Path, log: Path, source: Path | None) -> None:
        self.images, self.db, self.log = images, db, log
        self.command = [str(LOOKALIKE)]
        self.env = {"LOOKALIKE_NO_DOWNLOAD": "1"}
        if source is not None:
            self.command = [str(LOOKALIKE.parent / "python"), "-m", "lookalike.cli"]
            self.env["PYTHONPATH"] = str(source)

    def index(self) -> Timed:
        command = [*self.command, "index", str(self.images), "--db", str(self.db),
                   "--model", "mobilenetv2"]
        return timed(command, self.log, self.env)

    def duplicates(self) -> tuple[Timed, dict[str, Any]]:
        command = [*self.command, "duplicates", "--db", str(self.db), "--json"]
        run = timed(command, self.log, self.env)
        return run, json.loads(run.stdout)


def export(revision: str, work: Path) -> tuple[Path, str]:
    """``git archive`` of ``revision`` under ``work``: its folder and short hash."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", revision],
                         capture_output=True, text=True, check=True).stdout.strip()
    target = work / f"src-{sha}"
    if not (target / "lookalike").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", sha], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target, sha


def copy_groups(report: dict[str, Any]) -> list[list[str]]:
    """The exact + edited-copy groups of ``duplicates --json`` (not the "similar" tier)."""
    return [[member["path"] for member in group["members"]]
            for group in report.get("exact", []) + report.get("near", [])]


def ensure_fastdup(work: Path) -> tuple[Path | None, str]:
    """fastdup's virtualenv python (installed on first use), or None and why not."""
    venv = work / "fastdup-venv"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import fastdup; print(fastdup.__version__)"]
    if python.is_file() and subprocess.run(check, capture_output=True).returncode == 0:
        return python, ""
    work.mkdir(parents=True, exist_ok=True)
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
             [str(venv / "bin" / "pip"), "install", "--quiet", "fastdup"]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            return None, f"`{' '.join(step[-3:])}` failed: {done.stderr.strip()[-500:]}"
    return python, ""


def run_fastdup(python: Path, images: Path, work: Path, log: Path) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = work.parent / f"{work.name}.json"
    run = timed([str(python), str(FASTDUP_JOB), str(images), str(work), str(out)], log,
                {"SENTRY_OPT_OUT": "1"})
    result: dict[str, Any] = json.loads(out.read_text())
    result.update(process_seconds=run.wall, process_cpu=run.cpu)
    return result


def fastdup_groups(similarity: Sequence[Sequence[Any]], threshold: float,
                   labels: Labels) -> list[list[int]]:
    """Connected components of fastdup's similarity pairs at ``threshold`` or more."""
    kept = [(labels.position[a], labels.position[b]) for a, b, s in similarity
            if s >= threshold]
    left = np.array([i for i, _ in kept], dtype=np.int64)
    right = np.array([j for _, j in kept], dtype=np.int64)
    component = components(len(labels.files), left, right)
    order = np.argsort(component, kind="stable")
    cuts = np.flatnonzero(np.diff(component[order])) + 1
    return [g.tolist() for g in np.split(order, cuts) if len(g) > 1]


# -- one run ---------------------------------------------------------------------------------


@dataclass
class Row:
    tool: str
    data: str
    images: int
    stages: dict[str, Timed]
    groups: list[list[int]]
    note: str = ""
    score: Score | None = None

    @property
    def total(self) -> float:
        return sum(stage.wall for stage in self.stages.values())

    @property
    def cpu(self) -> float:
        return sum(stage.cpu for stage in self.stages.values())


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                              text=True).stdout

    dirty = git("status", "--porcelain", "--", "lookalike").splitlines()
    return git("rev-parse", "--short", "HEAD").strip() + (
        f" + {len(dirty)} uncommitted files under lookalike/" if dirty else "")


def scored(rows: list[Row], labels: Labels, audit: PixelAudit) -> list[Row]:
    """Score ``rows`` against one truth: the labels plus every pixel-identical source pair
    that any of them found."""
    for row in rows:
        audit.check(row.groups)
    for row in rows:
        row.score = score(row.groups, labels, audit)
    return rows


def _stages(report: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in report.get("seconds", {}).items() if v >= 0.01)


def _report_note(report: dict[str, Any]) -> str:
    similar = report.get("similar")
    tier = f"; similar tier: {len(similar)} groups (not scored)" if similar is not None else ""
    return (f"{report.get('candidates', 0):,} candidates, {report.get('confirmed', 0):,} "
            f"confirmed; duplicates stages (s): {_stages(report)}{tier}")


class Bench:
    def __init__(self, work: Path, fastdup: bool, source: Path | None, tag: str) -> None:
        self.work, self.use_fastdup, self.source, self.tag = work, fastdup, source, tag
        self.results = work / "results"
        self.results.mkdir(parents=True, exist_ok=True)
        self.log = self.results / "commands.log"
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.fastdup_python: Path | None = None
        if fastdup:
            self.fastdup_python, why = ensure_fastdup(work)
            if self.fastdup_python is None:
                self.say(f"**fastdup could not be installed here: {why}**; lookalike is "
                         "measured alone.")

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.notes.append(text)

    def add(self, rows: list[Row]) -> None:
        """Keep ``rows`` for the final table and print them now (a long run's partial
        results survive it)."""
        self.rows += rows
        for row in rows:
            print(line(row, baseline(self.rows, row.data)) + f" {row.note}", flush=True)

    def fastdup(self, name: str, images: Path, labels: Labels) -> list[Row]:
        """fastdup's rows: this run's, or with --skip-fastdup the last run's (saved)."""
        saved = self.results / f"fastdup-{name}.json"
        if self.use_fastdup and self.fastdup_python is not None:
            print(f"[{name}] fastdup ({load()})", flush=True)
            result = run_fastdup(self.fastdup_python, images, self.work / f"fastdup-{name}",
                                 self.log)
            result.update(when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                          load=load())
            saved.write_text(json.dumps(result))
            source = "this run"
        elif saved.is_file():
            result = json.loads(saved.read_text())
            source = f"saved from the run of {result['when']} ({result['load']})"
        else:
            return []
        if result["bad_files"]:
            self.say(f"[{name}] fastdup could not read {len(result['bad_files'])} files")
        stages = {"run (process)": Timed(result["process_seconds"], result["process_cpu"], "")}
        planted = labels.truth >= 0
        sweep = [(pair_scores(groups, labels.truth, involving=planted).f1, t, groups)
                 for t in SWEEP
                 for groups in [fastdup_groups(result["similarity"], t, labels)]]
        _, best, groups = max(sweep, key=lambda item: item[0])
        return [
            Row(f"fastdup {result['version']} default (cc 0.96)", name, len(labels.files),
                stages, labels.groups(result["components"]),
                f"`run()` alone {result['run_seconds']:.1f} s; {source}"),
            Row(f"fastdup, best threshold {best:.3f}", name, len(labels.files), stages,
                groups, "threshold chosen with the labels (upper bound)"),
        ]

    def lookalike_cold(self, name: str, images: Path, labels: Labels
                       ) -> tuple[Lookalike, Row, dict[str, Any]]:
        db = self.work / f"db-{name}-{self.tag}"  # runs of two versions may overlap
        shutil.rmtree(db, ignore_errors=True)
        tool = Lookalike(images, db, self.log, self.source)
        print(f"[{name}] lookalike cold ({load()})", flush=True)
        indexed = tool.index()
        found, report = tool.duplicates()
        (self.results / f"duplicates-{name}-{self.tag}.json").write_text(json.dumps(report))
        row = Row("lookalike mobilenetv2, cold", name, len(labels.files),
                  {"index": indexed, "duplicates": found},
                  labels.groups(copy_groups(report)), _report_note(report))
        return tool, row, report

    def run_set(self, name: str, images: Path, labels: Labels, incremental: bool) -> Row:
        prime_page_cache(images)
        rows = self.fastdup(name, images, labels)
        tool, cold, report = self.lookalike_cold(name, images, labels)
        self.add(scored(rows + [cold], labels, PixelAudit(images, labels)))
        again, warm = tool.duplicates()
        self.say(f"[{name}] lookalike `duplicates` again, nothing changed: {again.wall:.2f} s "
                 f"wall, {again.cpu:.2f} s CPU ({again.wall / cold.stages['duplicates'].wall:.0%}"
                 f" of the cold `duplicates`; same groups: "
                 f"{copy_groups(warm) == copy_groups(report)}; stages (s): {_stages(warm)})")
        if incremental:
            self.add([self.incremental(name, tool, cold, labels)])
        return cold

    def incremental(self, name: str, tool: Lookalike, cold: Row, labels: Labels) -> Row:
        copyset.remove_added(tool.images)
        unplanted = [name for name, kind in zip(labels.files, labels.kinds)
                     if kind == "unplanted"]
        added = copyset.add_copies(tool.images, unplanted, ADDED)
        try:
            more = labels.with_added(added)
            print(f"[{name}] lookalike +{len(added)} files ({load()})", flush=True)
            indexed = tool.index()
            found, report = tool.duplicates()
            row = Row(f"lookalike after adding {len(added)} copies", name, len(more.files),
                      {"index": indexed, "duplicates": found}, more.groups(copy_groups(report)))
            row.note = (f"{row.total / cold.total:.1%} of the cold wall time, "
                        f"{row.cpu / cold.cpu:.1%} of its CPU; {_report_note(report)}")
            return scored([row], more, PixelAudit(tool.images, more))[0]
        finally:
            copyset.remove_added(tool.images)

    def growth(self, root: Path) -> list[Row]:
        rows = []
        for size in GROWTH_SIZES:
            images, part = subset(root, size, self.work)
            prime_page_cache(images)
            _, row, _ = self.lookalike_cold(f"copyset-{size}", images, part)
            rows += scored([row], part, PixelAudit(images, part))
            print(line(rows[-1], None), flush=True)
        return rows


def subset(root: Path, size: int, work: Path) -> tuple[Path, Labels]:
    """The copyset's fixed-seed subset of about ``size`` images: its folder and labels."""
    images = copyset.subset(root, size, work / f"growth-{size}")
    files = json.loads((images.parent / "files.json").read_text())
    return images, Labels.read(root / "groups.csv", files)


# -- output ----------------------------------------------------------------------------------


HEADER = ("| tool | set | images | wall time per stage (CPU) (s) | total wall (s) | "
          "total CPU (s) | fastdup ÷ lookalike, wall / CPU | precision | recall | F1 planted | "
          "unplanted pairs (pixel-identical) | F1 audited | groups |\n"
          "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def line(row: Row, fastdup: Row | None) -> str:
    s = row.score
    assert s is not None
    ratio = (f"**{fastdup.total / row.total:.2f}×** / {fastdup.cpu / row.cpu:.2f}×"
             if "cold" in row.tool and fastdup else "")
    stages = ", ".join(f"{k} {v.wall:.1f} (CPU {v.cpu:.1f})" for k, v in row.stages.items())
    return (f"| {row.tool} | {row.data} | {row.images:,} | {stages} | {row.total:.1f} | "
            f"{row.cpu:.1f} | {ratio} | {s.planted.precision:.3f} | {s.planted.recall:.3f} | "
            f"**{s.planted.f1:.3f}** | {s.unplanted_pairs:,} ({s.unplanted_identical:,}) | "
            f"{s.audited.f1:.3f} | {s.groups:,} |")


def baseline(rows: list[Row], data: str) -> Row | None:
    return next((row for row in rows if row.data == data and row.tool.startswith("fastdup ")),
                None)


def table(rows: list[Row]) -> None:
    print(f"\n{HEADER}")
    for row in rows:
        print(line(row, baseline(rows, row.data)))
    print()
    for row in rows:
        if row.note:
            print(f"- {row.tool}, {row.data}: {row.note}")


def growth_table(rows: list[Row]) -> None:
    print("\nlookalike's growth (cold `index` + `duplicates`; subsets keep whole planted "
          "groups):\n")
    print("| images | index (s) | duplicates (s) | total wall (s) | total CPU (s) | "
          "ms per image (wall) | F1 planted |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in sorted(rows, key=lambda r: r.images):
        assert row.score is not None
        print(f"| {row.images:,} | {row.stages['index'].wall:.1f} | "
              f"{row.stages['duplicates'].wall:.1f} | {row.total:.1f} | {row.cpu:.1f} | "
              f"{1000 * row.total / row.images:.1f} | {row.score.planted.f1:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lookalike-bench"),
                        help="folder for the built sets, collections and fastdup's venv")
    parser.add_argument("--sets", nargs="*", default=["neardup", "copyset"],
                        choices=["neardup", "copyset"], help="sets to run (none: growth only)")
    parser.add_argument("--skip-fastdup", action="store_true",
                        help="do not run fastdup; show its figures saved by an earlier run")
    parser.add_argument("--skip-growth", action="store_true",
                        help="do not time lookalike on the 1k/2k/5k subsets")
    parser.add_argument("--size", type=int, metavar="N",
                        help="run the copyset part on a fixed-seed subset of about N of its "
                        "images (whole planted groups), as the growth timings do")
    parser.add_argument("--at", metavar="COMMIT",
                        help="run lookalike as committed at COMMIT (exported with git "
                        "archive), not the working tree")
    args = parser.parse_args()
    if not NEARDUP.is_dir():
        raise SystemExit(f"{SHARED} is not here (../shared is only on the project's machines)")
    work = args.work.resolve()
    if work.is_relative_to(REPO):
        raise SystemExit("--work must be outside the repository")
    source, version = export(args.at, work) if args.at else (None, commit())
    print(f"# bench_fastdup: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"lookalike {version}, {os.cpu_count()} cores, {load()}", flush=True)
    bench = Bench(work, not args.skip_fastdup, source, version.split()[0])
    full = None
    if "neardup" in args.sets:
        bench.run_set("neardup", NEARDUP / "images", Labels.read(NEARDUP / "groups.csv"),
                      incremental=False)
    root = copyset.build(SHARED / "data", work / "copyset")
    if "copyset" in args.sets and args.size:
        bench.run_set(f"copyset-{args.size}", *subset(root, args.size, work), incremental=True)
    elif "copyset" in args.sets:
        full = bench.run_set("copyset", root / "images", Labels.read(root / "groups.csv"),
                             incremental=True)
    growth = [] if args.skip_growth else bench.growth(root)
    print(f"\n## Results ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {load()})")
    table(bench.rows)
    if growth:
        growth_table(growth + ([full] if full else []))
    for note in bench.notes:
        print(f"\n{note}")


if __name__ == "__main__":
    main()
