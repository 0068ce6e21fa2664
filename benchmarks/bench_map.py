"""The 2-D map's layouts side by side: time and how well each keeps neighbourhoods.

    python benchmarks/bench_map.py                       # scene15, graph vs t-SNE vs PCA
    python benchmarks/bench_map.py --datasets scene15 flowers17 --methods graph pca

Each dataset is indexed with the shared MobileNetV2 (the collection kept in ``--cache``, so
a second run embeds nothing, see ``bench_clusters.labelled_vectors``); every method then
lays out the same embeddings in this process, through ``lookalike.analyse.layout.map_2d``.
Printed per method: seconds, kNN preservation (the share of each image's 10 nearest
neighbours by cosine that stay among its 10 nearest on the map), 2-D kNN accuracy (the
majority class of an image's 10 nearest on the map, against its own label), whether a
second run gives the same layout, and the speed-up over the first method (the baseline).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import faiss
import numpy as np
from bench_clusters import MODEL, labelled_vectors

from lookalike.analyse.layout import map_2d

K = 10


def nearest(points: np.ndarray, k: int, inner_product: bool) -> np.ndarray:
    """Each row's ``k`` nearest other rows (cosine for embeddings, Euclidean in 2-D)."""
    points = np.ascontiguousarray(points, dtype=np.float32)
    index = faiss.IndexFlatIP(points.shape[1]) if inner_product else faiss.IndexFlatL2(
        points.shape[1])
    index.add(points)
    _, found = index.search(points, k + 1)
    return found[:, 1:]


def preservation(high: np.ndarray, low: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(high, low)]))


def knn_accuracy(low: np.ndarray, labels: np.ndarray) -> float:
    _, codes = np.unique(labels, return_inverse=True)
    votes = np.array([np.bincount(codes[row]).argmax() for row in low])
    return float(np.mean(votes == codes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["scene15"])
    parser.add_argument("--methods", nargs="+", default=["tsne", "graph", "pca"],
                        help="the first is the baseline the speed-ups are against")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/lookalike-bench-clusters"))
    parser.add_argument("--model", default=MODEL)
    args = parser.parse_args()
    for dataset in args.datasets:
        vectors, labels = labelled_vectors(dataset, args.cache, args.model)
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        high = nearest(unit, K, inner_product=True)
        baseline = None
        for method in args.methods:
            started = time.perf_counter()
            layout, used = map_2d(vectors, method)
            seconds = time.perf_counter() - started
            again, _ = map_2d(vectors, method)
            baseline = baseline or seconds
            low = nearest(layout, K, inner_product=False)
            print(f"  {used:<6} {seconds:7.2f} s  kNN preservation {preservation(high, low):.3f}"
                  f"  2-D kNN accuracy {knn_accuracy(low, labels):.3f}"
                  f"  deterministic {np.array_equal(layout, again)}"
                  f"  speed-up {baseline / seconds:6.1f}x")


if __name__ == "__main__":
    main()
