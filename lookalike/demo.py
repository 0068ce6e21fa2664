"""Sample photos for ``make run``: scikit-image's bundled pictures plus edited copies.

    python -m lookalike.demo OUT_DIR

writes ``OUT_DIR/photos`` (originals, a few edited copies and two broken files, so the
run shows how bad input is reported) and ``OUT_DIR/queries`` (edited copies that are not
in the collection, to search with).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

SAMPLES = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "colorwheel",
    "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina",
    "rocket", "stereo_motorcycle", "text", "cell", "checkerboard",
)


def sample_images() -> dict[str, Image.Image]:
    """The pictures that ship inside scikit-image (no download needed)."""
    from skimage import data

    images = {}
    for name in SAMPLES:
        pixels = getattr(data, name)()
        pixels = pixels[0] if isinstance(pixels, tuple) else pixels
        image = Image.fromarray(np.asarray(pixels))
        images[name] = image.convert("RGB")
    return images


def edits(image: Image.Image) -> dict[str, Image.Image]:
    """Typical near-duplicate edits of one photo."""
    width, height = image.size
    return {
        "crop": image.crop((width // 10, height // 10, width - width // 10, height - height // 8)),
        "flip": ImageOps.mirror(image),
        "small": image.resize((width // 3, height // 3), Image.Resampling.BILINEAR),
        "bright": ImageEnhance.Brightness(image).enhance(1.3),
    }


def make_sample_photos(out: Path) -> tuple[Path, Path]:
    photos, queries = out / "photos", out / "queries"
    photos.mkdir(parents=True, exist_ok=True)
    queries.mkdir(parents=True, exist_ok=True)
    images = sample_images()
    for name, image in images.items():
        image.save(photos / f"{name}.jpg", quality=92)
    for name in ("chelsea", "coffee", "rocket"):
        for edit, copy in edits(images[name]).items():
            if edit in ("crop", "flip"):
                copy.save(photos / f"{name}-{edit}.jpg", quality=85)
    for name in ("astronaut", "coffee", "stereo_motorcycle"):
        copy = edits(images[name])["crop"]
        ImageOps.mirror(copy).save(queries / f"{name}-crop-flip.jpg", quality=80)
    (photos / "notes.jpg").write_text("this is a text file with an image name\n")
    whole = (photos / "astronaut.jpg").read_bytes()
    (photos / "astronaut-truncated.jpg").write_bytes(whole[: len(whole) // 3])
    return photos, queries


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m lookalike.demo OUT_DIR", file=sys.stderr)
        return 2
    photos, queries = make_sample_photos(Path(argv[0]))
    print(f"sample photos in {photos}, queries in {queries}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
