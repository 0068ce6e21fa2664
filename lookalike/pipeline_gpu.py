"""The indexing journey with JPEG decoding on the GPU, for torch backbones on CUDA.

On one GPU the model outruns CPU decoding many times over (an H100 embeds ~13,000
images/s with DINOv2-S in bf16; 16 CPU processes decode ~2,300 JPEGs/s), so here the CPU
only reads files and checks headers, in a thread pool that stays ahead of the GPU:

1. **read** (threads): file bytes, content hash, and the header (format, size, EXIF
   orientation) without decoding a pixel; the decompression-bomb guard applies here.
   Files the device cannot decode are decoded and prepared (resized, normalised) here
   too, by the CPU decoder (``draft()`` for JPEGs), so they never hold up the model
   thread and only model-sized pixels wait in the queues;
2. **decode on the device**: upright baseline/progressive JPEGs of a batch go to nvJPEG
   in one ``torchvision.io.decode_jpeg(list, device=...)`` call; anything else (PNG,
   WebP, rotated or odd JPEGs, a JPEG nvJPEG rejects) is decoded by the CPU path of
   :mod:`lookalike.decode` for that file alone, and a truly broken file is skipped with
   its reason, as everywhere;
3. **resize, crop, normalise on the device** (bilinear with antialiasing, the backbone's
   :class:`~lookalike.embed.base.Preprocess`), then the model in bf16, channels-last,
   under ``inference_mode`` (``LOOKALIKE_TORCH_COMPILE=1`` compiles it). On CUDA two
   batches are in flight, each on its own stream, so decoding and copies overlap compute;
4. **store**: each batch committed atomically, as in :mod:`lookalike.pipeline`.

The same code runs with ``device="cpu"`` (torchvision decodes with libjpeg-turbo there),
which is how the tests check it against the standard pipeline on machines without a GPU.
"""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .decode import (
    DEFAULT_MAX_PIXELS,
    DecodeError,
    check_pixels,
    content_hash,
    decode_bytes,
    read_file,
)
from .discover import is_raw
from .embed.base import Preprocess
from .embed.torch_hub import TorchBackbone
from .pipeline import BatchResult, EmbedReport, Progress, run_batches
from .store import EmbeddedFile, FileRecord, Store


@dataclass
class _Read:
    """A file's bytes and what its header says."""

    record: FileRecord
    data: bytes
    digest: str
    image_format: str
    width: int
    height: int
    device_decodable: bool
    # files the device cannot decode: decoded and prepared by the reader (float CHW at the
    # model's size, pinned on CUDA), so neither their bytes nor full-size pixels wait in
    # the queues
    pixels: Any | None = None


def gpu_decode_available(backbone: object) -> bool:
    """Whether ``backbone`` is a torch model on a CUDA device with torchvision present."""
    if not isinstance(backbone, TorchBackbone) or not backbone.device.startswith("cuda"):
        return False
    try:
        import torchvision.io  # noqa: F401
    except ImportError:
        return False
    return True


def embed_pending_on_device(
    store: Store,
    model_key: str,
    backbone: TorchBackbone,
    *,
    workers: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> EmbedReport:
    """Like :func:`lookalike.pipeline.embed_pending`, decoding JPEGs on the model's device."""
    root = store.root

    on_cuda = backbone.device.startswith("cuda")

    def read(record: FileRecord) -> _Read:
        item = _read_header(record, read_file(root / record.path), max_pixels)
        if not item.device_decodable:  # PNG, WebP, rotated JPEGs...: in the reader threads
            _decode_on_cpu(item, backbone, max_pixels, pin=on_cuda)
        return item

    def embed(batch: list[_Read]) -> BatchResult:
        with _thread_stream(backbone.device):
            return _embed_batch(batch, backbone, max_pixels)

    # Two batches in flight on CUDA, each on its model thread's own stream: one batch's
    # nvJPEG decode and copies overlap the other's forward pass.
    return run_batches(
        store, model_key, read, embed,
        batch_size=batch_size or max(backbone.batch_size, 256 if on_cuda else 32),
        workers=workers, concurrency=2 if on_cuda else 1, progress=progress)


_streams = threading.local()


def _thread_stream(device: str) -> Any:
    """The calling thread's own CUDA stream as a context (no-op off CUDA)."""
    if not device.startswith("cuda"):
        return contextlib.nullcontext()
    torch = _torch()
    stream = getattr(_streams, "stream", None)
    if stream is None:
        stream = _streams.stream = torch.cuda.Stream(device=device)
    return torch.cuda.stream(stream)


def _read_header(record: FileRecord, data: bytes, max_pixels: int) -> _Read:
    """Format, size and orientation from the header alone; the bomb guard applies. Only
    a file the device will decode is hashed here (``decode_bytes`` hashes the others)."""
    if not data:
        raise DecodeError("empty file")
    if is_raw(record.path):  # a camera RAW file: libraw, on the CPU
        return _Read(record, data, "", "RAW", 0, 0, False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format or "unknown"
                width, height = image.size
                orientation = image.getexif().get(0x0112, 1) if image_format == "JPEG" else 1
                mode = image.mode
    except Exception:  # noqa: BLE001 - the CPU decoder gives the precise reason later
        return _Read(record, data, "", "unknown", 0, 0, False)
    check_pixels(width, height, max_pixels)
    # nvJPEG and libjpeg-turbo fill a truncated file with grey rather than failing; a JPEG
    # without its end marker goes to the CPU decoder, which reports it.
    complete = data.rstrip(b"\0").endswith(b"\xff\xd9")
    decodable = (image_format == "JPEG" and orientation in (None, 1) and mode in ("RGB", "L")
                 and complete)
    return _Read(record, data, content_hash(data) if decodable else "", image_format, width,
                 height, decodable)


def _embed_batch(batch: list[_Read], backbone: TorchBackbone, max_pixels: int) -> BatchResult:
    torch = _torch()
    device = backbone.device
    tensors: dict[int, Any] = {}  # batch position -> normalised CHW tensor on the device
    jpegs = [n for n, item in enumerate(batch) if item.device_decodable]
    if jpegs:
        decoded = _decode_jpegs([batch[n].data for n in jpegs], device)
        for n, image in zip(jpegs, decoded):
            if image is not None:
                tensors[n] = _prepare(image, backbone.spec)
    # what each file is: from the header for device-decoded JPEGs, from the CPU decoder
    # (upright size, real format) for the rest
    facts = {n: (batch[n].width, batch[n].height, batch[n].image_format) for n in tensors}
    items: list[EmbeddedFile] = []
    errors: list[tuple[int, str]] = []
    for n, item in enumerate(batch):
        if n in tensors:
            continue
        pixels = item.pixels
        if pixels is None:  # the rare JPEG the device rejected: the CPU decoder, here
            try:
                pixels = _decode_on_cpu(item, backbone, max_pixels, pin=device.startswith("cuda"))
            except DecodeError as error:
                errors.append((item.record.id, str(error)))
                continue
        tensors[n] = pixels.to(device, non_blocking=True)  # pinned: asynchronous
        facts[n] = (item.width, item.height, item.image_format)
    order = sorted(tensors)
    if not order:
        return [], np.zeros((0, backbone.dim), dtype=np.float32), errors
    vectors = backbone.embed_tensor(torch.stack([tensors[n] for n in order]))
    for n in order:
        width, height, image_format = facts[n]
        items.append(EmbeddedFile(batch[n].record.id, batch[n].digest, width, height,
                                  image_format))
    return items, vectors, errors


def _decode_on_cpu(item: _Read, backbone: TorchBackbone, max_pixels: int, *,
                   pin: bool) -> Any:
    """Decode ``item`` with the CPU path of :mod:`lookalike.decode` (its precise error
    messages and colour handling) and prepare its pixels for the model: set as
    ``item.pixels`` and returned; what the file is (upright size, real format, content
    hash) comes from that decoder."""
    decoded = decode_bytes(item.data, min_side=backbone.decode_size, max_pixels=max_pixels,
                           raw=is_raw(item.record.path))
    pixels = _prepare(_torch().from_numpy(np.array(decoded.image)).permute(2, 0, 1),
                      backbone.spec)
    item.pixels = pixels.pin_memory() if pin else pixels
    item.digest, item.image_format = decoded.content_hash, decoded.format
    item.width, item.height = decoded.width, decoded.height
    item.data = b""
    return item.pixels


def _decode_jpegs(blobs: list[bytes], device: str) -> list[Any]:
    """uint8 RGB CHW tensors on ``device``; None for a file the device decoder rejects."""
    torch = _torch()
    from torchvision.io import ImageReadMode, decode_jpeg

    inputs = [torch.frombuffer(bytearray(blob), dtype=torch.uint8) for blob in blobs]
    try:
        return list(decode_jpeg(inputs, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:
        pass  # one bad file fails the whole batch call: retry one by one
    images: list[Any] = []
    for data in inputs:
        try:
            images.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            images.append(None)
    return images


def _prepare(image: Any, spec: Preprocess) -> Any:
    """uint8 CHW -> float CHW of ``spec.size``: resize (short side), centre crop, scale
    and normalise, on the tensor's device."""
    torch = _torch()
    from torch.nn.functional import interpolate

    height, width = int(image.shape[-2]), int(image.shape[-1])
    size = spec.size
    pixels = image.unsqueeze(0).float()
    if spec.crop == "squash":
        target = (size, size)
    else:
        short = spec.resize or size
        scale = short / min(width, height)
        target = (max(size, round(height * scale)), max(size, round(width * scale)))
    if target != (height, width):
        mode = "bicubic" if spec.interpolation == "bicubic" else "bilinear"
        pixels = interpolate(pixels, size=target, mode=mode, antialias=True,
                             align_corners=False)
    top, left = (pixels.shape[-2] - size) // 2, (pixels.shape[-1] - size) // 2
    pixels = pixels[0, :, top:top + size, left:left + size]
    if spec.channel_order == "BGR":
        pixels = pixels.flip(0)
    mean = torch.tensor(spec.mean, device=pixels.device).view(3, 1, 1)
    std = torch.tensor(spec.std, device=pixels.device).view(3, 1, 1)
    if spec.channel_order == "BGR":
        mean, std = mean.flip(0), std.flip(0)
    return (pixels / 255.0 - mean) / std


def _torch() -> Any:
    import torch

    return torch
