"""Serving a 100k-image collection: startup time and /similar latency under load.

    python benchmarks/bench_serve.py --n 100000 --clients 50 --seconds 60 [--workers 2]
    python benchmarks/bench_serve.py ... --against /tmp/old   # an older checkout beside it

Builds a collection of ``--real`` generated images indexed with the classic model plus
synthetic catalogue rows up to ``--n`` whose unit vectors are clustered like real
embeddings (``--vectors mixture``, bench_search.py's mixture) or uniform (``uniform``),
builds its vector index (as an ``index`` run leaves it),
then starts ``lookalike serve`` in a subprocess on 127.0.0.1. Reported: time from launch
to the first answered /api/stats, the first /similar (loads the index), then ``--clients``
concurrent clients (raw asyncio HTTP/1.1 keep-alive, one loop) each requesting
/api/images/{random id}/similar?k=10 back to back for ``--seconds``: p50/p90/p99 latency,
throughput, errors, the server's CPU time per request and its RSS before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_search import Mixture  # noqa: E402
from lookalike import Collection  # noqa: E402
from lookalike.discover import Candidate, discover  # noqa: E402
from lookalike.store import EmbeddedFile  # noqa: E402
from tests.conftest import scene  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its children (``serve --workers``)."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1]) / 1024
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += rss_mb(int(child))
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its children so far: per request, the
    figure that a box shared with other jobs disturbs least."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += cpu_seconds(int(child))
    return total


def build(root: Path, n: int, real: int, index_kind: str = "auto",
          vectors_kind: str = "mixture") -> list[int]:
    root.mkdir(parents=True)
    for seed in range(real):
        scene(seed).save(root / f"real{seed:04d}.jpg", quality=85)
    started = time.perf_counter()
    collection, _ = Collection.index_folder(root, model="classic")
    store, record = collection.store, collection.model
    assert record is not None
    synthetic = (Candidate(Path(f"synthetic/d{i // 1000:04d}/img{i:07d}.jpg"), 100_000 + i, i,
                           "JPEG") for i in range(n - real))
    store.sync_files(itertools.chain(discover(root), synthetic))
    pending = [f.id for f in store.files_to_embed(record.key)]
    rng = np.random.default_rng(0)
    mixture = Mixture(record.dim, clusters=1000, cos_to_centre=0.7, decay=1.0, seed=0)
    for start in range(0, len(pending), 4096):
        ids = pending[start:start + 4096]
        if vectors_kind == "uniform":
            vectors = rng.standard_normal((len(ids), record.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        else:
            vectors = mixture.sample(len(ids), seed=start)
        store.commit_batch(record.key, [EmbeddedFile(i, f"{i:032x}", 640, 480, "JPEG")
                                        for i in ids], vectors)
    store.set_meta("index_kind", index_kind)
    index = collection.vector_index()
    file_ids, _ = collection.vectors()
    print(f"collection: {len(file_ids)} embedded ({real} real images), dim {record.dim}, "
          f"{index.kind} index, built in {time.perf_counter() - started:.0f} s")
    collection.close()
    return [int(i) for i in file_ids]


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
               path: str) -> tuple[int, bytes]:
    """One keep-alive HTTP/1.1 GET: (status, body)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(":", 1)[1]) for line in lines
                  if line.lower().startswith("content-length:"))
    return status, await reader.readexactly(length)


async def load(url: str, ids: list[int], clients: int, seconds: float
               ) -> tuple[list[float], int, int]:
    """``clients`` keep-alive connections, each sending its next request as soon as the
    last is answered. A raw asyncio client rather than httpx: on two cores shared with
    the server, httpx's own CPU per request (about 4 ms) would cap the rate it can
    offer well below what the server answers."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    rng = np.random.default_rng(1)
    host, port = url.removeprefix("http://").split(":")

    async def one_client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                file_id = ids[int(rng.integers(len(ids)))]
                started = time.perf_counter()
                try:
                    status, body = await _get(reader, writer, host,
                                              f"/api/images/{file_id}/similar?k=10")
                    ok = status == 200 and len(json.loads(body)["hits"]) == 10
                    problem = f"{status} {body[:200]!r}"
                except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                    ok, problem = False, f"{type(error).__name__}: {error}"
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                latencies.append(time.perf_counter() - started)
                if not ok:
                    errors += 1
                    if errors <= 3:
                        print(f"error: id {file_id}: {problem}", flush=True)
        finally:
            writer.close()

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return latencies, errors, len(latencies)


def start(root: Path, workers: int, source: Path | None) -> tuple[subprocess.Popen[bytes], str]:
    """``lookalike serve`` on a free port, from ``source`` (a checkout: its ``lookalike``
    package comes first on the path) or this one; returns once /api/stats answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "lookalike.cli", "serve", str(root), "--port", str(port),
         "--workers", str(workers)], cwd=source,
        stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    while True:
        try:
            if httpx.get(f"{url}/api/stats", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.02)
        if server.poll() is not None or time.perf_counter() - started > 60:
            raise SystemExit("server did not start")
    print(f"startup (launch -> first /api/stats answered): {time.perf_counter() - started:.2f}"
          f" s; RSS {rss_mb(server.pid):.0f} MB")
    return server, url


async def load_all(urls: list[str], ids: list[int], clients: int, seconds: float
                   ) -> list[tuple[list[float], int, int]]:
    """:func:`load` on every server at once: the same load in the same seconds."""
    return await asyncio.gather(*(load(url, ids, clients, seconds) for url in urls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--real", type=int, default=300)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--index", default="auto", help="auto (flat below 50k), hnsw, ...")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--vectors", choices=["mixture", "uniform"], default="mixture",
                        help="synthetic embeddings: clustered like real ones (bench_search's "
                        "Gaussian mixture) or uniform on the sphere (no structure: HNSW's "
                        "worst case)")
    parser.add_argument("--against", type=Path, help="another checkout (e.g. a git archive "
                        "of an older commit): its server runs beside this one's, each under "
                        "--clients clients at the same time, so a box shared with other "
                        "jobs slows both alike")
    args = parser.parse_args()
    sources = {"this checkout": None, **({str(args.against): args.against}
                                         if args.against else {})}
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary) / "images"
        ids = build(root, args.n, args.real, args.index, args.vectors)
        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        try:
            for label, source in sources.items():
                servers[label] = start(root, args.workers, source)
            for server, url in servers.values():
                first = time.perf_counter()
                httpx.get(f"{url}/api/images/{ids[0]}/similar?k=10", timeout=60
                          ).raise_for_status()
                print(f"first /similar (loads the index): "
                      f"{(time.perf_counter() - first) * 1000:.0f} ms; "
                      f"RSS {rss_mb(server.pid):.0f} MB")
            urls = [url for _, url in servers.values()]
            rss_before = {label: rss_mb(server.pid) for label, (server, _) in servers.items()}
            asyncio.run(load_all(urls, ids, args.clients, 3))  # warm up
            rss_warm = {label: rss_mb(server.pid) for label, (server, _) in servers.items()}
            cpu = {label: cpu_seconds(server.pid) for label, (server, _) in servers.items()}
            results = asyncio.run(load_all(urls, ids, args.clients, args.seconds))
            for (label, (server, _)), (latencies, errors, count) in zip(servers.items(),
                                                                       results):
                used = cpu_seconds(server.pid) - cpu[label]
                ms = np.asarray(latencies) * 1000
                if len(servers) > 1:
                    print(f"-- {label}")
                print(f"{args.clients} clients x {args.seconds:.0f} s: {count} requests "
                      f"({count / args.seconds:.0f}/s), {errors} errors")
                print(f"latency p50 {np.percentile(ms, 50):.1f} ms, p90 "
                      f"{np.percentile(ms, 90):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
                      f"max {ms.max():.1f} ms")
                print(f"server CPU: {used * 1000 / max(count, 1):.3f} ms per request "
                      f"({used:.1f} s over {args.seconds:.0f} s)")
                print(f"server RSS: {rss_before[label]:.0f} MB before load, "
                      f"{rss_warm[label]:.0f} MB after warm-up, {rss_mb(server.pid):.0f} MB "
                      f"after {args.seconds:.0f} s")
        finally:
            for server, _ in servers.values():
                server.terminate()
                server.wait(timeout=10)


if __name__ == "__main__":
    main()
