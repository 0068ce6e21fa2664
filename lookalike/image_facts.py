"""Per-image evidence for choosing which copy of a picture to keep.

Every copy of a photo that an editor, a messenger or a website made has lost something
the camera's file had: pixels padded with a frame, detail smoothed by an upscale or a
blur, tones clipped by a brightness or contrast change, quality spent on a harsher JPEG
re-encode, colour, or the camera's own metadata. :func:`image_facts` measures each of
these from one file; :mod:`lookalike.analyse.keeper` weighs them. Only the members of
duplicate groups are inspected, so the cost is per group member, not per collection.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from PIL import Image

from .decode import FilePath, Outcome, decode_bytes, parallel_ordered, read_file
from .discover import is_raw
from .embed.augment import border_box

# Fine detail is measured at the file's own resolution (an upscale shows only there), up
# to a short side of this: larger JPEGs are DCT-downscaled by the decoder (draft).
DETAIL_SIDE = 3000
# Margins are found on a copy of at most this many pixels a side (a fraction is wanted),
# tones, colour and corners on one of at most STATS_SIDE.
BORDER_SIDE = 256
STATS_SIDE = 1024
# Sharpness is measured at one scale for every copy, so that a downscaled copy and its
# original are compared on the same picture size.
SHARPNESS_SIDE = 256
# The spectrum of the central square of at most this side gives the detail evidence.
SPECTRUM_SIDE = 512
# Corners: a square of this share of the short side; flat within this many levels.
CORNER, CORNER_TOLERANCE = 0.02, 12
# Tonal extremes ignore this share of the values at each end (noise, specks).
TRIM = 0.001
# Clipped highlights: values within this many levels of a channel's top (JPEG noise
# spreads a clipped, flat area over a few levels).
PILE_LEVELS = 3
# IJG's standard luminance quantisation table (JPEG Annex K), as a sum over its 64 steps:
# libjpeg and Pillow scale it by the quality setting, so the ratio gives the quality back.
_STANDARD_LUMA_SUM = 3_688


@dataclass(frozen=True)
class ImageFacts:
    """What one file says about how close it is to the camera's original.

    * ``width``, ``height``: upright pixels of the file; ``file_size``: bytes.
    * ``border_fraction``: share of the area in near-uniform margins (a frame or padding).
    * ``jpeg_quality``: estimated IJG quality (1-100) from the luminance quantisation
      table; ``None`` when the file is not a JPEG.
    * ``top_band_energy``: share of the spectral energy (above the lowest frequencies) in
      the upper half of the frequency band (:func:`top_band_energy`). A camera photo has
      real detail there; an upscaled or blurred image has almost none.
    * ``sharpness``: variance of the Laplacian at a short side of ``SHARPNESS_SIDE``.
    * ``filled_corners``: how many corners (0-4) of the image are flat, as a rotation
      without a crop (or a frame) leaves them.
    * ``highlights_clipped``: share of the pixels (inside any border) piled up at the
      top of a channel's values: brightening or raising contrast clips highlights there.
    * ``darkest``, ``lightest``: the levels (0-255) that the pixels' values span, less
      0.1 % at each end. A camera's tone curve spans about the whole scale; darkening
      or lowering contrast narrows it.
    * ``colourfulness``: mean chroma (0-255); about 0 for a greyscale picture.
    * ``camera``: EXIF make and model (``""`` when absent); ``captured``: EXIF
      DateTimeOriginal, or ``None``.
    """

    width: int
    height: int
    file_size: int
    border_fraction: float
    jpeg_quality: int | None
    top_band_energy: float
    sharpness: float
    filled_corners: int
    highlights_clipped: float
    darkest: int
    lightest: int
    colourfulness: float
    camera: str
    captured: datetime | None

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def tonal_range(self) -> int:
        return self.lightest - self.darkest

    @property
    def content_pixels(self) -> int:
        """Pixels inside the border: what the picture itself occupies."""
        return round(self.pixels * (1.0 - self.border_fraction))


def image_facts(path: FilePath) -> ImageFacts:
    """The :class:`ImageFacts` of one file; a bad file raises
    :class:`~lookalike.decode.DecodeError`."""
    data = read_file(path)
    raw = is_raw(path)
    decoded = decode_bytes(data, min_side=DETAIL_SIDE, raw=raw)
    camera, captured, quality = "", None, None
    if not raw:  # libraw gives no header here; the pixels are still measured
        with Image.open(io.BytesIO(data)) as header:  # decoded above: metadata only
            camera, captured = _camera_and_date(header)
            quality = jpeg_quality(header) if decoded.format in ("JPEG", "MPO") else None
    image = decoded.image
    box = content_box(image)
    picture = image.crop(box)
    grey = picture.convert("L")
    sample = np.asarray(_at_most(picture, STATS_SIDE))
    darkest, lightest = tonal_extent(sample)
    return ImageFacts(
        width=decoded.width,
        height=decoded.height,
        file_size=len(data),
        border_fraction=round(1.0 - picture.width * picture.height
                              / (image.width * image.height), 4),
        jpeg_quality=quality,
        top_band_energy=top_band_energy(np.asarray(_central(grey, SPECTRUM_SIDE),
                                                   dtype=np.float32)),
        sharpness=sharpness(np.asarray(_reduced(grey, SHARPNESS_SIDE), dtype=np.float32)),
        filled_corners=filled_corners(np.asarray(_at_most(image, STATS_SIDE))),
        highlights_clipped=clipped_highlights(sample),
        darkest=darkest,
        lightest=lightest,
        colourfulness=colourfulness(sample),
        camera=camera,
        captured=captured,
    )


def image_facts_many(
    paths: Iterable[FilePath], workers: int | None = None
) -> Iterator[Outcome[FilePath, ImageFacts]]:
    """:func:`image_facts` of each path, in parallel, in input order; a bad file is an
    outcome with ``error`` set, never an exception."""
    return parallel_ordered(image_facts, paths, workers=workers)


def content_box(image: Image.Image) -> tuple[int, int, int, int]:
    """The picture inside any uniform margins (:func:`~lookalike.embed.augment.border_box`),
    found on a copy of at most ``BORDER_SIDE`` pixels a side and scaled back."""
    small = _at_most(image, BORDER_SIDE)
    step_x, step_y = image.width / small.width, image.height / small.height
    left, top, right, bottom = border_box(np.asarray(small))
    return (round(left * step_x), round(top * step_y), min(image.width, round(right * step_x)),
            min(image.height, round(bottom * step_y)))


def _central(image: Image.Image, side: int) -> Image.Image:
    """The central square of ``image`` of at most ``side`` pixels a side."""
    side = min(side, *image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _reduced(image: Image.Image, short_side: int) -> Image.Image:
    """``image`` box-reduced by a whole factor to a short side still >= ``short_side``."""
    factor = min(image.size) // short_side
    return image.reduce(factor) if factor > 1 else image


def _at_most(image: Image.Image, side: int) -> Image.Image:
    """``image`` box-reduced by a whole factor to at most about ``side`` pixels a side."""
    factor = math.ceil(max(image.size) / side)
    return image.reduce(factor) if factor > 1 else image


# -- measures over pixels (pure) -----------------------------------------------------------


def jpeg_quality(image: Image.Image) -> int | None:
    """The IJG quality (1-100) that would produce the file's luminance table, or ``None``
    without one. Encoders with their own tables (cameras) land near their real quality."""
    tables = getattr(image, "quantization", None)
    if not tables:
        return None
    luma = tables.get(0) or next(iter(tables.values()))
    scale = 100.0 * float(sum(luma)) / _STANDARD_LUMA_SUM  # order of the 64 steps is moot
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return int(min(100, max(1, round(quality))))


def top_band_energy(grey: np.ndarray) -> float:
    """Share of the spectral energy between a tenth of the Nyquist frequency and Nyquist
    that lies in its upper half, on a windowed central square (0 when too small or flat).

    Natural photos have power falling roughly as 1/f^2, which leaves a steady share in
    the upper half; an image enlarged by a factor s was interpolated from the band below
    Nyquist/s and keeps almost nothing above it.
    """
    side = min(grey.shape[0], grey.shape[1], SPECTRUM_SIDE)
    if side < 16:
        return 0.0
    top, left = (grey.shape[0] - side) // 2, (grey.shape[1] - side) // 2
    square = grey[top:top + side, left:left + side].astype(np.float64)
    window = np.hanning(side)
    power = np.abs(np.fft.rfft2((square - square.mean()) * np.outer(window, window))) ** 2
    radius = np.hypot(np.fft.fftfreq(side)[:, None], np.fft.rfftfreq(side)[None, :]) / 0.5
    band = power[(radius >= 0.1) & (radius <= 1.0)].sum()
    if band <= 0:
        return 0.0
    return round(float(power[(radius >= 0.5) & (radius <= 1.0)].sum() / band), 5)


def sharpness(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian after resizing to a short side of
    ``SHARPNESS_SIDE`` (bilinear; smaller images are enlarged, which is their loss)."""
    height, width = grey.shape
    if min(height, width) < 3:
        return 0.0
    scale = SHARPNESS_SIDE / min(height, width)
    size = (max(3, round(width * scale)), max(3, round(height * scale)))
    resized = np.asarray(Image.fromarray(grey.astype(np.float32), "F").resize(
        size, Image.Resampling.BILINEAR), dtype=np.float64)
    laplacian = (resized[1:-1, :-2] + resized[1:-1, 2:] + resized[:-2, 1:-1]
                 + resized[2:, 1:-1] - 4.0 * resized[1:-1, 1:-1])
    return round(float(laplacian.var()), 2)


def clipped_highlights(rgb: np.ndarray) -> float:
    """Share of pixels with a channel piled up at that channel's lightest level (within
    ``PILE_LEVELS``, the level taken after trimming 0.1 %). Measured at the channel's own
    top rather than at 255, so that a later darkening, which moves the pile down, still
    shows it: the pile marks clipping, wherever it now sits."""
    if rgb.size == 0:
        return 0.0
    data = rgb.reshape(-1, rgb.shape[-1]) if rgb.ndim == 3 else rgb.reshape(-1, 1)
    piled = np.zeros(len(data), dtype=bool)
    for channel in data.T:
        counts = np.cumsum(np.bincount(channel, minlength=256))
        top = int(np.searchsorted(counts, (1.0 - TRIM) * counts[-1]))
        piled |= channel >= top - PILE_LEVELS
    return round(float(piled.mean()), 5)


def filled_corners(rgb: np.ndarray) -> int:
    """How many of the four corners are flat (a square of ``CORNER`` of the short side
    within ``CORNER_TOLERANCE`` levels): a rotation without a crop fills its corners with
    one colour; a photo's corners rarely are all flat."""
    height, width = rgb.shape[:2]
    side = max(2, round(CORNER * min(height, width)))
    if min(height, width) < 2 * side:
        return 0
    squares = (rgb[:side, :side], rgb[:side, -side:], rgb[-side:, :side], rgb[-side:, -side:])
    return sum(int(np.ptp(square.reshape(-1, square.shape[-1]), axis=0).max()
                   <= CORNER_TOLERANCE) for square in squares)


def tonal_extent(rgb: np.ndarray) -> tuple[int, int]:
    """The darkest and lightest levels of all channel values, less 0.1 % at each end."""
    if rgb.size == 0:
        return 0, 0
    counts = np.cumsum(np.bincount(rgb.ravel(), minlength=256))
    low, high = np.searchsorted(counts, [TRIM * counts[-1], (1.0 - TRIM) * counts[-1]])
    return int(low), int(high)


def colourfulness(rgb: np.ndarray) -> float:
    """Mean chroma (largest minus smallest channel) over the pixels."""
    if rgb.size == 0 or rgb.ndim != 3:
        return 0.0
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    chroma = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    return round(float(chroma.mean()), 2)


# -- metadata ---------------------------------------------------------------------------


_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_MAKE, _MODEL, _ORIENTATION, _DATE, _LENS = 0x010F, 0x0110, 0x0112, 0x9003, 0xA434


def capture_metadata(header: Image.Image) -> dict[str, Any]:
    """EXIF capture time, camera, lens, GPS position and orientation; absent or broken
    fields are None."""
    found: dict[str, Any] = {}
    try:
        exif = header.getexif()
        camera = " ".join(" ".join(str(exif.get(tag, "")).strip("\x00 ") for tag in
                                   (_MAKE, _MODEL)).split())
        found["camera"] = camera or None
        found["orientation"] = int(exif[_ORIENTATION]) if _ORIENTATION in exif else None
        inner = exif.get_ifd(_EXIF_IFD)
        text = str(inner.get(_DATE, "")).strip("\x00 ")
        if text:
            found["captured"] = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S").isoformat()
        lens = str(inner.get(_LENS, "")).strip("\x00 ")
        found["lens"] = lens or None
        gps = exif.get_ifd(_GPS_IFD)
        if 2 in gps and 4 in gps:
            found["latitude"] = _degrees(gps[2], gps.get(1, "N"), "S")
            found["longitude"] = _degrees(gps[4], gps.get(3, "E"), "W")
    except Exception:  # noqa: BLE001 - broken metadata is absent metadata
        pass
    return found


def _degrees(value: Sequence[Any], reference: Any, negative: str) -> float:
    degrees, minutes, seconds = (float(part) for part in value)
    sign = -1.0 if str(reference).strip("\x00 ").upper() == negative else 1.0
    return round(sign * (degrees + minutes / 60 + seconds / 3600), 6)


def _camera_and_date(header: Image.Image) -> tuple[str, datetime | None]:
    """EXIF make and model, and DateTimeOriginal."""
    found = capture_metadata(header)
    captured = found.get("captured")
    return found.get("camera") or "", datetime.fromisoformat(captured) if captured else None
