"""Image-quality flags on planted problems: recall per flag, and how many untouched
images get flagged.

    python benchmarks/bench_quality.py                   # flowers17 + 4 x 100 planted

100 flowers17 images (fixed seed) get each of four copies: blurred (Gaussian, radius 1.5 %
of the short side), darkened (brightness x 0.25), over-exposed (brightness x 2.5) and
flattened (contrast x 0.08, near uniform). The set is measured with
:func:`lookalike.measure.stats_of` and flagged with
:func:`lookalike.analyse.quality.flag_quality` at its defaults. Scored: the share of each
kind of planted copy that carries its flag (recall), and the share of the untouched
flowers17 images carrying any flag. ``--also scene15 dogs_vs_cats_2k`` measures those
sets untouched (flagged share only) as a check on data the flags were not looked at on.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from lookalike.analyse.quality import FLAGS, flag_quality
from lookalike.measure import stats_of

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PLANTS = {
    "blurry": lambda im: im.filter(ImageFilter.GaussianBlur(0.015 * min(im.size))),
    "dark": lambda im: ImageEnhance.Brightness(im).enhance(0.25),
    "overexposed": lambda im: ImageEnhance.Brightness(im).enhance(2.5),
    "low_information": lambda im: ImageEnhance.Contrast(im).enhance(0.08),
}


def images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--planted", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--also", nargs="*", default=["scene15", "dogs_vs_cats_2k"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lookalike-bench-quality"))
    args = parser.parse_args()
    originals = images(SHARED / "flowers17")
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(originals), args.planted, replace=False)
    planted: dict[str, list[Path]] = {}
    for flag, plant in PLANTS.items():
        folder = args.work / flag
        folder.mkdir(parents=True, exist_ok=True)
        planted[flag] = []
        for position in chosen.tolist():
            target = folder / f"{originals[position].stem}.jpg"
            if not target.exists():
                with Image.open(originals[position]) as image:
                    plant(image.convert("RGB")).save(target, quality=90)
            planted[flag].append(target)
    paths = originals + [p for flag in PLANTS for p in planted[flag]]
    start = time.perf_counter()
    stats, errors = stats_of(paths, [None] * len(paths), None)
    took = time.perf_counter() - start
    found = flag_quality(stats, np.arange(len(paths)), [str(p) for p in paths])
    print(f"{len(paths)} images measured in {took:.1f} s ({1000 * took / len(paths):.1f} ms "
          f"each), {len(errors)} errors")
    offset = len(originals)
    for flag in PLANTS:
        positions = set(range(offset, offset + args.planted))
        hit = positions & set(found.flags[flag].tolist())
        print(f"{flag}: recall {len(hit) / args.planted:.3f} ({len(hit)} of {args.planted})")
        offset += args.planted
    untouched = found.flagged() & set(range(len(originals)))
    print(f"untouched flowers17 flagged: {len(untouched)} of {len(originals)} "
          f"= {len(untouched) / len(originals):.3f}; by flag: " + ", ".join(
              f"{flag} {len(set(found.flags[flag].tolist()) & set(range(len(originals))))}"
              for flag in FLAGS))
    for name in args.also:
        paths = images(SHARED / name)
        stats, _ = stats_of(paths, [None] * len(paths), None)
        found = flag_quality(stats, np.arange(len(paths)), [str(p) for p in paths])
        print(f"{name} untouched: {len(found.flagged())} of {len(paths)} flagged "
              f"= {len(found.flagged()) / len(paths):.3f}; by flag: " + ", ".join(
                  f"{flag} {len(found.flags[flag])}" for flag in FLAGS))


if __name__ == "__main__":
    main()
