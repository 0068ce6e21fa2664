"""Index throughput: lookalike's pipeline against a naive loop, in the same process.

    python benchmarks/bench_index.py                       # flowers17 + scene15, both models
    python benchmarks/bench_index.py --datasets flowers17 --models classic

Figures printed:
* decode-only, images/s: plain Pillow decode vs lookalike's decode (JPEG ``draft()``), on
  the dataset and on full-size (12 MP) JPEGs made from it;
* decode+embed, images/s: the naive baseline (decode each file on the main thread, then
  the model per batch of 32) vs ``Collection.index_folder`` (threaded decode overlapping
  the model, SQLite + float16 store, index build), and their ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike import Collection, load_backbone
from lookalike.decode import decode_file, parallel_ordered
from lookalike.discover import discover
from lookalike.embed.onnx import load_onnx
from lookalike.embed.torch_hub import cpu_bf16_default

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = {
    "mobilenetv2-int8": f"onnx:{SHARED / 'models/mobilenetv2-int8/model.onnx'}",
    "classic": "classic",
    # random weights: the scale issue's throughput model, same cost as the pretrained one
    "dinov2-small": "dinov2-small",
}
RANDOM_INIT = {"dinov2-small"}


def dataset_files(name: str, limit: int | None) -> list[Path]:
    root = SHARED / "data" / name
    files = [root / c.path for c in discover(root) if c.reason is None]
    return files[:limit] if limit else files


def plain_decode(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("nan")


def bench_decode(files: list[Path], min_side: int) -> tuple[float, float]:
    started = time.perf_counter()
    for path in files:
        plain_decode(path)
    plain = rate(len(files), time.perf_counter() - started)
    started = time.perf_counter()
    for outcome in parallel_ordered(lambda p: decode_file(p, min_side=min_side), files):
        assert outcome.error is None, outcome.error
    ours = rate(len(files), time.perf_counter() - started)
    return plain, ours


def bench_decode_single_thread(files: list[Path], min_side: int) -> float:
    started = time.perf_counter()
    for path in files:
        decode_file(path, min_side=min_side)
    return rate(len(files), time.perf_counter() - started)


def naive_embed(files: list[Path], spec: str, cpu_bf16: bool | None = None) -> float:
    """The plain loop, with the model at its best sequential speed (every core per call).

    ``cpu_bf16`` (torch models): False is the loop a user writes (fp32, torch's default);
    None leaves lookalike's choice, so the ratio isolates the pipeline.
    """
    if spec.startswith("onnx:"):
        backbone = load_onnx(spec[len("onnx:"):], threads=os.cpu_count())
    else:
        backbone = load_backbone(spec, pretrained=spec not in RANDOM_INIT)
        if cpu_bf16 is not None and hasattr(backbone, "cpu_bf16"):
            backbone.cpu_bf16 = cpu_bf16
    started = time.perf_counter()
    batch: list[np.ndarray] = []
    for path in files:
        batch.append(backbone.preprocess(plain_decode(path)))
        if len(batch) == 32:
            backbone.embed(np.stack(batch))
            batch = []
    if batch:
        backbone.embed(np.stack(batch))
    return rate(len(files), time.perf_counter() - started)


def lookalike_embed(files: list[Path], spec: str, work: Path) -> float:
    folder = work / "collection"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for position, path in enumerate(files):
        (folder / f"{position:05d}{path.suffix}").symlink_to(path)
    started = time.perf_counter()
    _, report = Collection.index_folder(folder, model=spec, pretrained=spec not in RANDOM_INIT)
    seconds = time.perf_counter() - started
    assert report.embed.embedded == len(files), report.skipped
    return rate(len(files), seconds)


def full_size_jpegs(files: list[Path], work: Path, count: int) -> list[Path]:
    """12-MP JPEGs (4032 x 3024) upscaled from real photos: what a phone writes."""
    out = work / "fullsize"
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for position, path in enumerate(files[:count]):
        target = out / f"{position:04d}.jpg"
        plain_decode(path).resize((4032, 3024), Image.Resampling.BICUBIC).save(target,
                                                                             quality=90)
        made.append(target)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["flowers17", "scene15"])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--limit", type=int, default=None, help="files per dataset")
    parser.add_argument("--fullsize", type=int, default=60, help="12-MP JPEGs to make")
    args = parser.parse_args()
    if not SHARED.exists():
        raise SystemExit(f"{SHARED} is missing: the benchmark needs the shared datasets")
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        for dataset in args.datasets:
            files = dataset_files(dataset, args.limit)
            plain, ours = bench_decode(files, 256)
            rows.append((dataset, "decode only", "-", f"{plain:.1f}", f"{ours:.1f}",
                         f"{ours / plain:.2f}x"))
            print(rows[-1], flush=True)
            if dataset == args.datasets[0] and args.fullsize:
                big = full_size_jpegs(files, work, args.fullsize)
                plain, ours = bench_decode(big, 256)
                single = bench_decode_single_thread(big, 256)
                rows.append(("12-MP JPEGs", "decode only", "-", f"{plain:.1f}", f"{ours:.1f}",
                             f"{ours / plain:.2f}x"))
                rows.append(("12-MP JPEGs", "decode, draft only, 1 thread", "-",
                             f"{plain:.1f}", f"{single:.1f}", f"{single / plain:.2f}x"))
                print(rows[-2:], flush=True)
            for model in args.models:
                naive = naive_embed(files, MODELS[model], cpu_bf16=False)
                ours = lookalike_embed(files, MODELS[model], work)
                rows.append((dataset, "decode+embed", model, f"{naive:.1f}", f"{ours:.1f}",
                             f"{ours / naive:.2f}x"))
                print(rows[-1], flush=True)
                if model in RANDOM_INIT and cpu_bf16_default():
                    same = naive_embed(files, MODELS[model])
                    rows.append((dataset, "decode+embed, naive also bf16", model,
                                 f"{same:.1f}", f"{ours:.1f}", f"{ours / same:.2f}x"))
                    print(rows[-1], flush=True)
    print("\n| data | stage | model | naive images/s | lookalike images/s | ratio |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
