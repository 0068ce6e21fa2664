"""Sorting by a few examples per class, end to end through ``lookalike sort --by-examples``.

    python benchmarks/bench_examples.py                       # both sets, default model
    python benchmarks/bench_examples.py --per-class 1 --per-class 5

For each labelled set (scene15's five room classes: bedroom, kitchen, livingroom, office,
store, 1,245 photos; flowers17: 17 classes, 1,360 photos) the collection is indexed with
the default model (cached under ``--work``), the first ``--per-class`` file names of each
class (sorted) are linked into ``examples/<class>/``, and ``sort --by-examples --dry-run
--json`` plans the sort. Scored on the images that are not examples:

- "in class folder": the share whose planned folder is its true class (unsure counts as
  wrong): the figure a user sees on disk;
- "class right": the share whose class is right, unsure or not;
- "unsure": the share sent to ``unsure/``.

Baselines on the same embeddings, in the same process: each image to its nearest single
example (what ``--by-examples`` did before), to the nearest class mean of the examples,
and k-means with k = the number of classes and no examples (Hungarian-matched accuracy).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from lookalike import Collection

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ROOMS = ("bedroom", "kitchen", "livingroom", "office", "store")
LOOKALIKE = Path(sys.executable).with_name("lookalike")


def image_folder(name: str, work: Path) -> Path:
    """The set's image folder: flowers17 as it is, the rooms as links to scene15's five."""
    if name == "flowers17":
        return SHARED / "flowers17"
    folder = work / "rooms"
    folder.mkdir(parents=True, exist_ok=True)
    for room in ROOMS:
        link = folder / room
        if not link.exists():
            link.symlink_to(SHARED / "scene15" / room)
    return folder


def indexed(name: str, work: Path) -> tuple[Path, Path]:
    images, db = image_folder(name, work), work / f"{name}.lookalike"
    subprocess.run([LOOKALIKE, "index", images, "--db", db], check=True,
                   capture_output=True)
    return images, db


def examples_folder(images: Path, work: Path, per_class: int) -> Path:
    folder = work / f"examples-{images.name}-{per_class}"
    for cls in sorted(p.name for p in images.iterdir() if p.is_dir()):
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for path in sorted((images / cls).iterdir())[:per_class]:
            link = folder / cls / path.name
            if not link.exists():
                link.symlink_to(path.resolve())
    return folder


def hungarian_accuracy(truth: np.ndarray, found: np.ndarray) -> float:
    table = np.zeros((found.max() + 1, truth.max() + 1))
    np.add.at(table, (found, truth), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / len(truth))


def run(name: str, per_class: int, work: Path) -> None:
    images, db = indexed(name, work)
    examples = examples_folder(images, work, per_class)
    started = time.perf_counter()
    planned = subprocess.run(
        [LOOKALIKE, "sort", "--db", db, "--by-examples", examples, "--to", work / "out",
         "--dry-run", "--json"], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    placements = json.loads(planned.stdout)["placements"]
    truth = [Path(p["path"]).relative_to(images).parts[0] for p in placements]
    in_folder = np.mean([p["folder"] == t for p, t in zip(placements, truth)])
    right = np.mean([p["class"] == t for p, t in zip(placements, truth)])
    unsure = np.mean([p["folder"] == "unsure" for p in placements])

    collection = Collection.open(db)
    file_ids, vectors = collection.vectors()
    paths = collection.paths(file_ids)
    classes = sorted({Path(p).parts[0] for p in paths})
    label = np.array([classes.index(Path(p).parts[0]) for p in paths])
    chosen = {str(Path(p).resolve()) for p in examples.rglob("*.jpg")}
    is_example = np.array([str((images / p).resolve()) in chosen for p in paths])
    nearest = label[is_example][np.argmax(vectors @ vectors[is_example].T, axis=1)]
    means = np.stack([vectors[is_example & (label == c)].mean(0) for c in range(len(classes))])
    centroid = np.argmax(vectors @ means.T, axis=1)
    clustering = collection.clusters(len(classes)).clustering
    rest = ~is_example
    print(f"{name}, {per_class} example(s) per class, {rest.sum()} images to sort "
          f"({seconds:.1f} s for the plan):")
    print(f"  lookalike sort --by-examples: in class folder {in_folder:.3f}, class right "
          f"{right:.3f}, unsure {unsure:.3f}")
    print(f"  nearest single example       {np.mean(nearest[rest] == label[rest]):.3f}")
    print(f"  nearest class mean           {np.mean(centroid[rest] == label[rest]):.3f}")
    print(f"  k-means, no examples (ACC)   "
          f"{hungarian_accuracy(label[rest], clustering.labels[rest]):.3f}")
    print(f"  ratio in-folder / nearest example: "
          f"{in_folder / np.mean(nearest[rest] == label[rest]):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lookalike-bench-examples"))
    parser.add_argument("--per-class", type=int, action="append")
    parser.add_argument("--set", choices=("rooms", "flowers17"), action="append")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for name in args.set or ["rooms", "flowers17"]:
        for per_class in args.per_class or [3]:
            run(name, per_class, args.work)


if __name__ == "__main__":
    main()
