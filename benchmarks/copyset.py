"""The ~10k-image duplicate set for bench_fastdup.py, built from ../shared/data.

All of scene15 (4,485), flowers17 (1,360) and dogs_vs_cats_2k (2,000), plus 2,000 edited
copies: 1,000 originals drawn with a fixed seed, two copies each, edits dealt round-robin
(JPEG q25-60, crop 70-90 %, resize 35-70 %, flip, rotate 4-12° either way,
brightness/contrast, grey, caption, border, and pairs of these). ``groups.csv`` (file,
group, kind, edit) lists every file: group -1 and kind ``unplanted`` for the source files
that got no copy. The sources hold duplicates of their own (scene15 has pixel-identical
pairs), which these labels do not know about; bench_fastdup.py checks those by pixels.

``add_copies`` writes extra copies (the incremental-index step) into ``images/added/``;
``subset`` hard-links a fraction of the set, whole groups at a time, for growth timings.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

SOURCES = ("scene15", "flowers17", "dogs_vs_cats_2k")
ORIGINALS = 1000
COPIES_PER_ORIGINAL = 2
SEED = 0
EDIT_PLAN = ["jpeg", "crop", "crop+jpeg", "resize", "flip", "flip+bright", "rotate",
             "bright", "grey", "caption", "border", "caption+jpeg"]


def _jpeg(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(25, 61)))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    fraction = rng.uniform(0.7, 0.9)
    w, h = round(image.width * fraction), round(image.height * fraction)
    left = int(rng.integers(0, image.width - w + 1))
    top = int(rng.integers(0, image.height - h + 1))
    return image.crop((left, top, left + w, top + h))


def _resize(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    scale = rng.uniform(0.35, 0.7)
    size = (max(16, round(image.width * scale)), max(16, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _rotate(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    angle = float(rng.choice([-1, 1]) * rng.uniform(4, 12))
    return image.rotate(angle, resample=Image.Resampling.BILINEAR)


def _bright(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    brighter = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.35))
    return ImageEnhance.Contrast(brighter).enhance(rng.uniform(0.75, 1.25))


def _caption(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    image = image.copy()
    size = max(10, image.height // 12)
    font = ImageFont.load_default(size=size)
    y = int(rng.integers(0, max(1, image.height - size - 2)))
    ImageDraw.Draw(image).text((image.width // 20, y), "holiday 2026 (c) lookalike",
                               fill=(255, 255, 255), font=font, stroke_width=1,
                               stroke_fill=(0, 0, 0))
    return image


def _border(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    fill = (0, 0, 0) if rng.random() < 0.5 else (255, 255, 255)
    return ImageOps.expand(image, border=max(image.size) // int(rng.integers(10, 20)),
                           fill=fill)


STEPS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "jpeg": _jpeg,
    "crop": _crop,
    "resize": _resize,
    "flip": lambda image, rng: ImageOps.mirror(image),
    "rotate": _rotate,
    "bright": _bright,
    "grey": lambda image, rng: ImageOps.grayscale(image).convert("RGB"),
    "caption": _caption,
    "border": _border,
}


def edited_copy(source: Path, target: Path, edit: str, rng: np.random.Generator) -> None:
    """Write ``source`` with ``edit`` ("crop+jpeg": crop, then JPEG) to ``target``."""
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    for step in edit.split("+"):
        image = STEPS[step](image, rng)
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, "JPEG", quality=95)


def _source_files(data: Path) -> list[str]:
    return sorted(str(p.relative_to(data)) for name in SOURCES
                  for p in (data / name).rglob("*") if p.is_file())


def build(data: Path, root: Path) -> Path:
    """Build the set under ``root`` (reused when already built with these settings)."""
    settings = {"sources": list(SOURCES), "originals": ORIGINALS,
                "copies": COPIES_PER_ORIGINAL, "seed": SEED, "plan": EDIT_PLAN, "version": 1}
    stamp = root / "built.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == settings:
        return root
    shutil.rmtree(root, ignore_errors=True)
    images = root / "images"
    files = _source_files(data)
    for name in files:
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / name, images / name)
    rng = np.random.default_rng(SEED)
    chosen = sorted(rng.choice(len(files), size=ORIGINALS, replace=False).tolist())
    rows = {name: (-1, "unplanted", "") for name in files}
    dealt = 0
    for group, position in enumerate(chosen):
        rows[files[position]] = (group, "original", "")
        for _ in range(COPIES_PER_ORIGINAL):
            edit = EDIT_PLAN[dealt % len(EDIT_PLAN)]
            copy = f"copies/c{dealt:05d}.jpg"
            edited_copy(data / files[position], images / copy, edit, rng)
            rows[copy] = (group, "copy", edit)
            dealt += 1
    _write_groups(root / "groups.csv", rows)
    stamp.write_text(json.dumps(settings))
    return root


def _write_groups(path: Path, rows: dict[str, tuple[int, str, str]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "group", "kind", "edit"])
        writer.writerows([name, *row] for name, row in sorted(rows.items()))


def add_copies(images: Path, unplanted: Sequence[str], count: int, seed: int = 1
               ) -> list[tuple[str, str, str]]:
    """Write ``count`` edited copies of files drawn from ``unplanted`` (each at most once)
    into ``images/added/``; (copy, original, edit) rows, relative to ``images``."""
    rng = np.random.default_rng(seed)
    drawn = rng.choice(len(unplanted), min(count, len(unplanted)), replace=False)
    originals = [unplanted[p] for p in sorted(drawn)]
    added = []
    for n, original in enumerate(originals):
        edit = EDIT_PLAN[n % len(EDIT_PLAN)]
        copy = f"added/a{n:04d}.jpg"
        edited_copy(images / original, images / copy, edit, rng)
        added.append((copy, original, edit))
    return added


def remove_added(images: Path) -> None:
    shutil.rmtree(images / "added", ignore_errors=True)


def subset(root: Path, size: int, target: Path, seed: int = 2) -> Path:
    """Hard-link about ``size`` files of the set into ``target``: whole planted groups
    and unplanted files in the set's proportions, so duplicate density stays the same."""
    rows = list(csv.DictReader(open(root / "groups.csv", newline="")))
    fraction = size / len(rows)
    rng = np.random.default_rng(seed)
    groups = sorted({int(row["group"]) for row in rows if int(row["group"]) >= 0})
    kept_groups = set(rng.choice(groups, round(len(groups) * fraction), replace=False).tolist())
    unplanted = [row["file"] for row in rows if int(row["group"]) < 0]
    kept = {unplanted[p] for p in rng.choice(len(unplanted), round(len(unplanted) * fraction),
                                             replace=False)}
    kept |= {row["file"] for row in rows if int(row["group"]) in kept_groups}
    if (target / "files.json").is_file() and json.loads(
            (target / "files.json").read_text()) == sorted(kept):
        return target / "images"
    shutil.rmtree(target, ignore_errors=True)
    for name in sorted(kept):
        destination = target / "images" / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(root / "images" / name, destination)
        except OSError:
            shutil.copyfile(root / "images" / name, destination)
    (target / "files.json").write_text(json.dumps(sorted(kept)))
    return target / "images"
