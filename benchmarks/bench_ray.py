"""Indexing on Ray: throughput with 1 and 2 local model workers, beside the local pipeline.

    python benchmarks/bench_ray.py                          # flowers17, mobilenetv2-int8
    python benchmarks/bench_ray.py --model classic --limit 600

Each run indexes a fresh collection of the same files (symlinks) on a local Ray cluster
started here with ``--cpus`` CPUs; images/s counts the embedding stage (decode, model,
commit), as ``lookalike index`` reports it. The local pipeline runs in this process.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from lookalike import Collection
from lookalike.discover import discover

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def folder_of(files: list[Path], target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for position, path in enumerate(files):
        (target / f"{position:05d}{path.suffix}").symlink_to(path.resolve())
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="flowers17")
    parser.add_argument("--model", default=str(SHARED / "models/mobilenetv2-int8/model.onnx"))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    import ray

    spec = args.model if args.model == "classic" else f"onnx:{args.model}"
    root = SHARED / "data" / args.dataset
    files = [root / c.path for c in discover(root) if c.reason is None][: args.limit]
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        _, report = Collection.index_folder(folder_of(files, work / "local"), model=spec)
        rows.append(("local pipeline (this process)", report.embed.images_per_second))
        for workers in (1, 2):
            folder = folder_of(files, work / f"ray{workers}")
            _, report = Collection.index_folder(folder, model=spec, ray="auto",
                                                workers=workers)
            assert report.embed.embedded == len(files)
            rows.append((f"ray, {workers} worker(s)", report.embed.images_per_second))
            print(rows[-1], flush=True)
    ray.shutdown()
    print(f"\n{len(files)} images of {args.dataset}, model {Path(args.model).parent.name}")
    print("| run | images/s |\n|---|---:|")
    for name, speed in rows:
        print(f"| {name} | {speed:,.1f} |")
    print(f"2 workers / 1 worker: {rows[2][1] / rows[1][1]:.2f}x")


if __name__ == "__main__":
    main()
