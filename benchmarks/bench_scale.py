"""The analyses at scale: k-NN graph, duplicates, groups, k-means and outliers on 10k-1M items.

    python benchmarks/bench_scale.py --sizes 10000 100000 1000000
    python benchmarks/bench_scale.py --sizes 100000 --graph hnsw      # compare graph builders

Data: 384-d L2-normalised vectors from a seeded mixture of 2,000 Gaussians (cosine ~0.7 to
their centre, ~0.5 between members of one component) in which 1 % of the items are planted
near-duplicates: a copy of another item plus small noise (cosine ~0.995 to it).

Per size, in a fresh process (so that peak RSS is that size's own), stages are timed:

* graph: the k = 10 nearest-neighbour graph through ``lookalike.knn.knn_graph``; its
  recall@10 is measured against exact search for 1,000 random items;
* duplicates: the fraction of planted pairs that are mutual neighbours with cosine >= 0.95;
* groups: ``threshold_groups`` at 0.95 (and how many planted pairs come out as a group);
* k-means: ``kmeans`` with k = 1000; outliers: ``outlier_scores`` + ``top_outliers`` 1 %.

``--graph`` picks how the graph is built: ``cells`` (default; ``lookalike.knn.cell_knn_graph``,
which ``knn_graph`` uses from 50k items, blocked exact products within k-means cells), or
``lookalike.knn.knn_graph`` over an index: ``ivf`` (``IVFFlatIndex``, an exact inverted
file), ``auto`` (``choose_kind``'s index) or ``hnsw``/``flat`` forced. At 1M only
``cells`` (and ``ivf``) fit the budget: see BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from lookalike.analyse.clusters import kmeans
from lookalike.analyse.groups import threshold_groups
from lookalike.analyse.outliers import outlier_scores, top_outliers
from lookalike.index import VectorIndex, build_index
from lookalike.knn import KnnGraph, cell_knn_graph, knn_graph

DIM = 384
CENTRES = 2000
K = 10
DUPLICATE_FRACTION = 0.01
DUPLICATE_THRESHOLD = 0.95
CLUSTERS = 1000
_CHUNK = 65_536


class IVFFlatIndex(VectorIndex):
    """``IndexIVFFlat`` (inner product) behind the ``VectorIndex`` API, for ``knn_graph``.

    Full float32 vectors in ``nlist`` k-means cells; a query scans the ``nprobe`` nearest
    cells exactly. This is what the library lacks for all-pairs work at 1M: HNSW's build is
    the slow part there, IVF-PQ's compressed scores cost recall. Not persisted (benchmark).
    """

    kind = "ivfflat"

    def __init__(self, ivf: Any) -> None:
        super().__init__(ivf.d)
        self._ivf = ivf

    @classmethod
    def build(cls, vectors: np.ndarray, nlist: int, nprobe: int) -> IVFFlatIndex:
        quantizer = faiss.IndexFlatIP(vectors.shape[1])
        ivf = faiss.IndexIVFFlat(quantizer, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.max_points_per_centroid = 64  # a 64-points-per-cell sample trains the cells
        ivf.train(vectors)
        for start in range(0, len(vectors), _CHUNK):
            block = np.ascontiguousarray(vectors[start : start + _CHUNK], dtype=np.float32)
            ivf.add_with_ids(block, np.arange(start, start + len(block), dtype=np.int64))
        ivf.nprobe = nprobe
        return cls(ivf)

    @property
    def params(self) -> dict[str, Any]:
        return {"nlist": int(self._ivf.nlist), "nprobe": int(self._ivf.nprobe)}

    def keys(self) -> np.ndarray:
        return np.arange(len(self), dtype=np.int64)

    def __len__(self) -> int:
        return int(self._ivf.ntotal)

    def _add_chunk(self, vectors: np.ndarray, keys: np.ndarray) -> None:
        self._ivf.add_with_ids(vectors, keys)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._ivf.search(queries, k)

    def _write(self, path: Path) -> None:
        raise NotImplementedError("benchmark index: not persisted")

    @classmethod
    def _read(cls, path: Path, meta: dict[str, Any]) -> IVFFlatIndex:
        raise NotImplementedError("benchmark index: not persisted")


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors and the planted duplicate pairs ``[pairs, 2]`` (positions)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CENTRES, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    copies = int(n * DUPLICATE_FRACTION)
    # Random positions for the originals and for the copies, so copies are spread out.
    positions = rng.permutation(n)
    base, copy = positions[: n - copies], positions[n - copies :]
    vectors = np.empty((n, DIM), dtype=np.float32)
    # Noise of norm ~1 around a unit centre: cosine ~0.7 to it, ~0.5 within a component.
    spread = 1.0 / math.sqrt(DIM)
    for start in range(0, len(base), _CHUNK):
        rows = base[start : start + _CHUNK]
        block = centres[rng.integers(0, CENTRES, len(rows))]
        block += spread * rng.standard_normal((len(rows), DIM), dtype=np.float32)
        vectors[rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    originals = rng.choice(base, copies, replace=False)
    twins = vectors[originals] + 0.1 * spread * rng.standard_normal((copies, DIM), np.float32)
    vectors[copy] = twins / np.linalg.norm(twins, axis=1, keepdims=True)
    return vectors, np.stack([originals, copy], axis=1)


def build_graph(vectors: np.ndarray, method: str, nprobe: int) -> tuple[KnnGraph, str]:
    n = len(vectors)
    if method == "cells":
        nlist = max(1, min(int(2 * math.sqrt(n)), n // 39))
        graph = cell_knn_graph(vectors, K, nlist=nlist, probe=nprobe)
        return graph, f"cells {{'nlist': {nlist}, 'probe': {nprobe}, 'spill': 2}}"
    if method == "ivf":
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        index = IVFFlatIndex.build(vectors, nlist, nprobe)
        return knn_graph(vectors, K, index=index), f"ivfflat {index.params}"
    keys = np.arange(n, dtype=np.int64)
    index = build_index(method, vectors, keys)
    return knn_graph(vectors, K, index=index), f"{index.kind} {index.params}"


def graph_recall(vectors: np.ndarray, graph: KnnGraph, samples: int = 1000) -> float:
    """Mean recall@K of the graph against exact search, for ``samples`` random items."""
    rng = np.random.default_rng(1)
    rows = rng.choice(len(vectors), min(samples, len(vectors)), replace=False)
    queries = vectors[rows]
    best_scores = np.full((len(rows), K + 1), -np.inf, dtype=np.float32)
    best_ids = np.full((len(rows), K + 1), -1, dtype=np.int64)
    for start in range(0, len(vectors), _CHUNK):
        scores = queries @ vectors[start : start + _CHUNK].T
        ids = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        scores = np.concatenate([best_scores, scores], axis=1)
        ids = np.concatenate([best_ids, ids], axis=1)
        top = np.argpartition(-scores, K, axis=1)[:, : K + 1]
        best_scores = np.take_along_axis(scores, top, 1)
        best_ids = np.take_along_axis(ids, top, 1)
    hits = 0
    for row, truth, truth_scores in zip(rows, best_ids, best_scores):
        exact = truth[np.argsort(-truth_scores)]
        exact = exact[exact != row][:K]
        hits += len(np.intersect1d(exact, graph.neighbours[row]))
    return hits / (len(rows) * K)


def duplicate_recall(graph: KnnGraph, pairs: np.ndarray) -> float:
    a, b = pairs[:, 0], pairs[:, 1]
    mutual = graph.is_mutual(a, b)
    score = np.where(graph.neighbours[a] == b[:, None], graph.scores[a], -np.inf).max(axis=1)
    return float(np.mean(mutual & (score >= DUPLICATE_THRESHOLD)))


def peak_rss_gb() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 2**20


def run_one(n: int, method: str, nprobe: int) -> dict[str, Any]:
    timings: dict[str, float] = {}
    result: dict[str, Any] = {"n": n}

    cpu: dict[str, float] = {}

    def timed(stage: str, work: Any) -> Any:
        started, started_cpu = time.perf_counter(), time.process_time()
        value = work()
        timings[stage] = time.perf_counter() - started
        cpu[stage] = time.process_time() - started_cpu
        print(
            f"  n={n:>9,} {stage:<10} {timings[stage]:8.1f} s wall {cpu[stage]:8.1f} s CPU",
            file=sys.stderr,
            flush=True,
        )
        return value

    vectors, pairs = timed("data", lambda: make_data(n))
    graph, result["index"] = timed("graph", lambda: build_graph(vectors, method, nprobe))
    result["dup_recall"] = timed("duplicates", lambda: duplicate_recall(graph, pairs))
    groups = timed("groups", lambda: threshold_groups(vectors, graph, DUPLICATE_THRESHOLD))
    planted = {tuple(sorted(pair)) for pair in pairs.tolist()}
    result["groups"] = len(groups)
    result["pair_groups"] = sum(
        1 for group in groups if tuple(sorted(group.members.tolist())) in planted
    )
    clustering = timed("kmeans", lambda: kmeans(vectors, min(CLUSTERS, n), seed=0))
    result["kmeans_objective"] = clustering.objective
    result["empty_clusters"] = int((clustering.sizes == 0).sum())
    timed("outliers", lambda: top_outliers(outlier_scores(graph), 0.01))
    result["peak_rss_gb"] = peak_rss_gb()
    result["graph_recall"] = graph_recall(vectors, graph)
    result["planted_pairs"] = len(pairs)
    result["timings"] = timings
    result["total"] = sum(seconds for stage, seconds in timings.items() if stage != "data")
    result["total_cpu"] = sum(seconds for stage, seconds in cpu.items() if stage != "data")
    return result


STAGES = ("data", "graph", "duplicates", "groups", "kmeans", "outliers")


def report(results: list[dict[str, Any]]) -> None:
    head = ["n", *[f"{s} s" for s in STAGES], "total s", "total CPU s", "peak RSS GB"]
    head += ["dup recall", "graph R@10"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        cells = [f"{r['n']:,}", *[f"{r['timings'][s]:.1f}" for s in STAGES]]
        cells += [f"{r['total']:.1f}", f"{r['total_cpu']:.1f}", f"{r['peak_rss_gb']:.2f}"]
        cells += [f"{r['dup_recall']:.4f}", f"{r['graph_recall']:.3f}"]
        print("| " + " | ".join(cells) + " |")
    print()
    for r in results:
        print(
            f"n={r['n']:,}: graph index {r['index']}; {r['groups']:,} groups at "
            f"{DUPLICATE_THRESHOLD}, {r['pair_groups']:,} of {r['planted_pairs']:,} planted pairs "
            f"exactly a group; k-means objective {r['kmeans_objective']:.3f}, "
            f"{r['empty_clusters']} empty clusters"
        )
    for small, large in zip(results, results[1:]):
        ratio = large["n"] / small["n"]
        growth = ", ".join(
            f"{s} x{large['timings'][s] / max(small['timings'][s], 1e-9):.1f}"
            for s in ("graph", "kmeans", "outliers")
        )
        print(
            f"growth {small['n']:,} -> {large['n']:,} (x{ratio:.0f} items): total "
            f"x{large['total'] / small['total']:.1f}, {growth}, peak RSS "
            f"x{large['peak_rss_gb'] / small['peak_rss_gb']:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--graph", choices=["cells", "ivf", "auto", "hnsw", "flat"], default="cells"
    )
    parser.add_argument("--nprobe", type=int, default=4, help="cells probed (cells, ivf)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.graph, args.nprobe)))
        return
    print(
        f"# {platform.machine()}, {faiss.omp_get_max_threads()} threads; "
        f"python {' '.join(sys.argv)}",
        flush=True,
    )
    results = []
    for n in args.sizes:
        command = [sys.executable, __file__, "--one", str(n), "--graph", args.graph]
        done = subprocess.run(
            [*command, "--nprobe", str(args.nprobe)], stdout=subprocess.PIPE, text=True
        )
        if done.returncode:
            sys.exit(f"size {n} failed with exit code {done.returncode}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    report(results)


if __name__ == "__main__":
    main()
