"""Keeper choice on neardup_flowers: the old rule (most pixels, then largest file) vs the
evidence-based rule of ``lookalike.analyse.keeper``, same process.

    python benchmarks/bench_keeper.py

The true groups of ``groups.csv`` with two or more files and at least one member that is
not an edited copy (an ``original``, or a ``distractor`` that the audit found to be the
same photo). A group is right when its suggested keeper is not a ``copy``, or is a pure
``flip`` copy: a mirror image carries exactly its original's pixels, so nothing can tell
the two apart (a tie). Wrong keepers are broken down by the edit that made them. Cost:
:func:`lookalike.image_facts.image_facts` per group member, one thread, and the batch on
all cores.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lookalike.analyse import duplicates, keeper
from lookalike.image_facts import ImageFacts, image_facts, image_facts_many

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "neardup_flowers"
Rule = Callable[[Sequence[ImageFacts]], int]


def old_rule(facts: Sequence[ImageFacts]) -> int:
    """The rule before: most pixels, then the largest file, then the first position."""
    width = np.array([f.width for f in facts])
    height = np.array([f.height for f in facts])
    size = np.array([f.file_size for f in facts])
    return duplicates.choose_keeper(range(len(facts)), width, height, size)


def new_rule(facts: Sequence[ImageFacts]) -> int:
    return keeper.choose_keeper(facts)[0]


def load_groups(data: Path) -> list[list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = defaultdict(list)
    with open(data / "groups.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["group"] != "-1":
                found[row["group"]].append(row)
    return [rows for _, rows in sorted(found.items(), key=lambda item: int(item[0]))
            if len(rows) >= 2 and any(row["kind"] != "copy" for row in rows)]


def right(row: dict[str, str]) -> bool:
    return row["kind"] != "copy" or row["edit"] == "flip"


def score(rule: Rule, groups: list[list[dict[str, str]]],
          facts: dict[str, ImageFacts]) -> tuple[int, Counter[str]]:
    agreed, wrong = 0, Counter[str]()
    for rows in groups:
        chosen = rows[rule([facts[row["file"]] for row in rows])]
        if right(chosen):
            agreed += 1
        else:
            wrong[chosen["edit"]] += 1
    return agreed, wrong


# Each threshold of lookalike.analyse.keeper with a lower and a higher setting: about half
# and double (for a ratio, its distance from 1; a count of corners: one less, one more).
ALTERNATIVES: dict[str, tuple[float, float]] = {
    "SIMILAR_SIZE": (1.125, 1.5), "BORDER_FRACTION": (0.01, 0.04), "CORNERS_MORE": (2, 4),
    "UPSCALED_RATIO": (0.075, 0.3), "BLURRED_RATIO": (0.125, 0.5),
    "BLURRED_SHARPNESS": (0.25, 0.75), "QUALITY_STEPS": (5, 20), "SMALLER": (0.6, 0.9),
    "NARROWER": (10, 40), "CLIPPED_MORE": (0.005, 0.02), "CLIPPED_RATIO": (1.25, 2.0),
}


def sensitivity(groups: list[list[dict[str, str]]], facts: dict[str, ImageFacts]) -> None:
    """The new rule's agreement with each threshold moved to its lower and higher setting,
    one at a time: a figure that holds is not tuned to this data."""
    for name, values in ALTERNATIVES.items():
        default = getattr(keeper, name)
        figures = []
        for value in values:
            setattr(keeper, name, type(default)(value))
            agreed, _ = score(new_rule, groups, facts)
            figures.append(f"{value:g}: {agreed / len(groups):.3f}")
        setattr(keeper, name, default)
        print(f"  {name:18s} default {default:g}; " + ", ".join(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sensitivity", action="store_true",
                        help="also score the new rule with each threshold halved and doubled")
    parser.add_argument("--show", action="store_true",
                        help="print each group the new rule gets wrong, with its facts")
    arguments = parser.parse_args()
    groups = load_groups(arguments.data)
    files = [row["file"] for rows in groups for row in rows]
    paths = [arguments.data / "images" / name for name in files]

    start = time.perf_counter()
    for path in paths[:200]:
        image_facts(path)
    single = (time.perf_counter() - start) / min(200, len(paths))
    start = time.perf_counter()
    outcomes = list(image_facts_many(paths))
    batch = time.perf_counter() - start
    failed = [o for o in outcomes if o.error is not None]
    if failed:
        raise SystemExit(f"{len(failed)} files failed: {failed[0].error}")
    facts = {name: o.value for name, o in zip(files, outcomes) if o.value is not None}

    print(f"{len(groups)} groups, {len(files)} members; image facts: "
          f"{single * 1000:.1f} ms per image (one thread), {len(files)} in {batch:.2f} s "
          f"on {os.cpu_count()} cores")
    for name, rule in (("old: most pixels, then largest file", old_rule),
                       ("new: fewest edit defects", new_rule)):
        agreed, wrong = score(rule, groups, facts)
        breakdown = ", ".join(f"{edit} {count}" for edit, count in wrong.most_common())
        print(f"{name:38s} keeper not a copy in {agreed}/{len(groups)} "
              f"({agreed / len(groups):.3f}); wrong: {breakdown or 'none'}")
    reasons = Counter(reason for rows in groups
                      for reason in keeper.choose_keeper([facts[r["file"]] for r in rows])[1])
    print("new rule's badges:", ", ".join(f"{r} {n}" for r, n in reasons.most_common()))
    if arguments.sensitivity:
        sensitivity(groups, facts)
    if arguments.show:
        for rows in groups:
            members = [facts[row["file"]] for row in rows]
            chosen, why = keeper.choose_keeper(members)
            if right(rows[chosen]):
                continue
            print(f"\ngroup {rows[0]['group']}: kept {rows[chosen]['edit']} ({', '.join(why)})")
            for row, fact, bad in zip(rows, members, keeper.defects(members)):
                print(f"  {row['kind']:10s} {row['edit']:11s} {sorted(bad)} {fact}")


if __name__ == "__main__":
    main()
