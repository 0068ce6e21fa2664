"""GPU indexing throughput: JPEG files on disk -> stored float16 embeddings, against the
model-only rate, in one process (issue: >= 8,000 images/s end to end with dinov2-small on
one H100 over >= 100k 1024 x 768 JPEGs, and >= 60 % of the model-only rate).

    python benchmarks/bench_gpu.py --images 100000 --model dinov2-small      # on a GPU
    python benchmarks/bench_gpu.py --images 256 --model timm:resnet10t --device cpu  # smoke

Random-init weights (throughput only). Makes ``--images`` JPEGs of 1024 x 768 (random
noise under a smooth gradient, about 100 kB each, like photos) once into ``--work``,
measures the model alone on device-resident batches (bf16, channels-last), then indexes the
folder with ``Collection.index_folder`` (device JPEG decode when on CUDA), sampling GPU
utilisation with nvidia-smi while it runs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike import Collection
from lookalike.decode import parallel_ordered
from lookalike.embed.torch_hub import load_torch_backbone


def make_jpegs(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    have = len(list(folder.glob("*.jpg")))
    if have >= count:
        return
    ramp = np.linspace(0, 200, 1024, dtype=np.float32)[None, :, None]

    def make(number: int) -> None:
        rng = np.random.default_rng(number)  # one per image: threads share no generator
        noise = rng.integers(0, 56, (768, 1024, 3), dtype=np.uint8)
        pixels = np.clip(ramp + noise + (number % 50), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{number:07d}.jpg", quality=85)

    for outcome in parallel_ordered(make, range(have, count)):
        assert outcome.error is None, outcome.error


def model_only_rate(backbone, batch: int, seconds: float = 10.0) -> float:
    import torch

    pixels = torch.randn(batch, 3, backbone.spec.size, backbone.spec.size,
                         device=backbone.device)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        backbone.embed_tensor(pixels)  # what the pipeline calls: bf16, channels-last
        done += batch
    return done / (time.perf_counter() - started)


def gpu_utilisation(stop: threading.Event, samples: list[int]) -> None:
    while not stop.is_set():
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=5).stdout.split()
            samples.append(int(out[0]))
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return
        stop.wait(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--model", default="dinov2-small")
    parser.add_argument("--device", default=None, help="default: cuda if available")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--workers", type=int, default=None, help="file-reading threads")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lookalike-bench-gpu"))
    args = parser.parse_args()
    images = args.work / "images"
    started = time.perf_counter()
    make_jpegs(images, args.images)
    print(f"{args.images} JPEGs ready in {time.perf_counter() - started:.0f} s", flush=True)
    backbone = load_torch_backbone(args.model, pretrained=False, device=args.device)
    model_rate = model_only_rate(backbone, args.batch)
    print(f"model only ({backbone.device}, batch {args.batch}): {model_rate:,.0f} images/s",
          flush=True)
    shutil.rmtree(images / ".lookalike", ignore_errors=True)
    stop, samples = threading.Event(), []
    watcher = threading.Thread(target=gpu_utilisation, args=(stop, samples), daemon=True)
    watcher.start()
    _, report = Collection.index_folder(images, model=args.model, pretrained=False,
                                        batch_size=args.batch, workers=args.workers)
    stop.set()
    rate = report.embed.images_per_second
    print(f"end to end: {report.embed.embedded} images in {report.embed.seconds:.1f} s = "
          f"{rate:,.0f} images/s ({rate / model_rate:.0%} of model-only)")
    if samples:
        print(f"GPU utilisation: mean {np.mean(samples):.0f} %, median "
              f"{np.median(samples):.0f} % over {len(samples)} samples")


if __name__ == "__main__":
    main()
