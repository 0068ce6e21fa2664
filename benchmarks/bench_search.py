"""Vector-search benchmark: build time, single-query latency, recall@k and size per index kind.

Data are a seeded mixture of Gaussians on the unit sphere, a stand-in for image embeddings:
``--clusters`` centres drawn uniformly on the sphere; around each, noise whose variance
falls off as rank**-decay along a random orientation (``--decay 0``: isotropic), scaled so
that a point's cosine to its centre is about ``--cos-to-centre``; rows L2-normalised.
Queries are fresh draws from the same mixture, so they are not in the index. Recall@k is
measured against the exact top-k of the flat index; queries are issued one at a time, as an
interactive caller would. Size is what ``save`` writes (for annoy: what gets memory-mapped).

    python benchmarks/bench_search.py --sizes 100000 1000000 --dim 384 --queries 1000
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.index import VectorIndex, build_index


@dataclass
class Row:
    n: int
    kind: str
    setting: str
    build_s: float
    p50_ms: float
    p99_ms: float
    recall: float
    size_mb: float

    def markdown(self) -> str:
        return (
            f"| {self.n:,} | {self.kind} | {self.setting} | {self.build_s:.1f} | "
            f"{self.p50_ms:.2f} | {self.p99_ms:.2f} | {self.recall:.3f} | {self.size_mb:.0f} |"
        )


def header(k: int) -> str:
    return (
        "| vectors | kind | parameters | build (s) | p50 (ms) | p99 (ms) "
        f"| recall@{k} | size (MB) |\n|---:|---|---|---:|---:|---:|---:|---:|"
    )


class Mixture:
    """A seeded Gaussian mixture on the unit sphere (see the module docstring)."""

    def __init__(
        self, dim: int, clusters: int, cos_to_centre: float, decay: float, seed: int
    ) -> None:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((clusters, dim)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        scale = np.arange(1, dim + 1, dtype=np.float64) ** (-decay / 2)
        # |noise|^2 = 1/cos^2 - 1 makes cos(centre + noise, centre) = cos_to_centre.
        scale *= np.sqrt((1 / cos_to_centre**2 - 1) / np.sum(scale**2))
        self.basis = (scale[:, None] * rotation.T).astype(np.float32)

    def sample(self, n: int, seed: int, chunk: int = 65_536) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.empty((n, self.basis.shape[0]), dtype=np.float32)
        for start in range(0, n, chunk):
            rows = min(chunk, n - start)
            noise = rng.standard_normal((rows, self.basis.shape[0]), dtype=np.float32)
            points = self.centres[rng.integers(0, len(self.centres), rows)] + noise @ self.basis
            out[start : start + rows] = points / np.linalg.norm(points, axis=1, keepdims=True)
        return out


def saved_size_mb(index: VectorIndex) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "index")
        return sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6


def one_at_a_time(index: VectorIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Latencies (ms) and result keys of issuing the queries one by one."""
    for query in queries[:10]:  # warm caches and thread pools
        index.search(query[None], k)
    latencies = np.empty(len(queries))
    found = np.empty((len(queries), k), dtype=np.int64)
    for row, query in enumerate(queries):
        start = time.perf_counter()
        _, found[row] = index.search(query[None], k)
        latencies[row] = (time.perf_counter() - start) * 1e3
    return latencies, found


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--kinds", nargs="+", default=["flat", "hnsw", "ivfpq", "annoy"])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--cos-to-centre", type=float, default=0.7)
    parser.add_argument("--decay", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    parser.add_argument("--rerank", type=int, default=100)
    parser.add_argument("--n-trees", type=int, default=50)
    parser.add_argument(
        "--search-k", type=int, nargs="+", default=[-1, 50_000, 100_000, 200_000, 400_000]
    )
    args = parser.parse_args()

    sweeps = {
        "flat": ("", [None]),
        "hnsw": ("ef_search", args.ef_search),
        "ivfpq": ("nprobe", args.nprobe),
        "annoy": ("search_k", args.search_k),
    }
    build_params = {
        "flat": {},
        "hnsw": {},
        "ivfpq": {"rerank": args.rerank},
        "annoy": {"n_trees": args.n_trees},
    }
    mixture = Mixture(args.dim, args.clusters, args.cos_to_centre, args.decay, args.seed)
    queries = mixture.sample(args.queries, seed=args.seed + 1)
    rows: list[Row] = []
    print(header(args.k), flush=True)
    for n in args.sizes:
        vectors = mixture.sample(n, seed=args.seed + 2)
        keys = np.arange(n, dtype=np.int64)
        truth = build_index("flat", vectors, keys).search(queries, args.k)[1]
        for kind in args.kinds:
            start = time.perf_counter()
            index = build_index(kind, vectors, keys, **build_params[kind])
            build_s = time.perf_counter() - start
            size_mb = saved_size_mb(index)
            name, values = sweeps[kind]
            for value in values:
                if value is not None:
                    setattr(index, name, value)
                latencies, found = one_at_a_time(index, queries, args.k)
                setting = ", ".join(f"{key}={val}" for key, val in index.params.items())
                row = Row(
                    n,
                    kind,
                    setting or "exact",
                    build_s,
                    float(np.percentile(latencies, 50)),
                    float(np.percentile(latencies, 99)),
                    recall_at_k(found, truth),
                    size_mb,
                )
                rows.append(row)
                print(row.markdown(), flush=True)
            del index
            gc.collect()
        del vectors
    print("\n" + header(args.k))
    print("\n".join(row.markdown() for row in rows))


if __name__ == "__main__":
    main()
