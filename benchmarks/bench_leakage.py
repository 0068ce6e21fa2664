"""Leakage between splits: planted edited copies of train images in test, found by
``lookalike leakage``.

    python benchmarks/bench_leakage.py                 # flowers17, 60 planted copies

flowers17 is split into two halves per class with a fixed seed (``train/``, ``test/``);
60 train images (fixed seed) get one edited copy each in ``test/`` (JPEG q30-60, crop
75-90 %, flip, rotate 5-10°, brightness, border, caption, resize, in turn). The set is
indexed with the default model and ``lookalike leakage --json --manifest`` runs at its
defaults. Scored: recall of the 60 planted cross pairs among the exact + edited-copy
pairs, precision of those pairs (pairs between two unplanted files are flowers17's own
duplicates: counted apart, with their pixel evidence), and the straddling groups left in
the written manifest (must be 0).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers17"
LOOKALIKE = Path(sys.executable).with_name("lookalike")
EDITS = ("jpeg", "crop", "flip", "rotate", "bright", "border", "caption", "resize")


def edited(image: Image.Image, edit: str, rng: np.random.Generator) -> Image.Image:
    w, h = image.size
    if edit == "crop":
        f = rng.uniform(0.75, 0.9)
        left, top = int(rng.integers(0, w - w * f + 1)), int(rng.integers(0, h - h * f + 1))
        return image.crop((left, top, left + round(w * f), top + round(h * f)))
    if edit == "flip":
        return ImageOps.mirror(image)
    if edit == "rotate":
        return image.rotate(float(rng.choice([-1, 1]) * rng.uniform(5, 10)), expand=False)
    if edit == "bright":
        return ImageEnhance.Contrast(ImageEnhance.Brightness(image).enhance(
            rng.uniform(1.2, 1.4))).enhance(rng.uniform(0.8, 1.2))
    if edit == "border":
        return ImageOps.expand(image, border=int(0.08 * max(w, h)), fill=(255, 255, 255))
    if edit == "caption":
        out = image.copy()
        ImageDraw.Draw(out).rectangle((0, int(h * 0.85), w, h), fill=(0, 0, 0))
        ImageDraw.Draw(out).text((10, int(h * 0.88)), "holiday 2019", fill=(255, 255, 255))
        return out
    if edit == "resize":
        return image.resize((round(w * 0.5), round(h * 0.5)))
    return image  # jpeg: the quality is set when saving


def build(work: Path, planted: int, seed: int) -> tuple[Path, dict[str, str]]:
    """The split folder and {test copy path: train original path}."""
    folder = work / "flowers17-splits"
    if folder.exists():
        shutil.rmtree(folder)
    rng = np.random.default_rng(seed)
    train: list[str] = []
    for class_dir in sorted(p for p in SHARED.iterdir() if p.is_dir()):
        files = sorted(class_dir.iterdir())
        chosen = set(rng.permutation(len(files))[: len(files) // 2].tolist())
        for position, file in enumerate(files):
            split = "train" if position in chosen else "test"
            target = folder / split / class_dir.name / file.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
            if split == "train":
                train.append(target.relative_to(folder).as_posix())
    copies: dict[str, str] = {}
    for number, position in enumerate(rng.choice(len(train), planted, replace=False)):
        original = train[int(position)]
        edit = EDITS[number % len(EDITS)]
        with Image.open(folder / original) as image:
            copy = edited(image.convert("RGB"), edit, rng)
        name = f"test/{Path(original).parent.name}/copy_{number:03d}_{edit}.jpg"
        copy.save(folder / name, quality=int(rng.integers(30, 61)) if edit == "jpeg" else 90)
        copies[name] = original
    return folder, copies


def mean_difference(a: Path, b: Path) -> float:
    with Image.open(a) as first, Image.open(b) as second:
        x = np.asarray(first.convert("L").resize((64, 64)), dtype=np.float32)
        y = np.asarray(second.convert("L").resize((64, 64)), dtype=np.float32)
    return float(np.abs(x - y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--planted", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lookalike-bench-leakage"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    folder, copies = build(args.work, args.planted, args.seed)
    start = time.perf_counter()
    subprocess.run([LOOKALIKE, "index", folder], check=True, capture_output=True)
    indexed = time.perf_counter() - start
    manifest = args.work / "splits.csv"
    manifest.unlink(missing_ok=True)  # the benchmark's own output of an earlier run
    start = time.perf_counter()
    result = subprocess.run([LOOKALIKE, "leakage", "--db", folder, "--json", "--manifest",
                             manifest], check=True, capture_output=True, text=True)
    took = time.perf_counter() - start
    found = json.loads(result.stdout)
    planted = {frozenset(pair) for pair in copies.items()}
    pairs = [p for p in found["pairs"] if p["tier"] in ("exact", "edited")]
    similar = [p for p in found["pairs"] if p["tier"] == "similar"]
    keyed = {frozenset((p["path_a"], p["path_b"])): p for p in pairs}
    hits = planted & set(keyed)
    touching = [k for k in keyed if k & set(copies)]
    unplanted = [k for k in keyed if not k & set(copies)]
    wrong = [k for k in touching if k not in planted]
    precision = len(hits) / max(len(touching), 1)
    print(f"flowers17 halves (seed {args.seed}), {len(copies)} planted copies in test/")
    print(f"index {indexed:.1f} s, leakage {took:.1f} s")
    print(f"planted cross pairs found (exact + edited): {len(hits)} of {len(planted)} "
          f"= recall {len(hits) / len(planted):.3f}")
    print(f"pairs touching a planted copy: {len(touching)}, of them planted: {len(hits)} "
          f"= precision {precision:.3f}")
    for pair in wrong:  # the copy's original may itself have a twin in flowers17
        copy = next(p for p in pair if p in copies)
        other = next(p for p in pair if p != copy)
        print(f"  not planted: {copy} ~ {other}; its original {copies[copy]} vs {other}: "
              f"pixel difference {mean_difference(folder / copies[copy], folder / other):.1f}")
    print(f"cross pairs between unplanted files (flowers17's own duplicates): "
          f"{len(unplanted)}; mean absolute pixel difference at 64x64: "
          + ", ".join(f"{mean_difference(*(folder / p for p in sorted(k))):.1f}"
                      for k in unplanted))
    print(f"similar-shot cross pairs listed apart: {len(similar)}")
    missed = [pair for pair in planted if pair not in keyed]
    print("missed: " + ", ".join(" ~ ".join(sorted(k)) for k in missed))
    splits = {row["path"]: row["split"] for row in csv.DictReader(manifest.open())}
    straddling = sum(splits[a] != splits[b] for a, b in (tuple(sorted(k)) for k in keyed))
    print(f"manifest: {len(splits)} files, {found['files_to_move']} change split, "
          f"duplicate pairs still straddling: {straddling}")


if __name__ == "__main__":
    main()
