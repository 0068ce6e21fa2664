"""Label-noise suspects: how many of the top-ranked suspects really are mislabelled.

    python benchmarks/bench_label_noise.py                     # flowers17, 5 % flipped
    python benchmarks/bench_label_noise.py --sets flowers17 scene15 --noise 0.05 0.10

Each set is indexed with the default model (cached under ``--work``); its folder labels
are the truth. A fixed-seed ``--noise`` share of the images get another class's label at
random, then :func:`~lookalike.analyse.label_noise.find_label_suspects` ranks every image
on the collection's k-NN graph. Scored: the share of flipped images among the top-ranked
suspects as many as were flipped (precision at the noise rate, = recall there), and the
recall among the top 2x. Baseline in the same process: unweighted majority vote of the k
neighbours (the share of neighbours with another label, ties by position).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lookalike import Collection
from lookalike.analyse.label_noise import find_label_suspects
from lookalike.correspondence import class_of

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LOOKALIKE = Path(sys.executable).with_name("lookalike")


def indexed(name: str, work: Path) -> Collection:
    db = work / f"{name}.lookalike"
    subprocess.run([LOOKALIKE, "index", SHARED / name, "--db", db], check=True,
                   capture_output=True)
    return Collection.open(db)


def flipped_labels(truth: list[str], noise: float, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    classes = sorted(set(truth))
    chosen = rng.choice(len(truth), size=round(noise * len(truth)), replace=False)
    labels = list(truth)
    for position in chosen.tolist():
        labels[position] = str(rng.choice([c for c in classes if c != truth[position]]))
    return labels, np.sort(chosen)


def majority_ranking(neighbours: np.ndarray, labels: list[str]) -> np.ndarray:
    codes = np.unique(labels, return_inverse=True)[1]
    disagree = (codes[neighbours] != codes[:, None]).mean(axis=1)
    return np.lexsort((np.arange(len(labels)), -disagree))


def scores(ranking: np.ndarray, flipped: np.ndarray) -> tuple[float, float]:
    wrong = set(flipped.tolist())
    count = len(wrong)
    at_rate = len(wrong.intersection(ranking[:count].tolist())) / count
    at_twice = len(wrong.intersection(ranking[:2 * count].tolist())) / count
    return at_rate, at_twice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=["flowers17"])
    parser.add_argument("--noise", nargs="+", type=float, default=[0.05])
    parser.add_argument("-k", nargs="+", type=int, default=[5, 10, 20])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lookalike-bench-labels"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print("| set | noise | k | suspects: flipped in top (noise) | in top (2x noise) "
          "| majority vote: top (noise) | top (2x) | time (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.sets:
        collection = indexed(name, args.work)
        for noise in args.noise:
            for k in args.k:
                file_ids, graph = collection.knn_graph(k)
                paths = collection.paths(file_ids)
                truth = [str(class_of(path)) for path in paths]
                labels, flipped = flipped_labels(truth, noise, args.seed)
                start = time.perf_counter()
                found = find_label_suspects(graph, list(labels), file_ids, paths, k=k)
                took = 1000 * (time.perf_counter() - start)
                ours = scores(found.ranking, flipped)
                base = scores(majority_ranking(np.asarray(graph.neighbours[:, :k]), labels),
                              flipped)
                print(f"| {name} | {noise:.2f} | {k} | {ours[0]:.3f} | {ours[1]:.3f} "
                      f"| {base[0]:.3f} | {base[1]:.3f} | {took:.1f} |", flush=True)


if __name__ == "__main__":
    main()
