"""Near-duplicate finding on neardup_flowers: the naive baseline vs lookalike, same process.

    python benchmarks/bench_duplicates.py                       # mobilenetv2-int8 + classic
    python benchmarks/bench_duplicates.py --models mobilenetv2-int8

The data: 200 flowers17 photos, each with 3 edited copies (JPEG, crop, resize, flip,
rotate, brightness, grey, caption, border, blur and pairs of these), plus 300 other photos
of the same flower classes (look-alikes, not duplicates). Scored pair by pair: every pair
of files put in one predicted group vs the true groups; per edit type, the pairs that
touch a copy with that edit ("distractor": the pairs that wrongly take in a look-alike).

* baseline: cosine >= t over all pairs, connected components, with the best t of a sweep
  (chosen with the labels, so an upper bound of what the method can do);
* lookalike: ``find_duplicates(collection)`` at its defaults: threshold from its own,
  label-free calibration, k-NN candidates, local-feature verification, grouping without
  chains; and ``verify=False`` (embedding only, calibrated ``near_threshold``).

The shipped labels miss duplicates that flowers17 itself contains: 20 pairs of *unedited*
files (originals and distractors) are the same photo, saved twice or cropped differently
(see SOURCE_DUPLICATES). Scores are given against the labels as shipped and against the
labels with those 20 pairs joined ("audited"); the benchmark prints the pixel evidence.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from lookalike import Collection
from lookalike.analyse.duplicates import PairScores, components, pair_scores, pair_scores_by_tag
from lookalike.duplicates_job import DuplicateReport, find_duplicates

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data" / "neardup_flowers"
MODELS = {
    "mobilenetv2-int8": f"onnx:{SHARED / 'models/mobilenetv2-int8/model.onnx'}",
    "classic": "classic",
}

# Unedited files of different true groups that are one photo in flowers17 itself. Found
# by lookalike's verification, then checked by eye on a contact sheet; 13 of the 20 are
# also pixel-identical up to JPEG noise (mean absolute difference < 3 after resizing one
# onto the other, printed by this script), the other 7 are crops of one photo (83 to 201
# matched keypoints under one similarity transform).
SOURCE_DUPLICATES = [
    ("04f1fb333c82", "e0087ba9aa77"), ("09b1e1fbd7ff", "3a22e5a8068b"),
    ("0d7459d682c8", "6a80c960aa93"), ("1e308b51cabd", "c9a07431e521"),
    ("23f6ce00f9b7", "f2159ff5dd50"), ("26f78caaf1c4", "3507e167f891"),
    ("2ce83ee45082", "46df761b37e0"), ("303a8db9241c", "b7ac85ca060c"),
    ("38ef86098262", "ca90a86077eb"), ("3ce9a9afb252", "a60929e69313"),
    ("53ba4376ff62", "cdabfbce7032"), ("576c90f9c369", "73d1b53ad1c4"),
    ("64d41a3e2513", "d90f42d83880"), ("6bb8a7af9db1", "f4d6773039fa"),
    ("acc53466b2c0", "b97424f354f3"), ("c22c831705e8", "ff6373ea3769"),
    ("c4524d897e8d", "f5c4be06f7cc"), ("c71328915050", "cb811a3cd618"),
    ("e6c388988387", "ec8a216d0dac"), ("f54f65a9ea5f", "f92086becd6e"),
]
EDIT_ORDER = ["jpeg", "crop", "crop+jpeg", "resize", "flip", "flip+bright", "rotate",
              "bright", "gray", "text", "border", "blur", "original", "distractor"]


def read_labels(paths: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """True group per path (-1: none) and its tag: the edit, "original" or "distractor"."""
    rows = {row["file"]: row for row in csv.DictReader(open(DATA / "groups.csv"))}
    truth = np.array([int(rows[path]["group"]) for path in paths])
    tags = [rows[path]["edit"] or rows[path]["kind"] for path in paths]
    return truth, tags


def audited(truth: np.ndarray, paths: Sequence[str]) -> np.ndarray:
    """``truth`` with the SOURCE_DUPLICATES pairs (and so their groups) joined."""
    position = {Path(path).stem: p for p, path in enumerate(paths)}
    loose = np.flatnonzero(truth < 0)
    unique = truth.copy()
    unique[loose] = truth.max() + 1 + np.arange(len(loose))  # each loose file on its own
    values, labels = np.unique(unique, return_inverse=True)
    left = labels[[position[a] for a, _ in SOURCE_DUPLICATES]]
    right = labels[[position[b] for _, b in SOURCE_DUPLICATES]]
    joined = components(len(values), left, right)[labels]
    return np.where(np.bincount(joined)[joined] > 1, joined, -1)


def pixel_evidence(root: Path) -> int:
    """How many SOURCE_DUPLICATES pairs are pixel-identical up to JPEG noise."""
    identical = 0
    for a, b in SOURCE_DUPLICATES:
        with Image.open(root / f"{a}.jpg") as first, Image.open(root / f"{b}.jpg") as second:
            x = np.asarray(first.convert("RGB"), dtype=np.float32)
            y = np.asarray(second.convert("RGB").resize(first.size), dtype=np.float32)
        identical += float(np.abs(x - y).mean()) < 3.0
    return identical


def baseline(vectors: np.ndarray, truth: np.ndarray) -> tuple[float, list[list[int]]]:
    """Best-F1 cosine threshold with connected components over all pairs (N x N here,
    1,100 images; the method itself is what is measured, not its scaling)."""
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1.0)
    best: tuple[float, float, list[list[int]]] = (-1.0, 0.0, [])
    for threshold in np.arange(0.50, 0.995, 0.005):
        graph = csr_matrix(similarity >= threshold)
        _, labels = connected_components(graph, directed=False)
        groups = _groups(labels)
        f1 = pair_scores(groups, truth).f1
        if f1 > best[0]:
            best = (f1, float(threshold), groups)
    return best[1], best[2]


def _groups(labels: np.ndarray) -> list[list[int]]:
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    return [g.tolist() for g in np.split(order, cuts) if len(g) > 1]


def line(name: str, scores: PairScores, seconds: float | None, note: str = "") -> str:
    time_cell = f"{seconds:.1f}" if seconds is not None else "–"
    return (f"| {name} | {scores.precision:.3f} | {scores.recall:.3f} | {scores.f1:.3f} | "
            f"{scores.false_positives} | {scores.false_negatives} | {time_cell} | {note} |")


def run(model: str, workdir: Path) -> None:
    started = time.perf_counter()
    collection, _ = Collection.index_folder(DATA / "images", db=workdir / model,
                                            model=MODELS[model])
    index_seconds = time.perf_counter() - started
    _, vectors = collection.vectors()
    file_ids, _ = collection.store.live_rows(collection.model.key)  # type: ignore[union-attr]
    paths = [collection.store.file(int(i)).path for i in file_ids]  # type: ignore[union-attr]
    truth, tags = read_labels(paths)
    fixed = audited(truth, paths)

    started = time.perf_counter()
    threshold, naive = baseline(vectors, truth)
    naive_seconds = time.perf_counter() - started

    started, cpu = time.perf_counter(), time.process_time()
    first = find_duplicates(collection)
    first_seconds, first_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    report = find_duplicates(collection)  # calibration now cached in the collection
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    assert report.paths == paths and report.groups() == first.groups()
    started = time.perf_counter()
    quick = find_duplicates(collection, verify=False)
    quick_seconds = time.perf_counter() - started
    ours = report.groups()

    calibration = report.calibration or {}
    print(f"\n### {model} ({len(paths)} images; index {index_seconds:.1f} s)\n")
    print(f"Calibration (first call, {calibration.get('calibrated_on')} images, "
          f"{calibration.get('edits')} synthetic edits): candidate_threshold "
          f"{calibration.get('candidate_threshold')}, near_threshold "
          f"{calibration.get('near_threshold')}. Default run: {report.candidates:,} pairs "
          f"verified, {report.confirmed:,} confirmed; first call {first_seconds:.1f} s "
          f"({first_cpu:.1f} s CPU) with calibration, then {seconds:.1f} s "
          f"({cpu_seconds:.1f} s CPU): "
          + ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items() if v >= 0.05) + ".\n")
    print("| method | precision | recall | F1 | FP pairs | FN pairs | time (s) | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for label, truth_used in [("shipped labels", truth), ("audited labels", fixed)]:
        print(line(f"naive: cosine >= t + components ({label})",
                   pair_scores(naive, truth_used), naive_seconds, f"best t = {threshold:.3f}"))
        print(line(f"lookalike `verify=False` ({label})", pair_scores(quick.groups(),
                   truth_used), quick_seconds, f"t = {quick.threshold:.3f}"))
        print(line(f"**lookalike default** ({label})", pair_scores(ours, truth_used), seconds,
                   f"t = {report.threshold:.3f}, verified"))
    print("\nF1 per edit type (pairs touching a file with that edit; for distractors, the "
          "number of wrong pairs), shipped / audited labels:\n")
    print("| edit | naive | lookalike verify=False | **lookalike default** |")
    print("|---|---:|---:|---:|")
    per = {name: (pair_scores_by_tag(groups, truth, tags), pair_scores_by_tag(groups, fixed,
                                                                              tags))
           for name, groups in [("naive", naive), ("quick", quick.groups()), ("ours", ours)]}
    for tag in EDIT_ORDER:
        cells = []
        for name in ("naive", "quick", "ours"):
            shipped, fixed_scores = per[name][0][tag], per[name][1][tag]
            if tag == "distractor":
                cells.append(f"{shipped.false_positives} / {fixed_scores.false_positives} FP")
            else:
                cells.append(f"{shipped.f1:.3f} / {fixed_scores.f1:.3f}")
        print(f"| {tag} | " + " | ".join(cells) + " |")
    _summarise_misses(report, truth, tags)
    collection.close()


def _summarise_misses(report: DuplicateReport, truth: np.ndarray, tags: list[str]) -> None:
    predicted = np.full(len(truth), -1)
    for g, members in enumerate(report.groups()):
        predicted[members] = g
    missed = [tags[p] for p in range(len(truth))
              if truth[p] >= 0 and (predicted[p] < 0 or
                                    (predicted[truth == truth[p]] != predicted[p]).any())]
    if missed:
        counts = {tag: missed.count(tag) for tag in sorted(set(missed))}
        print(f"\nFiles not grouped with all of their true group: {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is not here (../shared is only on the project's machines)")
    print(f"Audit: {pixel_evidence(DATA / 'images')} of {len(SOURCE_DUPLICATES)} "
          "SOURCE_DUPLICATES pairs are pixel-identical up to JPEG noise")
    with tempfile.TemporaryDirectory(prefix="bench-duplicates-") as workdir:
        for model in args.models:
            run(model, Path(workdir))


if __name__ == "__main__":
    main()
