"""A textured synthetic photo and the edited copies a keeper must not prefer, as files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

SIZE = (320, 240)


def photo(seed: int = 3, size: tuple[int, int] = SIZE) -> Image.Image:
    """Colour texture at several scales over a gradient, spanning levels 0-255 with a few
    pixels at each end and no clipped area: detail up to the pixel, like a camera photo."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = np.zeros((height, width, 3))
    for scale, weight in ((32, 1.0), (8, 0.6), (2, 0.35), (1, 0.25)):
        coarse = rng.normal(size=(height // scale + 1, width // scale + 1, 3))
        layer = np.asarray(Image.fromarray(coarse.astype(np.float32)[..., 0], "F").resize(
            (width, height), Image.Resampling.BICUBIC))[..., None] * np.ones(3)
        tint = rng.normal(size=(1, 1, 3)) * 0.3 + 1.0
        pixels += weight * layer * tint
    pixels += np.linspace(-1.0, 1.0, width)[None, :, None] * np.array([1.0, 0.2, -0.6])
    low, high = np.percentile(pixels, [0.05, 99.95])
    pixels = np.clip((pixels - low) / (high - low) * 255.0, 0, 255)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


EDITS = {
    "border": lambda image: ImageOps.expand(image, border=max(image.size) // 12, fill=(0, 0, 0)),
    "upscaled": lambda image: image.resize((image.width * 2, image.height * 2),
                                           Image.Resampling.BICUBIC),
    "brightened": lambda image: ImageEnhance.Brightness(image).enhance(1.4),
    "darkened": lambda image: ImageEnhance.Brightness(image).enhance(0.7),
    "blurred": lambda image: image.filter(ImageFilter.GaussianBlur(3)),
    "grey": lambda image: ImageOps.grayscale(image).convert("RGB"),
    "rotated": lambda image: image.rotate(8, resample=Image.Resampling.BILINEAR),
    "downscaled": lambda image: image.resize((image.width // 2, image.height // 2),
                                             Image.Resampling.LANCZOS),
}


def save(image: Image.Image, path: Path, quality: int = 92,
         camera: tuple[str, str] | None = None, captured: datetime | None = None) -> Path:
    """Write ``image`` as a JPEG (PNG for a ``.png`` path), with EXIF camera and date."""
    if path.suffix == ".png":
        image.save(path)
        return path
    exif = Image.Exif()
    if camera:
        exif[0x010F], exif[0x0110] = camera
    if captured:
        exif.get_ifd(0x8769)[0x9003] = captured.strftime("%Y:%m:%d %H:%M:%S")
    image.save(path, "JPEG", quality=quality, exif=exif.tobytes())
    return path


def planted(folder: Path, *edits: str, seed: int = 3) -> dict[str, Path]:
    """The photo saved as ``original.jpg`` (quality 92) and each named edit of it
    (``EDITS``, or ``jpeg20``: the photo re-encoded at quality 20), as files."""
    image = photo(seed)
    paths = {"original": save(image, folder / "original.jpg")}
    for edit in edits:
        if edit == "jpeg20":
            paths[edit] = save(image, folder / "jpeg20.jpg", quality=20)
        else:
            paths[edit] = save(EDITS[edit](image), folder / f"{edit}.jpg")
    return paths
