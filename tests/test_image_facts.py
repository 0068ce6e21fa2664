"""Per-image evidence for the keeper rule, measured on planted edits of one photo."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from lookalike.decode import DecodeError
from lookalike.image_facts import ImageFacts, image_facts, image_facts_many
from tests import bad_files
from tests.planted_photos import EDITS, photo, planted, save


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ImageFacts]:
    folder = tmp_path_factory.mktemp("planted")
    return {name: image_facts(path)
            for name, path in planted(folder, *EDITS, "jpeg20").items()}


def test_size_file_and_quality(facts: dict[str, ImageFacts], tmp_path: Path) -> None:
    original = facts["original"]
    assert (original.width, original.height, original.pixels) == (320, 240, 76_800)
    assert original.jpeg_quality == 92
    assert facts["jpeg20"].jpeg_quality == 20
    lossless = save(photo(), tmp_path / "lossless.png")
    assert image_facts(lossless).jpeg_quality is None
    assert image_facts(lossless).file_size == lossless.stat().st_size


def test_border_is_measured_as_a_share_of_the_area(facts: dict[str, ImageFacts]) -> None:
    assert facts["original"].border_fraction == 0.0
    padded = facts["border"]
    assert padded.border_fraction == pytest.approx(1 - 320 * 240 / (372 * 292), abs=0.01)
    assert padded.content_pixels == pytest.approx(320 * 240, rel=0.03)


def test_enlarging_and_blurring_remove_fine_detail(facts: dict[str, ImageFacts]) -> None:
    original = facts["original"]
    assert facts["upscaled"].top_band_energy < 0.15 * original.top_band_energy
    assert facts["blurred"].top_band_energy < 0.1 * original.top_band_energy
    assert facts["blurred"].sharpness < 0.05 * original.sharpness
    # A flip or a re-encode at the same quality keeps the detail.
    assert facts["grey"].top_band_energy == pytest.approx(original.top_band_energy, rel=0.05)


def test_tonal_edits_clip_or_narrow(facts: dict[str, ImageFacts]) -> None:
    original = facts["original"]
    assert original.highlights_clipped < 0.01
    assert facts["brightened"].highlights_clipped > 0.05
    assert facts["brightened"].lightest == 255
    assert original.tonal_range > 230
    assert facts["darkened"].tonal_range < original.tonal_range - 60


def test_colour_and_corners(facts: dict[str, ImageFacts]) -> None:
    assert facts["original"].colourfulness > 15
    assert facts["grey"].colourfulness < 1
    assert facts["original"].filled_corners == 0
    assert facts["rotated"].filled_corners == 4


def test_camera_and_capture_date_come_from_exif(tmp_path: Path) -> None:
    taken = datetime(2021, 6, 3, 14, 5, 9)
    path = save(photo(), tmp_path / "camera.jpg", camera=("Fujifilm", "X-T4"), captured=taken)
    found = image_facts(path)
    assert (found.camera, found.captured) == ("Fujifilm X-T4", taken)
    plain = image_facts(save(photo(), tmp_path / "plain.jpg"))
    assert (plain.camera, plain.captured) == ("", None)


def test_bad_files_are_errors_not_crashes(tmp_path: Path) -> None:
    broken = bad_files.truncated_jpeg(tmp_path)
    with pytest.raises(DecodeError):
        image_facts(bad_files.zero_bytes(tmp_path))
    good = save(photo(), tmp_path / "good.jpg")
    outcomes = list(image_facts_many([good, broken, tmp_path / "gone.jpg"], workers=2))
    assert [o.item for o in outcomes] == [good, broken, tmp_path / "gone.jpg"]
    assert outcomes[0].error is None and outcomes[0].value is not None
    assert outcomes[0].value.jpeg_quality == 92
    assert outcomes[1].error is not None and outcomes[2].error is not None


RAW_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/raw_samples/kodak_dc50.kdc"


@pytest.mark.skipif(not RAW_SAMPLE.exists(), reason="needs ../shared/data/raw_samples")
def test_a_camera_raw_file_is_measured_from_its_pixels() -> None:
    found = image_facts(RAW_SAMPLE)
    assert (found.width, found.height, found.jpeg_quality) == (768, 512, None)
    assert found.sharpness > 100 and found.colourfulness > 10
