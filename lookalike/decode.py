"""Decode: file bytes -> upright RGB image, with guards, and a parallel ordered loader.

Every failure is a :class:`DecodeError` with a reason a person can read; nothing here
raises anything else for bad input.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, Generic, TypeAlias, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.JpegImagePlugin import MARKER as JPEG_MARKERS
from upath import UPath

from .discover import is_raw, is_remote, special_file

try:  # HEIC/HEIF support is optional.
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - depends on the installation
    pass
else:
    register_heif_opener()

# A file to read: a local path, or a :class:`UPath` on an fsspec filesystem (object storage).
FilePath: TypeAlias = "str | os.PathLike[str] | UPath"

DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own bomb threshold (2 x MAX_IMAGE_PIXELS)
# A JPEG may be DCT-downscaled to 90 % of the requested short side: a 500-px photo then
# decodes at 1/2 scale (250 px) for a 256-px model input, twice as fast with the resize,
# and retrieval is unchanged (flowers17, mobilenetv2-int8: mAP@10 0.790 vs 0.788 decoded
# in full; the 1 % upscale is invisible next to the model's own resize).
DRAFT_SLACK = 0.9
SUPPORTED_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "HEIF", "MPO", "DIB"}
_ROTATING_ORIENTATIONS = {5, 6, 7, 8}
# Files up to this size are read whole (one read, hashed in memory); larger ones are decoded
# from the open file, which Pillow reads only as far as the pixels need, and then hashed in
# chunks: memory stays bounded by the image, not by the file.
IN_MEMORY_BYTES = 32 << 20
_CHUNK = 1 << 20
# Pillow steps over junk in a JPEG's header one byte at a time (a 2 GB file of zeros behind
# a JPEG signature took 312 s); check_jpeg refuses such a file after reading this much.
MAX_JPEG_JUNK = 1 << 20  # bytes that are no segment, before the image data
MAX_JPEG_HEADER = 64 << 20  # bytes of segments before the image data (metadata is < 20 MB)
MAX_JPEG_SEGMENTS = 10_000  # segments before the image data (a camera writes a few dozen)


class DecodeError(Exception):
    """A file that cannot become an image; ``str(error)`` is the reason shown to users."""


class FileGone(DecodeError):
    """The file is not there any more (deleted or moved since it was catalogued)."""


@dataclass
class Decoded:
    """An upright RGB image plus facts about the original file."""

    image: Image.Image
    width: int  # of the upright original, before any draft downscale
    height: int
    format: str
    content_hash: str


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def stream_hash(handle: BinaryIO) -> str:
    """:func:`content_hash` of a whole open file, read in chunks (memory stays flat)."""
    digest = hashlib.blake2b(digest_size=16)
    handle.seek(0)
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def decode_bytes(
    data: bytes, min_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
    *, raw: bool = False,
) -> Decoded:
    """Decode image bytes into an upright RGB image.

    ``min_side``: the smallest short side the caller needs. JPEGs are then decoded with
    ``draft()`` at a reduced DCT scale (1/2, 1/4, 1/8) that still delivers it, less a
    ``DRAFT_SLACK`` margin, which makes a 24-MP photo decode several times faster.
    ``max_pixels`` guards against decompression bombs: the header is checked before any
    pixel is decoded. ``raw``: the bytes are a camera RAW file (see :func:`decode_raw`).
    """
    if not data:
        raise DecodeError("empty file")
    decode = decode_raw if raw else _decode
    image, width, height, image_format = decode(io.BytesIO(data), min_side, max_pixels)
    return Decoded(image, width, height, image_format, content_hash(data))


def decode_raw(
    handle: BinaryIO, min_side: int | None, max_pixels: int
) -> tuple[Image.Image, int, int, str]:
    """A camera RAW file -> upright RGB image, upright sensor width and height, "RAW".

    The camera's embedded preview (a JPEG it rendered itself) stands in for the file when
    its short side gives what the caller needs (``min_side``; without one, half the
    sensor's): fast, and in the camera's own colours. Otherwise libraw demosaics the
    sensor data, at half size when that is still enough.
    """
    try:
        import rawpy
    except ImportError:
        raise DecodeError("a camera RAW file: install rawpy to read it "
                          "(pip install 'lookalike[raw]')") from None
    try:
        with rawpy.imread(handle) as raw:
            width, height = raw.sizes.width, raw.sizes.height
            if raw.sizes.flip in (5, 6):  # libraw's codes for a quarter turn
                width, height = height, width
            check_pixels(width, height, max_pixels)
            needed = math.ceil(min_side * DRAFT_SLACK) if min_side else min(width, height) // 2
            preview = _raw_preview(raw, needed, max_pixels)
            if preview is not None:
                return preview, width, height, "RAW"
            half = min(width, height) // 2 >= needed
            pixels = raw.postprocess(half_size=half, use_camera_wb=True, output_bps=8)
    except DecodeError:
        raise
    except (rawpy.LibRawError, OSError, ValueError, MemoryError) as error:
        raise DecodeError(f"a camera RAW file libraw cannot read: {error}") from None
    return Image.fromarray(pixels).convert("RGB"), width, height, "RAW"


def _raw_preview(raw: Any, needed: int, max_pixels: int) -> Image.Image | None:
    """The embedded preview of an open RAW file, upright, if its short side is at least
    ``needed``; None when there is none, it is too small or it cannot be decoded."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawError, OSError, ValueError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            image, _, _, _ = _decode(io.BytesIO(thumb.data), needed, max_pixels)
        except DecodeError:
            return None
    else:
        image = Image.fromarray(thumb.data).convert("RGB")
    return image if min(image.size) >= needed else None


def _decode(
    handle: BinaryIO, min_side: int | None, max_pixels: int
) -> tuple[Image.Image, int, int, str]:
    """An open file (at its start) -> upright RGB image, upright width and height, format."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb warnings are handled by our own guard
            check_jpeg(handle)
            handle.seek(0)
            image: Image.Image = Image.open(handle)  # exif_transpose makes a plain Image
            image_format = image.format or "unknown"
            if image_format not in SUPPORTED_FORMATS:
                raise DecodeError(f"unsupported image format {image_format}")
            width, height = image.size
            check_pixels(width, height, max_pixels)
            orientation = image.getexif().get(0x0112, 1)
            if orientation in _ROTATING_ORIENTATIONS:
                width, height = height, width
            if min_side and image_format == "JPEG":
                wanted = math.ceil(min_side * DRAFT_SLACK)
                image.draft("RGB", (wanted, wanted))
            if getattr(image, "is_animated", False):
                image.seek(0)
            image.load()
            if orientation not in (None, 1):  # exif_transpose copies even upright images
                image = ImageOps.exif_transpose(image)
            rgb = to_rgb(image)
    except DecodeError:
        raise
    except Image.DecompressionBombError as error:
        raise DecodeError(f"{error} (possible decompression bomb, not decoded)") from None
    except UnidentifiedImageError:
        raise DecodeError("not an image Pillow can read (corrupt or unknown format)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as error:
        raise DecodeError(f"corrupt or truncated image: {error}") from None
    return rgb, width, height, image_format


def check_jpeg(handle: BinaryIO) -> None:
    """Refuse, after a few small reads, a JPEG that Pillow would crawl through one byte at
    a time before finding its image data: a JPEG signature followed by junk (a download
    padded with zeros, random bytes). The segments are followed with seeks, as Pillow
    follows them, up to the start of the scan; whatever else is odd (a truncated file, a
    bad marker) is left for Pillow to report, which it does at once. Not a JPEG: no-op.
    """
    start = handle.tell()
    if handle.read(3) != b"\xff\xd8\xff":
        return
    position, junk, segments = start + 2, 0, 0
    while position - start <= MAX_JPEG_HEADER and segments <= MAX_JPEG_SEGMENTS:
        handle.seek(position)
        pair = handle.read(4)
        if len(pair) < 2:
            return
        marker = 0xFF00 | pair[1]
        if pair[0] != 0xFF:  # junk, which Pillow skips byte by byte: measured with find()
            skipped = _run(handle, position, MAX_JPEG_JUNK - junk, until_ff=True)
        elif pair[1] == 0xFF:  # fill bytes, also stepped over one at a time
            skipped = _run(handle, position, MAX_JPEG_JUNK - junk, until_ff=False) - 1
        elif pair[1] == 0x00 or JPEG_MARKERS.get(marker, (0, 0, 0))[2] is None:
            skipped = 2  # an escaped 0xFF, or a marker without a segment (RSTn, EOI...)
        elif marker not in JPEG_MARKERS or marker == 0xFFDA:
            return  # an unknown marker, which Pillow refuses at once, or the scan begins
        elif len(pair) < 4:
            return
        else:  # a segment: its length follows the marker
            position += 2 + max(2, int.from_bytes(pair[2:4], "big"))
            segments += 1
            continue
        junk += skipped
        position += skipped
        if junk > MAX_JPEG_JUNK:
            raise DecodeError(f"corrupt JPEG: over {MAX_JPEG_JUNK:,} bytes of junk before its "
                              "image data (not an image, or damaged): not decoded")
    raise DecodeError(f"corrupt JPEG: no image data in its first {position - start:,} bytes "
                      f"({segments:,} segments; not an image, or damaged): not decoded")


def _run(handle: BinaryIO, position: int, limit: int, until_ff: bool) -> int:
    """How many bytes from ``position`` are not 0xFF (``until_ff``), or are 0xFF, up to
    the end of the file; counting stops a little past ``limit``."""
    handle.seek(position)
    length = 0
    while length <= limit:
        chunk = handle.read(_CHUNK)
        if not chunk:
            break
        found = chunk.find(b"\xff") if until_ff else len(chunk) - len(chunk.lstrip(b"\xff"))
        if 0 <= found < len(chunk):
            return length + found
        length += len(chunk)
    return length


def check_pixels(width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """The decompression-bomb guard, from the header's size, before any pixel is decoded."""
    if width * height > max_pixels:
        raise DecodeError(f"too many pixels ({width} x {height} = {width * height:,}; limit "
                          f"{max_pixels:,}): possible decompression bomb, not decoded")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB.

    High-bit-depth greys (I;16, I, F) are rescaled rather than clipped, and transparent
    pixels are composited on white so they do not turn into arbitrary colours.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or pixels.max(initial=0) > 255 else 255.0
        if mode == "F":
            low, high = float(pixels.min(initial=0)), float(pixels.max(initial=1))
            pixels, top = pixels - low, max(high - low, 1e-12)
        grey = np.clip(pixels * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "P" and "transparency" in image.info or mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_file(
    path: FilePath, min_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Decoded:
    """Read and decode one file; a vanished or unreadable file, or one that is not a
    regular file (a FIFO, a device), is a :class:`DecodeError`.

    A local file over ``IN_MEMORY_BYTES`` is decoded from the open file and then hashed in
    chunks, so a huge file costs what its pixels cost, not its size in memory.
    """
    raw = is_raw(path)
    if is_remote(path) or raw:  # libraw reads a RAW file whole
        return decode_bytes(read_file(path), min_side=min_side, max_pixels=max_pixels,
                            raw=raw)
    with open_file(path) as handle:
        try:
            size = os.fstat(handle.fileno()).st_size
            if size <= IN_MEMORY_BYTES:
                data = handle.read()
        except OSError as error:
            raise DecodeError(f"cannot read file: {error.strerror or error}") from None
        if size <= IN_MEMORY_BYTES:
            return decode_bytes(data, min_side=min_side, max_pixels=max_pixels)
        image, width, height, image_format = _decode(handle, min_side, max_pixels)
        try:
            digest = stream_hash(handle)
        except OSError as error:
            raise DecodeError(f"cannot read file: {error.strerror or error}") from None
        return Decoded(image, width, height, image_format, digest)


def open_file(path: str | os.PathLike[str]) -> BinaryIO:
    """A local file opened for reading; a :class:`DecodeError` unless it is a regular file.

    The open does not wait: a file swapped for a FIFO since it was found would otherwise
    block until some process writes to it (forever), and a device would never end.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileGone("file disappeared before it could be read") from None
    except IsADirectoryError:
        raise DecodeError("is a directory") from None
    except OSError as error:
        raise DecodeError(f"cannot read file: {error.strerror or error}") from None
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise DecodeError("is a directory")
        kind = special_file(mode)
        if kind is not None:
            raise DecodeError(f"{kind}, not a file: not read")
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_file(path: FilePath) -> bytes:
    """A file's bytes, local or on an fsspec filesystem (a :class:`UPath`); a vanished or
    unreadable file, one that is not a regular file, or a JPEG whose header is junk
    (:func:`check_jpeg`, before the file is read whole) is a :class:`DecodeError`."""
    if not is_remote(path):
        with open_file(path) as handle:
            try:
                check_jpeg(handle)
                handle.seek(0)
                return handle.read()
            except OSError as error:
                raise DecodeError(f"cannot read file: {error.strerror or error}") from None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileGone("file disappeared before it could be read") from None
    except IsADirectoryError:
        raise DecodeError("is a directory") from None
    except Exception as error:  # remote backends raise their own types (botocore, aiohttp)
        raise DecodeError(f"cannot read file: {error}") from None
    check_jpeg(io.BytesIO(data))
    return data


T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Done(Generic[T, R]):
    """A work item of :func:`parallel_ordered` that succeeded: its value, no error."""

    item: T
    value: R
    error: None = None


@dataclass
class Failed(Generic[T]):
    """A work item of :func:`parallel_ordered` that failed: the reason, no value."""

    item: T
    error: str
    value: None = None


# ``if outcome.error is not None`` tells the two apart, for the type checker too.
Outcome: TypeAlias = "Done[T, R] | Failed[T]"


def parallel_ordered(
    work: Callable[[T], R], items: Iterable[T], workers: int | None = None,
    prefetch: int | None = None,
) -> Iterator[Outcome[T, R]]:
    """Run ``work`` over ``items`` in a thread pool; yield outcomes in input order.

    At most ``prefetch`` items are in flight, so memory stays bounded however long the
    input is, and the consumer (the model) overlaps with decoding. Pillow and the image
    codecs release the GIL, so threads use every core. A :class:`DecodeError` becomes an
    ``Outcome`` with ``error`` set; the loop never stops on a bad item.
    """
    workers = workers or max(1, os.cpu_count() or 1)
    prefetch = prefetch or workers * 8
    pending: deque[tuple[T, Future[R]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lookalike-decode") as pool:
        iterator = iter(items)
        for item in iterator:
            pending.append((item, pool.submit(work, item)))
            if len(pending) >= prefetch:
                yield _collect(*pending.popleft())
        while pending:
            yield _collect(*pending.popleft())


def _collect(item: T, future: Future[R]) -> Outcome[T, R]:
    try:
        return Done(item, future.result())
    except DecodeError as error:
        return Failed(item, str(error))
    except Exception as error:  # noqa: BLE001 - a bad file must never stop the run
        return Failed(item, f"unexpected {type(error).__name__}: {error}")
