"""Copy tiers: edited copies versus similar shots, and the duplicate job's speed.

    nice python benchmarks/bench_copy_tiers.py

One process, two sets from ../shared/data, MobileNetV2-int8:

* ``faces_pairs``: 214 wide portraits and the same photos tightly cropped (the true copy
  pairs) among many other shots of the same ten people in the same rooms (similar shots,
  not duplicates);
* ``neardup_flowers``: 200 flowers17 photos x 3 synthetic edits + 300 look-alikes
  (audited labels, see bench_duplicates.py).

Per set: pairwise precision / recall / F1 of the duplicates (exact + edited copies)
against the true copy groups, for the default run and for the same verified pairs with
every geometric match taken as a copy (the finder before tiers: agreement threshold 0);
how many pairs the similar tier holds and how many of them are true copies (copies
wrongly demoted); the calibrated agreement threshold and the margins to the agreement
that true copies and other shots show. Timings: cold ``index``, cold ``duplicates``
(calibration, verification), a warm rerun with nothing changed (cached verdicts), and on
neardup_flowers an incremental run after indexing 100 more files.
"""

from __future__ import annotations

import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_duplicates import audited  # noqa: E402

from lookalike import Collection  # noqa: E402
from lookalike.analyse.duplicates import EDITED, PairScores, pair_scores  # noqa: E402
from lookalike.duplicates_job import (  # noqa: E402
    DuplicateReport,
    candidate_stage,
    exact_stage,
    find_duplicates,
    gather,
    group_stage,
    tier_stage,
    verify_stage,
)
from lookalike.verify import dense_agreement, load_features, verify_features  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODEL = f"onnx:{SHARED / 'models/mobilenetv2-int8/model.onnx'}"
SETS = ("faces_pairs", "neardup_flowers")
HELD_BACK = 100  # neardup_flowers files indexed in a second, incremental run


def truth_of(name: str, paths: list[str]) -> np.ndarray:
    rows = {row["file"]: row for row in csv.DictReader(open(SHARED / "data" / name /
                                                            "groups.csv"))}
    truth = np.array([int(rows[Path(p).name]["group"]) for p in paths])
    return audited(truth, paths) if name == "neardup_flowers" else truth


def line(label: str, scores: PairScores) -> str:
    return (f"| {label} | {scores.precision:.3f} | {scores.recall:.3f} | {scores.f1:.3f} | "
            f"{scores.false_positives} | {scores.false_negatives} |")


def similar_pairs(report: DuplicateReport, truth: np.ndarray) -> tuple[int, int]:
    """(pairs inside similar groups that are not in one near/exact group, of those true
    copies)."""
    together = {frozenset((a, b)) for g in report.groups() for x, a in enumerate(g)
                for b in g[x + 1:]}
    pairs = {frozenset((a, b)) for g in report.similar for x, a in enumerate(g.members)
             for b in g.members[x + 1:]} - together
    copies = sum(1 for p in pairs if len({int(truth[q]) for q in p}) == 1
                 and truth[next(iter(p))] >= 0)
    return len(pairs), copies


def without_tiers(collection: Collection, report: DuplicateReport) -> list[list[int]]:
    """The same verified pairs grouped with every geometric match taken as a copy."""
    inputs = gather(collection, 16)
    assert inputs.graph is not None and report.calibration is not None
    exact = exact_stage(inputs)
    i, j, cosine = candidate_stage(inputs.graph, report.threshold, exact.representative)
    checked = verify_stage(inputs, i, j, cosine)  # cached: no verification
    tiers = tier_stage(checked, {**report.calibration, "agreement_threshold": 0.0})
    near, _ = group_stage(inputs.columns, exact, checked, tiers, checked.weight)
    taken = {p for g in near for p in g.members}
    return [g.members for g in near] + [g.members for g in exact.groups
                                        if not taken.intersection(g.members)]


def agreement_margins(collection: Collection, report: DuplicateReport,
                      truth: np.ndarray) -> str:
    inputs = gather(collection, 16)
    assert inputs.graph is not None
    exact = exact_stage(inputs)
    i, j, cosine = candidate_stage(inputs.graph, report.threshold, exact.representative)
    checked = verify_stage(inputs, i, j, cosine)
    same = checked.same
    agreement = np.array([v.agreement for v in checked.verdicts])
    copy = (truth[checked.i] == truth[checked.j]) & (truth[checked.i] >= 0)
    ours = agreement[same & copy]
    others = agreement[same & ~copy]

    def q(values: np.ndarray, p: float) -> str:
        return f"{np.nanquantile(values, p):.3f}" if len(values) else "–"
    tiers = tier_stage(checked, report.calibration or {})
    band = []
    for floor in (0.95, 0.97, 0.98, 0.99, 0.995):
        above = checked.cosine >= floor
        band.append(f">= {floor}: {int(above.sum())} pairs, "
                    f"{int((above & (tiers != EDITED)).sum())} not edited copies")
    print("Skipping geometry above a cosine would take these pairs as copies: "
          + "; ".join(band) + ".\n")
    return (f"geometric matches: {len(ours)} true copies (agreement min {q(ours, 0)}, "
            f"2nd percentile {q(ours, 0.02)}), {len(others)} others (median "
            f"{q(others, 0.5)}, 99th percentile {q(others, 0.99)}, max {q(others, 1)})")


def unit_costs(collection: Collection, threshold: float, sample: int = 150) -> str:
    """Single-thread CPU cost of the verification's units (CPU time, not wall: the box
    is shared), for the cost model in docs/scale.md. OpenCV and faiss get one thread,
    as in verify_pairs: their idle pool threads would otherwise spin on CPU time."""
    cv2.setNumThreads(1)
    faiss.omp_set_num_threads(1)
    inputs = gather(collection, 16)
    assert inputs.graph is not None
    exact = exact_stage(inputs)
    i, j, _ = candidate_stage(inputs.graph, threshold, exact.representative)
    chosen = np.unique(np.concatenate([i, j]))[:sample]
    cpu = time.process_time()
    features = {int(p): load_features(inputs.absolute[p]) for p in chosen}
    per_image = (time.process_time() - cpu) / max(len(chosen), 1)
    pairs = [(int(a), int(b)) for a, b in zip(i, j) if a in features and b in features]
    cpu = time.process_time()
    verdicts = [verify_features(features[a], features[b]) for a, b in pairs]
    per_pair = (time.process_time() - cpu) / max(len(pairs), 1)
    matched = [(a, b) for (a, b), v in zip(pairs, verdicts) if v.same]
    cpu = time.process_time()
    for a, b in matched:
        dense_agreement(features[a].grey, features[b].grey,  # type: ignore[arg-type]
                        np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    dense = (time.process_time() - cpu) / max(len(matched), 1)
    return (f"unit costs (one thread, CPU): features {1000 * per_image:.1f} ms per image "
            f"(decode + SIFT), verification {1000 * per_pair:.2f} ms per pair "
            f"({len(pairs)} candidate pairs; dense agreement {1000 * dense:.2f} ms of it "
            f"for the {len(matched)} geometric matches), "
            f"{len(i) / len(inputs.file_ids):.1f} candidate pairs per image")


def run(name: str, workdir: Path) -> None:
    images = SHARED / "data" / name / "images"
    folder = workdir / name
    files = sorted(images.iterdir())
    held = files[-HELD_BACK:] if name == "neardup_flowers" else []
    folder.mkdir()
    for path in files:
        if path not in held:
            shutil.copy(path, folder / path.name)
    started = time.perf_counter()
    collection, _ = Collection.index_folder(folder, db=workdir / f"{name}.db", model=MODEL)
    index_seconds = time.perf_counter() - started
    started = time.perf_counter()
    cold = find_duplicates(collection)
    cold_seconds = time.perf_counter() - started
    started = time.perf_counter()
    warm = find_duplicates(collection)
    warm_seconds = time.perf_counter() - started
    assert warm.groups() == cold.groups()
    timing = (f"index {index_seconds:.1f} s, duplicates cold {cold_seconds:.1f} s ("
              + ", ".join(f"{k} {v:.1f}" for k, v in cold.seconds.items() if v >= 0.05)
              + f"; {cold.candidates} pairs verified), warm rerun {warm_seconds:.2f} s "
              f"({warm.cached} of {warm.candidates} verdicts cached)")
    if held:
        collection.close()
        for path in held:
            shutil.copy(path, folder / path.name)
        started = time.perf_counter()
        collection, _ = Collection.index_folder(folder, db=workdir / f"{name}.db",
                                                model=MODEL)
        more_index = time.perf_counter() - started
        started = time.perf_counter()
        final = find_duplicates(collection)
        more_seconds = time.perf_counter() - started
        timing += (f"; +{len(held)} files: index {more_index:.1f} s, duplicates "
                   f"{more_seconds:.1f} s ({final.candidates - final.cached} of "
                   f"{final.candidates} pairs verified)")
        cold = final
    truth = truth_of(name, cold.paths)
    calibration = cold.calibration or {}
    print(f"\n### {name} ({len(cold.paths)} images)\n")
    print(f"Calibrated agreement threshold {calibration.get('agreement_threshold')} "
          f"(per edit: {calibration.get('agreement_by_edit')}); "
          + agreement_margins(collection, cold, truth) + ".\n")
    print("| duplicates (exact + edited) | precision | recall | F1 | FP pairs | FN pairs |")
    print("|---|---:|---:|---:|---:|---:|")
    print(line("every geometric match a copy (no tiers)",
               pair_scores(without_tiers(collection, cold), truth)))
    print(line("**copy tiers (default)**", pair_scores(cold.groups(), truth)))
    held_apart, copies = similar_pairs(cold, truth)
    print(f"\nSimilar tier: {len(cold.similar)} groups, {held_apart} pairs kept apart "
          f"from the duplicates, {copies} of them true copies; "
          f"{cold.confirmed} edited-copy links.\n")
    print(f"Timings: {timing}.\n")
    print(unit_costs(collection, cold.threshold) + ".")
    collection.close()


def main() -> None:
    if not (SHARED / "data").is_dir():
        raise SystemExit(f"{SHARED} is not here (../shared is only on the project's machines)")
    with tempfile.TemporaryDirectory(prefix="bench-tiers-") as workdir:
        for name in SETS:
            run(name, Path(workdir))


if __name__ == "__main__":
    main()
