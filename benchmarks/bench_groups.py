"""Threshold groups on neardup_flowers: the calibrated default threshold vs fixed ones.

    lookalike index ../shared/data/neardup_flowers/images --db /tmp/ndf-groups
    python benchmarks/bench_groups.py --db /tmp/ndf-groups
    python benchmarks/bench_groups.py                # indexes into a temporary folder

``lookalike groups`` with no ``--threshold`` cuts at the near-duplicate threshold that
``duplicates`` calibrates for the collection's model from synthetic edits of its own
images (``Collection.group_threshold``); the fixed 0.8 was the default before. Each row is
``Collection.groups`` at one threshold (what the command prints), scored pair by pair
against ``groups.csv``: every pair of files put in one group vs the true groups (the file
is audited: the 20 photos flowers17 itself holds twice are already joined). "largest": the
biggest group, in images (a true group has 4, a few joined ones 8); "look-alike pairs":
wrong pairs that take in a distractor (another photo of the same kind of flower).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lookalike import Collection
from lookalike.analyse.duplicates import pair_scores, pair_scores_by_tag

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_duplicates import DATA, read_labels  # noqa: E402

FIXED = [0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


def score_row(name: str, threshold: float, groups: list[list[int]], truth: np.ndarray,
              tags: list[str], seconds: float) -> str:
    scores = pair_scores(groups, truth)
    lookalikes = pair_scores_by_tag(groups, truth, tags).get("distractor")
    largest = max((len(g) for g in groups), default=0)
    return (f"| {name} | {threshold:.3f} | {len(groups)} | {largest} | "
            f"{scores.precision:.3f} | {scores.recall:.3f} | {scores.f1:.3f} | "
            f"{lookalikes.false_positives if lookalikes else 0} | "
            f"{seconds:.2f} |")


def run(db: Path, model: str) -> None:
    started = time.perf_counter()
    collection, _ = Collection.index_folder(DATA / "images", db=db, model=model)
    index_seconds = time.perf_counter() - started
    with collection:
        spec = collection.model.spec  # type: ignore[union-attr]
        file_ids, _ = collection.vectors(copy=False)
        paths = collection.paths(file_ids)
        truth, tags = read_labels(paths)

        started = time.perf_counter()
        used = collection.group_threshold()  # measured now unless stored already
        calibrate_seconds = time.perf_counter() - started
        calibration = collection.calibration()
        rows = []
        for name, threshold in [("**calibrated default**", None), *(
                (f"fixed {t:g}", t) for t in FIXED)]:
            started = time.perf_counter()
            found = collection.groups(threshold)
            seconds = time.perf_counter() - started
            assert np.array_equal(found.file_ids, file_ids)
            groups = [g.members.tolist() for g in found.groups]
            rows.append(score_row(name, used.value if threshold is None else threshold,
                                  groups, truth, tags, seconds))

    print(f"\n### {spec} ({len(paths)} images; index {index_seconds:.1f} s)\n")
    print(f"Calibration ({calibration.get('calibrated_on')} images, {calibration.get('edits')} "
          f"synthetic edits; {calibrate_seconds:.1f} s, 0 when already stored by "
          f"`duplicates`): near_threshold {calibration['near_threshold']}, candidate_threshold "
          f"{calibration['candidate_threshold']}.\n")
    print("| threshold | cosine | groups | largest | precision | recall | F1 "
          "| look-alike pairs | time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(row)
    default, old = rows[0].split(" | "), rows[3].split(" | ")
    print(f"\nF1, calibrated default / fixed 0.8: {float(default[6]):.3f} / {float(old[6]):.3f}"
          f" = {float(default[6]) / max(float(old[6]), 1e-9):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="Collection of neardup_flowers/images (made "
                        "or brought up to date here); default: a temporary one.")
    parser.add_argument("--model", default="auto",
                        help="Model for a new collection (default: auto, as the CLI).")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is not here (../shared is only on the project's machines)")
    if args.db is not None:
        run(args.db, args.model)
        return
    with tempfile.TemporaryDirectory(prefix="bench-groups-") as workdir:
        run(Path(workdir) / "collection", args.model)


if __name__ == "__main__":
    main()
