from __future__ import annotations

import ctypes
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from lookalike import decode as decode_module
from lookalike.decode import (
    DecodeError,
    check_jpeg,
    decode_bytes,
    decode_file,
    parallel_ordered,
    read_file,
)
from tests import bad_files
from tests.conftest import scene


def test_plain_jpeg_gives_rgb_and_original_size(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    scene(1, (400, 300)).save(path, quality=90)
    decoded = decode_file(path)
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (400, 300)
    assert (decoded.width, decoded.height, decoded.format) == (400, 300, "JPEG")
    assert len(decoded.content_hash) == 32


def test_draft_downscales_large_jpeg_but_keeps_enough_pixels(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    scene(2, (4000, 3000)).save(path, quality=90)
    decoded = decode_file(path, min_side=256)
    assert (decoded.width, decoded.height) == (4000, 3000)  # facts about the original
    assert min(decoded.image.size) >= 256
    assert decoded.image.size[0] <= 4000 // 4  # DCT scaling kicked in (1/8 gives 500x375)


@pytest.mark.parametrize(
    ("builder", "reason"),
    [
        (bad_files.zero_bytes, "empty file"),
        (bad_files.truncated_jpeg, "truncated"),
        (bad_files.text_named_jpg, "not an image"),
        (bad_files.huge_png, "decompression bomb"),
    ],
)
def test_bad_files_raise_a_readable_reason(tmp_path: Path, builder, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_file(builder(tmp_path))


def test_bomb_is_rejected_before_decoding(tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(DecodeError, match="2500000000 pixels.*decompression bomb"):
        decode_file(bad_files.huge_png(tmp_path))
    assert time.perf_counter() - started < 1.0


def test_cmyk_jpeg_becomes_rgb_with_the_right_colours(tmp_path: Path) -> None:
    decoded = decode_file(bad_files.cmyk_jpeg(tmp_path))
    original = np.asarray(scene(12), dtype=np.float32)
    assert decoded.image.mode == "RGB"
    assert np.abs(np.asarray(decoded.image, dtype=np.float32) - original).mean() < 12


def test_16_bit_png_is_rescaled_not_clipped(tmp_path: Path) -> None:
    grey = np.asarray(decode_file(bad_files.png_16bit(tmp_path)).image)[0, :, 0]
    assert grey[0] == 0 and grey[-1] == 255
    assert 120 <= grey[128] <= 135  # mid-ramp stays mid-grey instead of saturating


def test_palette_png_transparency_is_composited_on_white(tmp_path: Path) -> None:
    pixels = np.asarray(decode_file(bad_files.palette_png_with_transparency(tmp_path)).image)
    assert tuple(pixels[10, 5]) == (255, 255, 255)
    assert tuple(pixels[10, 50]) == (255, 0, 0)


def test_animated_gif_uses_first_frame(tmp_path: Path) -> None:
    pixels = np.asarray(decode_file(bad_files.animated_gif(tmp_path)).image)
    assert tuple(pixels[24, 24]) == (255, 0, 0)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path, upright = bad_files.exif_rotated_jpeg(tmp_path)
    decoded = decode_file(path)
    assert decoded.image.size == upright.size == (240, 320)
    assert (decoded.width, decoded.height) == (240, 320)
    difference = np.abs(np.asarray(decoded.image, np.float32) - np.asarray(upright, np.float32))
    assert difference.mean() < 6


def test_mislabelled_png_is_read_by_content(tmp_path: Path) -> None:
    assert decode_file(bad_files.mislabelled_png(tmp_path)).format == "PNG"


def test_vanished_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="disappeared"):
        decode_file(tmp_path / "gone.jpg")


def test_unreadable_file_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "secret.jpg"
    scene(3).save(path)
    path.chmod(0o000)
    code = (
        "from lookalike.decode import decode_file, DecodeError\n"
        f"try:\n    decode_file({str(path)!r})\nexcept DecodeError as e:\n    print(e)\n"
    )
    assert _run_unprivileged(code).strip() == "cannot read file: Permission denied"


def _run_unprivileged(code: str) -> str:
    """Run Python without the right to bypass file modes (root reads any file otherwise).

    As root, the child drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its capability
    bounding set before exec, so mode 000 really means unreadable.
    """
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def drop_file_capabilities() -> None:  # pragma: no cover - runs in the child
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP

    preexec = drop_file_capabilities if os.geteuid() == 0 else None
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, preexec_fn=preexec, timeout=60)
    return result.stdout + result.stderr


def test_decode_bytes_rejects_unsupported_formats() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PPM")
    with pytest.raises(DecodeError, match="unsupported image format PPM"):
        decode_bytes(buffer.getvalue())


def test_parallel_ordered_keeps_order_and_reports_errors() -> None:
    def work(item: int) -> int:
        time.sleep(0.001 * (item % 3))
        if item == 5:
            raise DecodeError("bad five")
        if item == 7:
            raise RuntimeError("boom")
        return item * 10

    outcomes = list(parallel_ordered(work, range(20), workers=4, prefetch=6))
    assert [o.item for o in outcomes] == list(range(20))
    assert outcomes[5].error == "bad five" and outcomes[5].value is None
    assert "RuntimeError" in outcomes[7].error
    assert [o.value for o in outcomes if o.error is None] == [i * 10 for i in range(20)
                                                               if i not in (5, 7)]


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF"])
def test_every_supported_format_decodes_to_the_same_picture(tmp_path: Path,
                                                            image_format: str) -> None:
    if image_format == "HEIF":
        pytest.importorskip("pillow_heif", reason="HEIC/HEIF needs pillow-heif")
    original = scene(5, (160, 120))
    path = tmp_path / f"picture.{image_format.lower()}"
    original.save(path, image_format, **({"quality": 95} if image_format != "GIF" else {}))
    decoded = decode_file(path)
    assert decoded.format == image_format
    assert decoded.image.size == (160, 120)
    difference = np.abs(np.asarray(decoded.image, np.float32) - np.asarray(original, np.float32))
    assert difference.mean() < (40 if image_format == "GIF" else 8)


def _finishes(work, seconds: float = 10.0):
    """``work()``'s result or exception, failing (not hanging) when it does not return."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "still waiting: a FIFO was opened for reading"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_and_devices_are_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "swapped.jpg"
    os.mkfifo(fifo)  # no writer: opening it to read would block forever
    for work in (lambda: decode_file(fifo), lambda: read_file(fifo)):
        error = _finishes(work)
        assert isinstance(error, DecodeError)
        assert str(error) == "a named pipe (FIFO), not a file: not read"
    error = _finishes(lambda: decode_file(os.devnull))
    assert str(error) == "a character device, not a file: not read"


JUNK_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


class CountingReader(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


@pytest.mark.parametrize("filler", [b"\x00", b"\xff", b"\xff\x00", b"\xff\xd0"])
def test_junk_behind_a_jpeg_signature_is_refused_after_bounded_reads(filler: bytes) -> None:
    data = JUNK_HEAD + filler * ((8 << 20) // len(filler))  # zeros, fill bytes, escapes, RSTs
    reader = CountingReader(data)
    with pytest.raises(DecodeError, match="over 1,048,576 bytes of junk before its image data"):
        check_jpeg(reader)
    assert reader.consumed < 3 << 20  # not the 8 MiB
    with pytest.raises(DecodeError, match="junk before its image data"):
        decode_bytes(data)


def test_endless_segments_behind_a_jpeg_signature_are_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    comment = b"\xff\xfe\x00\x04ab"
    monkeypatch.setattr(decode_module, "MAX_JPEG_SEGMENTS", 50)
    with pytest.raises(DecodeError, match="no image data in its first"):
        decode_bytes(JUNK_HEAD + comment * 100)
    monkeypatch.setattr(decode_module, "MAX_JPEG_HEADER", 100)
    with pytest.raises(DecodeError, match="no image data in its first"):
        decode_bytes(JUNK_HEAD + comment * 40)


def test_real_jpegs_pass_the_junk_check(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 1
    variants = {
        "icc+exif+comment": dict(icc_profile=icc * 40, exif=exif, comment=b"x" * 60000),
        "progressive": dict(progressive=True, quality=80),
        "restart markers": dict(restart_marker_blocks=1),
        "cmyk": dict(),
    }
    for name, options in variants.items():
        image = scene(5) if name != "cmyk" else scene(5).convert("CMYK")
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", **options)
        check_jpeg(io.BytesIO(buffer.getvalue()))
        assert decode_bytes(buffer.getvalue()).format == "JPEG", name
    with open(bad_files.truncated_jpeg(tmp_path), "rb") as handle:
        check_jpeg(handle)  # left for Pillow to report


def test_large_file_is_decoded_from_disk_and_hashed_in_chunks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "with-trailer.jpg"  # a photo with 3 MiB appended (a motion photo)
    scene(6).save(path, quality=90)
    with open(path, "ab") as handle:
        handle.write(os.urandom(3 << 20))
    whole = decode_bytes(path.read_bytes())
    monkeypatch.setattr(decode_module, "IN_MEMORY_BYTES", 1 << 16)
    streamed = decode_file(path)
    assert streamed.content_hash == whole.content_hash
    assert (streamed.width, streamed.height, streamed.format) == (320, 240, "JPEG")
    assert np.array_equal(np.asarray(streamed.image), np.asarray(whole.image))
