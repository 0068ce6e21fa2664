"""Builders for the bad-input cases: each writes one awkward file and returns its path."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import scene


def zero_bytes(folder: Path) -> Path:
    path = folder / "empty.jpg"
    path.write_bytes(b"")
    return path


def truncated_jpeg(folder: Path) -> Path:
    buffer = io.BytesIO()
    scene(11).save(buffer, "JPEG", quality=90)
    path = folder / "truncated.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def text_named_jpg(folder: Path) -> Path:
    path = folder / "notes.jpg"
    path.write_text("not an image at all\n" * 20)
    return path


def huge_png(folder: Path, side: int = 50_000) -> Path:
    """A tiny PNG whose header claims side x side pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    payload = zlib.compress(b"\x00" * 64)
    path = folder / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", payload)
                     + chunk(b"IEND", b""))
    return path


def cmyk_jpeg(folder: Path) -> Path:
    path = folder / "cmyk.jpg"
    scene(12).convert("CMYK").save(path, "JPEG", quality=92)
    return path


def png_16bit(folder: Path) -> Path:
    """A 16-bit grey ramp from 0 to 65535 across the width."""
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    path = folder / "sixteen.png"
    Image.fromarray(ramp).save(path)  # uint16 -> mode I;16
    return path


def palette_png_with_transparency(folder: Path) -> Path:
    """Left half transparent, right half opaque red."""
    image = Image.new("P", (64, 32), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (32, 0, 64, 32))
    path = folder / "palette.png"
    image.save(path, transparency=0)
    return path


def animated_gif(folder: Path) -> Path:
    """Three frames: red, green, blue. The first frame (red) is the one to use."""
    frames = [Image.new("RGB", (48, 48), colour) for colour in ((255, 0, 0), (0, 255, 0),
                                                                 (0, 0, 255))]
    path = folder / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def exif_rotated_jpeg(folder: Path) -> tuple[Path, Image.Image]:
    """Pixels stored rotated, with EXIF orientation 6 saying 'rotate 90 CW to view'."""
    upright = scene(13, (240, 320))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a phone sensor writes
    exif = Image.Exif()
    exif[0x0112] = 6
    path = folder / "rotated.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif)
    return path, upright


def mislabelled_png(folder: Path) -> Path:
    """A real PNG saved with a .jpg name: must be read by content, not skipped."""
    path = folder / "really-a-png.jpg"
    scene(14).save(path, "PNG")
    return path
