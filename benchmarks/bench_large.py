"""Large collections on this machine: IVF-PQ over 1M / 3M / 10M float16 memory-mapped
vectors (build time, single-query latency, recall@10, RAM), then the k-NN graph with
planted-duplicate recall and k-means (k = 1000) over the same memmap.

    python benchmarks/bench_large.py --sizes 1000000 3000000 10000000

Each size runs in its own process (so peak RSS is that size's own) and writes its
vectors once to ``--work`` (7.7 GB at 10M x 384). The index is built as a collection
builds it: ``build_index("ivfpq", memmap, rows, rerank_source="external")``, re-ranking
from the memmap. Data as in bench_scale.py: a mixture of 2,000 Gaussians in 384-d with 1 %
planted near-duplicates. Queries are 1,000 fresh draws; recall@10 is against exact search
over the memmap. Memory: the peak resident set of each stage, sampled every 0.2 s, split
into anonymous memory (what the process allocates) and file-backed pages (the memmap pages
it has read, which the kernel can drop at any time). The vectors are written by a separate
process first, so writing them does not count.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lookalike.analyse.clusters import kmeans  # noqa: E402
from lookalike.index import IVFPQIndex, build_index, load_index  # noqa: E402
from lookalike.index_disk import write_ivfpq  # noqa: E402
from lookalike.knn import knn_graph  # noqa: E402
from lookalike.ownership import atomic_write  # noqa: E402

DIM = 384
CENTRES = 2000
DUPLICATE_FRACTION = 0.01
CHUNK = 262_144


class MemoryWatch:
    """Peak resident memory, sampled: anonymous (the process's own allocations) and
    file-backed (pages of the memmap it has read: page cache, reclaimable)."""

    def __init__(self) -> None:
        self.anon = self.file = 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            anon, file = rss_now_gb()
            self.anon, self.file = max(self.anon, anon), max(self.file, file)
            self._stop.wait(0.2)

    def reset(self) -> None:
        self.anon = self.file = 0.0


def mixture(rng: np.random.Generator, centres: np.ndarray, count: int) -> np.ndarray:
    rows = centres[rng.integers(0, len(centres), count)]
    rows = rows + rng.standard_normal((count, DIM), dtype=np.float32) / math.sqrt(DIM)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def make_data(path: Path, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float16 memmap [n, 384], planted pairs [p, 2], queries float32 [1000, 384])."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((CENTRES, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    copies = int(n * DUPLICATE_FRACTION)
    pairs = np.stack([np.arange(copies) * 2, np.arange(copies) * 2 + 1], axis=1)
    pairs = (pairs * (n // (2 * copies))).astype(np.int64)  # spread over the whole file
    def write(temporary: Path) -> None:
        data = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float16,
                                         shape=(n, DIM))
        for start in range(0, n, CHUNK):
            data[start:start + CHUNK] = mixture(rng, centres, min(CHUNK, n - start))
        noise = rng.standard_normal((copies, DIM), dtype=np.float32) * (0.1 / math.sqrt(DIM))
        twins = data[pairs[:, 0]].astype(np.float32) + noise
        data[pairs[:, 1]] = twins / np.linalg.norm(twins, axis=1, keepdims=True)
        data.flush()

    if not path.exists():
        atomic_write(path, write)
    queries = mixture(np.random.default_rng(1), centres, 1000)
    return np.load(path, mmap_mode="r"), pairs, queries


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's true top 10 among the 10 found."""
    return round(float(np.mean([len(set(a) & set(b)) for a, b in zip(found, truth)])) / 10, 4)


def exact_top10(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    best_scores = np.full((len(queries), 10), -np.inf, dtype=np.float32)
    best = np.full((len(queries), 10), -1, dtype=np.int64)
    for start in range(0, len(data), CHUNK):
        block = np.asarray(data[start:start + CHUNK], dtype=np.float32)
        scores, found = faiss.knn(queries, block, 10, metric=faiss.METRIC_INNER_PRODUCT)
        scores = np.concatenate([best_scores, scores], axis=1)
        found = np.concatenate([best, found + start], axis=1)
        order = np.argsort(-scores, axis=1)[:, :10]
        best_scores = np.take_along_axis(scores, order, 1)
        best = np.take_along_axis(found, order, 1)
    return best


def run_one(n: int, work: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"n": n}
    data, pairs, queries = make_data(work / f"vectors-{n}.npy", n)  # made by the parent
    memory = MemoryWatch()

    def stage(name: str, started: float) -> None:
        result[f"{name}_s"] = round(time.perf_counter() - started, 1)
        result[f"{name}_anon_gb"] = round(memory.anon, 2)
        result[f"{name}_file_gb"] = round(memory.file, 2)
        print(json.dumps({"n": n, "stage": name, "seconds": result[f"{name}_s"],
                          "peak_anon_gb": result[f"{name}_anon_gb"],
                          "peak_file_gb": result[f"{name}_file_gb"]}), flush=True)
        memory.reset()

    started = time.perf_counter()
    index = build_index("ivfpq", data, np.arange(n), rerank_source="external")
    index.attach(data)
    stage("ivfpq_build", started)
    result["ivfpq_params"] = index.params

    truth = exact_top10(data, queries)
    for rerank, nprobe in [(400, 16), (400, 32), (400, 64), (1000, 16), (1000, 64)]:
        index.nprobe, index.rerank = nprobe, rerank
        name = f"nprobe{nprobe}" if rerank == 400 else f"rerank{rerank}_nprobe{nprobe}"
        index.search(queries[:20], 10)  # warm the memmap pages the first queries touch
        times, found = [], []
        for query in queries:
            tick = time.perf_counter()
            _, keys = index.search(query[None], 10)
            times.append(time.perf_counter() - tick)
            found.append(keys[0])
        ms = np.asarray(times) * 1000
        result[name] = {"p50_ms": round(float(np.percentile(ms, 50)), 2),
                        "p99_ms": round(float(np.percentile(ms, 99)), 2),
                        "recall10": recall_at_10(found, truth)}
        print(json.dumps({"n": n, "rerank": rerank, "nprobe": nprobe, **result[name]}),
              flush=True)
    stage("search", time.perf_counter())
    del index

    started = time.perf_counter()
    graph = knn_graph(data, 10)
    stage("graph", started)
    a, b = pairs[:, 0], pairs[:, 1]
    found = graph.is_mutual(a, b)
    cos = (np.asarray(data[a], np.float32) * np.asarray(data[b], np.float32)).sum(1)
    result["duplicate_recall"] = round(float((found & (cos >= 0.95)).mean()), 4)
    print(json.dumps({"n": n, "duplicate_recall": result["duplicate_recall"]}), flush=True)
    del graph

    started = time.perf_counter()
    clustering = kmeans(data, 1000, seed=0)
    stage("kmeans", started)
    result["empty_clusters"] = int((np.bincount(clustering.labels, minlength=1000) == 0).sum())
    return result


def run_graph_only(n: int, work: Path) -> None:
    """The graph stage alone, built in RAM and then on disk (``knn_graph(out=...)``, what
    a collection does when the graph would take over a quarter of ``--max-memory``)."""
    data, pairs, _ = make_data(work / f"vectors-{n}.npy", n)
    memory = MemoryWatch()
    for where in ("ram", "disk"):
        memory.reset()
        started = time.perf_counter()
        out = work / f"graph-{n}" if where == "disk" else None
        graph = knn_graph(data, 10, out=out)
        seconds = time.perf_counter() - started
        found = graph.is_mutual(pairs[:, 0], pairs[:, 1])
        print(json.dumps({"n": n, "graph": where, "seconds": round(seconds, 1),
                          "peak_anon_gb": round(memory.anon, 2),
                          "peak_file_gb": round(memory.file, 2),
                          "mutual_planted": round(float(found.mean()), 4)}), flush=True)
        del graph


def rss_now_gb() -> tuple[float, float]:
    """(anonymous, file-backed) resident GB of this process now."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 2**20
    return fields.get("RssAnon", 0.0), fields.get("RssFile", 0.0)


def run_loading(n: int, work: Path, mode: str) -> None:
    """A saved IVF-PQ index opened in RAM or memory-mapped (``load_index(mmap=True)``,
    what a collection with ``--max-memory`` does): resident memory and query latency."""
    data, _, queries = make_data(work / f"vectors-{n}.npy", n)
    path = work / f"ivfpq-{n}.index"
    if mode == "build":
        if not path.exists():
            build_index("ivfpq", data, np.arange(n), rerank_source="external").save(path)
        return
    truth = exact_top10(data, queries)  # first: its scan of the vectors is not counted
    anon_before, file_before = rss_now_gb()
    index = load_index(path, mmap=mode == "mmap")
    index.attach(data)
    anon_loaded, _ = rss_now_gb()
    times, found = [], []
    for query in queries:
        tick = time.perf_counter()
        found.append(index.search(query[None], 10)[1][0])
        times.append(time.perf_counter() - tick)
    anon_after, file_after = rss_now_gb()
    ms = np.asarray(times) * 1000
    print(json.dumps({
        "n": n, "load": mode, "rerank": index.params["rerank"],
        "anon_gb_for_index": round(anon_loaded - anon_before, 3),
        "anon_gb_after_queries": round(anon_after - anon_before, 3),
        "file_gb_read_by_queries": round(file_after - file_before, 3),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "recall10": recall_at_10(found, truth)}), flush=True)


def run_build(n: int, work: Path) -> None:
    """An IVF-PQ index built on disk (``index_disk.write_ivfpq``, what a collection with
    ``--max-memory`` does) and then in RAM (``add`` then ``save``), from one training:
    time and peak memory of each, whether the two files are identical, and recall@10 of
    the one built on disk, searched memory-mapped."""
    data, _, queries = make_data(work / f"vectors-{n}.npy", n)
    for start in range(0, n, CHUNK):  # read once: both builds start with a warm page cache
        np.asarray(data[start:start + CHUNK]).sum()
    memory = MemoryWatch()
    results: dict[str, Any] = {"n": n}

    def stage(name: str, started: float) -> None:
        results[name] = {"seconds": round(time.perf_counter() - started, 1),
                         "peak_anon_gb": round(memory.anon, 2),
                         "peak_file_gb": round(memory.file, 2)}
        print(json.dumps({"n": n, "stage": name, **results[name]}), flush=True)
        memory.reset()

    started = time.perf_counter()
    trained = IVFPQIndex.train(data, rerank_source="external")
    stage("train", started)
    paths = {where: work / f"build-{where}-{n}.index" for where in ("disk", "ram")}
    started = time.perf_counter()
    write_ivfpq(paths["disk"], trained, data, np.arange(n))
    stage("write_on_disk", started)
    started = time.perf_counter()
    trained.add(data, np.arange(n))
    trained.save(paths["ram"])
    stage("add_in_ram_and_save", started)
    del trained
    digests = []
    for path in paths.values():
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(1 << 24):
                digest.update(block)
        digests.append(digest.hexdigest())
    index = load_index(paths["disk"], mmap=True)
    index.attach(data)
    truth = exact_top10(data, queries[:200])
    found = index.search(queries[:200], 10)[1]
    print(json.dumps({"n": n, "files_identical": digests[0] == digests[1],
                      "index_gb": round(paths["disk"].stat().st_size / 2**30, 2),
                      "recall10_mapped": recall_at_10(found, truth), **index.params}),
          flush=True)
    # an index run that re-embeds 1,000 images: the mapped file rewritten, against a copy
    # loaded into RAM, changed and saved (what a collection did before)
    changed = np.linspace(0, n - 1, 1000).astype(np.int64)
    started = time.perf_counter()
    write_ivfpq(paths["disk"], index, data, changed, remove=changed)
    stage("change_1000_on_disk", started)
    started = time.perf_counter()
    loaded = load_index(paths["ram"])
    loaded.remove(changed)
    loaded.add(data[changed], changed)
    loaded.save(paths["ram"])
    stage("change_1000_in_ram", started)
    for path in paths.values():
        path.unlink()
        path.with_name(path.name + ".json").unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000,
                                                                  10_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lookalike-bench-large"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--make", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--graph-only", action="store_true",
                        help="only the k-NN graph, built in RAM and then on disk")
    parser.add_argument("--loading", action="store_true",
                        help="only a saved IVF-PQ index, opened in RAM and memory-mapped")
    parser.add_argument("--build", action="store_true",
                        help="only IVF-PQ building, on disk and then in RAM")
    parser.add_argument("--load", choices=["build", "ram", "mmap"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.make:
        make_data(args.work / f"vectors-{args.make}.npy", args.make)
        return
    if args.one and args.graph_only:
        run_graph_only(args.one, args.work)
        return
    if args.one and args.load:
        run_loading(args.one, args.work, args.load)
        return
    if args.one and args.build:
        run_build(args.one, args.work)
        return
    if args.loading:  # each way in a fresh process, after the data (and index) exist
        for n in args.sizes:
            subprocess.run([sys.executable, __file__, "--make", str(n), "--work",
                            str(args.work)], check=True)
            for mode in ("build", "ram", "mmap"):
                subprocess.run([sys.executable, __file__, "--one", str(n), "--load", mode,
                                "--work", str(args.work)], check=True)
        return
    if args.one:
        result = run_one(args.one, args.work)
        (args.work / f"result-{args.one}.json").write_text(json.dumps(result))
        return
    for n in args.sizes:
        for step in ("--make", "--one"):  # data written by its own process: not in the RSS
            subprocess.run([sys.executable, __file__, step, str(n), "--work", str(args.work),
                            *(["--graph-only"] if args.graph_only else []),
                            *(["--build"] if args.build else [])], check=True)
    if args.graph_only or args.build:
        return
    print("\n| n | IVF-PQ build s | build / search anon GB | nprobe | p50 ms | p99 ms "
          "| recall@10 | graph s | graph anon GB | dup recall | k-means s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        r = json.loads((args.work / f"result-{n}.json").read_text())
        for nprobe in (16, 32, 64):
            q = r[f"nprobe{nprobe}"]
            print(f"| {n:,} | {r['ivfpq_build_s']} | {r['ivfpq_build_anon_gb']} / "
                  f"{r['search_anon_gb']} | {nprobe} | {q['p50_ms']} | {q['p99_ms']} | "
                  f"{q['recall10']} | {r['graph_s']} | {r['graph_anon_gb']} | "
                  f"{r['duplicate_recall']} | {r['kmeans_s']} |")


if __name__ == "__main__":
    main()
