"""Peak memory of storing and indexing N images' worth of embeddings.

    python benchmarks/bench_store_memory.py --n 100000 --dim 384

Runs the real store and index code (SQLite catalogue rows, float16 embedding appends in
committed batches, compaction check, vector index build, queries) with synthetic
L2-normalised vectors in place of a model, and prints the peak resident memory, the disk
size of each part and the time of each stage.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from lookalike import Collection
from lookalike.discover import Candidate
from lookalike.store import EmbeddedFile, Store


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--index", default="auto")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"start: peak RSS {peak_rss_mb():.0f} MB")
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary) / "images"
        root.mkdir()
        store = Store.create(root / ".lookalike", root)
        started = time.perf_counter()
        changes = store.sync_files(
            Candidate(Path(f"d{i // 1000:04d}/img{i:07d}.jpg"), 100_000 + i, i, "JPEG")
            for i in range(args.n)
        )
        print(f"catalogue: {changes.added} rows in {time.perf_counter() - started:.1f} s, "
              f"peak RSS {peak_rss_mb():.0f} MB")
        store.add_model("synthetic", "synthetic", {}, {"name": "synthetic"}, args.dim)
        store.set_meta("model", "synthetic")
        store.set_meta("index_kind", args.index)
        started = time.perf_counter()
        for start in range(0, args.n, args.batch):
            ids = range(start + 1, min(start + args.batch, args.n) + 1)
            vectors = rng.standard_normal((len(ids), args.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            store.commit_batch("synthetic", [EmbeddedFile(i, f"{i:032x}", 640, 480, "JPEG")
                                             for i in ids], vectors)
        print(f"embeddings: {args.n} rows committed in {time.perf_counter() - started:.1f} s, "
              f"peak RSS {peak_rss_mb():.0f} MB")
        collection = Collection(store)
        started = time.perf_counter()
        index = collection.vector_index()
        print(f"index {index.kind}: built in {time.perf_counter() - started:.1f} s, "
              f"peak RSS {peak_rss_mb():.0f} MB")
        started = time.perf_counter()
        for query in range(1, 101):
            collection.search(query, k=10)
        print(f"100 searches by id: {(time.perf_counter() - started) * 10:.2f} ms each")
        usage = store.disk_usage()
        print("disk: " + ", ".join(f"{k} {v / 2**20:.1f} MB" for k, v in usage.items()))
        print(f"PEAK RSS {peak_rss_mb():.0f} MB for {args.n} x {args.dim} embeddings")


if __name__ == "__main__":
    main()
