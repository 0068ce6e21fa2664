"""Camera RAW files: found by name, decoded by libraw (rawpy), found again by their JPEG
rendering; a RAW file libraw cannot read is skipped with its reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lookalike.cli import app
from lookalike.decode import DecodeError, decode_file
from lookalike.discover import discover, is_raw

from .conftest import SHARED

rawpy = pytest.importorskip("rawpy", reason="rawpy (the 'raw' extra) is not installed")
SAMPLE = SHARED / "data" / "raw_samples" / "kodak_dc50.kdc"
needs_sample = pytest.mark.skipif(not SAMPLE.is_file(), reason="../shared RAW sample absent")
runner = CliRunner()


def test_raw_names_are_recognised_whatever_their_case() -> None:
    assert is_raw("a/b/IMG_0001.CR2") and is_raw("x.nef") and is_raw("s3://bucket/y.dng")
    assert not is_raw("photo.jpg") and not is_raw("raw")


@needs_sample
def test_sample_is_demosaiced_when_its_preview_is_too_small() -> None:
    decoded = decode_file(SAMPLE)
    assert decoded.format == "RAW" and (decoded.width, decoded.height) == (768, 512)
    # the embedded preview is a 96 x 64 bitmap: libraw demosaics, at half size for this
    assert decoded.image.mode == "RGB" and decoded.image.size == (384, 256)
    small = decode_file(SAMPLE, min_side=32)  # the preview is enough for a tiny request
    assert small.image.size == (96, 64) and small.content_hash == decoded.content_hash


def test_unreadable_raw_file_is_a_decode_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.nef"
    bad.write_bytes(b"II*\x00" + b"\x00" * 4000)
    with pytest.raises(DecodeError, match="camera RAW file libraw cannot read"):
        decode_file(bad)


@needs_sample
def test_raw_is_indexed_and_its_jpeg_rendering_is_a_duplicate(tmp_path: Path) -> None:
    folder = tmp_path / "camera"
    folder.mkdir()
    shutil.copyfile(SAMPLE, folder / "DC50_0001.KDC")
    with rawpy.imread(str(SAMPLE)) as raw:
        from PIL import Image

        Image.fromarray(raw.postprocess(use_camera_wb=True)).save(
            folder / "DC50_0001.jpg", quality=88)
    (folder / "broken.nef").write_bytes(b"II*\x00" + b"\x00" * 4000)
    found = {c.path.name: c for c in discover(folder)}
    assert found["DC50_0001.KDC"].format == "RAW" and found["broken.nef"].format == "RAW"
    result = runner.invoke(app, ["index", str(folder)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "broken.nef" in result.output and "libraw cannot read" in result.output
    report = json.loads(runner.invoke(app, ["duplicates", "--db", str(folder), "--json"],
                                      catch_exceptions=False).stdout)
    groups = [sorted(m["path"] for m in g["members"]) for g in report["near"]]
    assert groups == [["DC50_0001.KDC", "DC50_0001.jpg"]]
