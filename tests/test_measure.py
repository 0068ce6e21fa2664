"""Per-image measurements: exposure and detail of planted images, EXIF capture data, and
the cache that makes a second pass free."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageFilter

from lookalike.measure import STATS_FILE, image_stats, stats_of

from .conftest import scene


def with_exif(image: Image.Image, path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Canon", "Canon EOS 5D", 1
    exif.get_ifd(0x8769)[0x9003] = "2024:06:01 10:15:30"
    exif.get_ifd(0x8769)[0xA434] = "EF 50mm f/1.8"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "S", (33.0, 51.0, 54.0), "E", (151.0, 12.0, 36.0)
    image.save(path, exif=exif, quality=92)


def test_capture_metadata_is_read_from_exif(tmp_path: Path) -> None:
    with_exif(scene(0), tmp_path / "camera.jpg")
    stats = image_stats(tmp_path / "camera.jpg")
    assert stats.captured == "2024-06-01T10:15:30" and stats.camera == "Canon Canon EOS 5D"
    assert stats.lens == "EF 50mm f/1.8" and stats.orientation == 1
    assert stats.latitude == pytest.approx(-33.865) and stats.longitude == pytest.approx(151.21)
    assert (stats.width, stats.height) == (320, 240)
    plain = tmp_path / "plain.png"
    scene(0).save(plain)
    assert image_stats(plain).captured is None and image_stats(plain).camera is None


def test_measures_move_the_way_the_edits_do(tmp_path: Path) -> None:
    photo = scene(1, (480, 360))
    variants = {"photo": photo, "blurred": photo.filter(ImageFilter.GaussianBlur(6)),
                "dark": ImageEnhance.Brightness(photo).enhance(0.25),
                "flat": ImageEnhance.Contrast(photo).enhance(0.08)}
    stats = {}
    for name, image in variants.items():
        image.save(tmp_path / f"{name}.png")
        stats[name] = image_stats(tmp_path / f"{name}.png")
    assert stats["blurred"].sharpness < stats["photo"].sharpness - 1.0
    assert stats["dark"].upper < 0.3 < stats["photo"].upper
    assert stats["dark"].brightness < 0.3 * stats["photo"].brightness + 0.01
    assert stats["flat"].contrast < 0.1 * stats["photo"].contrast + 0.01
    assert stats["flat"].information < stats["photo"].information - 1.5


def test_stats_are_cached_by_content_and_bad_files_reported(tmp_path: Path) -> None:
    scene(2).save(tmp_path / "a.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff" + b"junk" * 10)
    paths = [tmp_path / "a.png", tmp_path / "bad.jpg"]
    cache = tmp_path / "collection"
    cache.mkdir()
    first, errors = stats_of(paths, ["hash-a", "hash-bad"], cache)
    assert first[0] is not None and first[1] is None and set(errors) == {1}
    assert (cache / STATS_FILE).is_file()
    (tmp_path / "a.png").unlink()  # cached: the file itself is not read again
    again, errors = stats_of(paths, ["hash-a", "hash-bad"], cache)
    assert again[0] == first[0] and set(errors) == {1}
