"""Shared fixtures: generated images with known structure, and paths to ../shared."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# annoy is an extra (source-only on the registry): its tests run where it is installed
requires_annoy = pytest.mark.skipif(importlib.util.find_spec("annoy") is None,
                                    reason="annoy is not installed: pip install "
                                    "'lookalike[annoy]'")
ANNOY = pytest.param("annoy", marks=requires_annoy)


def index_kind(kind: str, *values: object) -> object:
    """A parametrize entry ``(kind, *values)``; annoy's skips where annoy is absent."""
    return pytest.param(kind, *values, marks=[requires_annoy] if kind == "annoy" else [])


def scene(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A synthetic photo: a colour gradient background and random filled shapes.

    Different seeds give clearly different pictures; crops, flips and re-encodes of one
    seed stay recognisably the same picture.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    pixels = (top * (1 - ramp) + bottom * ramp) * np.ones((1, width, 1))
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x0, y0 = rng.integers(0, width - 40), rng.integers(0, height - 40)
        x1, y1 = x0 + rng.integers(20, width // 2), y0 + rng.integers(20, height // 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    return image


def crop(image: Image.Image, fraction: float = 0.85) -> Image.Image:
    width, height = image.size
    dx, dy = int(width * (1 - fraction) / 2), int(height * (1 - fraction) / 2)
    return image.crop((dx, dy, width - dx, height - dy))


def flip(image: Image.Image) -> Image.Image:
    return ImageOps.mirror(image)


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """Eight distinct scenes plus a crop and a flip of scenes 0 and 1."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for seed in range(8):
        scene(seed).save(folder / f"scene{seed}.jpg", quality=90)
    crop(scene(0)).save(folder / "sub" / "scene0-crop.jpg", quality=90)
    flip(scene(1)).save(folder / "sub" / "scene1-flip.png")
    return folder


@pytest.fixture
def labelled_folders(tmp_path: Path) -> tuple[Path, Path]:
    """A planted labelled collection and query folder: classes ``a`` (scene 0 and its
    crop and flip) and ``b`` (scene 1 and its crop and flip); queries ``a/q0`` and ``b/q1``
    (crops of their class's scene), ``b/wrong`` (a crop of scene 0 filed under ``b``) and
    a loose ``loose.jpg`` without a class. Not indexed."""
    folder, queries = tmp_path / "rooms", tmp_path / "queries"
    for name, seed in (("a", 0), ("b", 1)):
        (folder / name).mkdir(parents=True)
        (queries / name).mkdir(parents=True)
        scene(seed).save(folder / name / "scene.jpg", quality=90)
        crop(scene(seed)).save(folder / name / "crop.jpg", quality=90)
        flip(scene(seed)).save(folder / name / "flip.png")
        crop(scene(seed), 0.9).save(queries / name / f"q{seed}.jpg", quality=90)
    crop(scene(0), 0.9).save(queries / "b" / "wrong.jpg", quality=90)
    crop(scene(1), 0.9).save(queries / "loose.jpg", quality=90)
    return folder, queries


@contextmanager
def in_memory(folder: Path) -> Iterator[str]:
    """``folder`` copied to fsspec's in-memory filesystem, as its URL (what ``s3://...``
    is to lookalike: a remote root read through fsspec); removed on exit."""
    top = f"/{uuid.uuid4().hex}"
    memory = fsspec.filesystem("memory")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            memory.pipe(f"{top}/{folder.name}/{path.relative_to(folder).as_posix()}",
                        path.read_bytes())
    try:
        yield f"memory://{top}/{folder.name}"
    finally:
        memory.rm(top, recursive=True)


@pytest.fixture
def remote_folder(photo_folder: Path) -> Iterator[str]:
    """``photo_folder`` on the in-memory fsspec filesystem, removed afterwards."""
    with in_memory(photo_folder) as url:
        yield url


def shared_model(name: str) -> Path:
    path = SHARED / "models" / name / "model.onnx"
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is only on the project's machines)")
    return path


@pytest.fixture(autouse=True)
def no_model_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches the real model hub: ``auto`` falls back to the bundled model at once
    instead of probing and downloading. Tests of the download itself delete the variable
    and point the hub client at a local fake hub (tests/embed/test_download.py)."""
    monkeypatch.setenv("LOOKALIKE_NO_DOWNLOAD", "1")
