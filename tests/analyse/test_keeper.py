"""The keeper rule: the copy with the fewest signs of editing, and why."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from lookalike.analyse.keeper import choose_keeper, defects
from lookalike.image_facts import ImageFacts, image_facts
from tests.planted_photos import EDITS, planted

# Each edit of the planted photo, and the badge the original earns against it.
BADGES = {
    "border": "no border",
    "upscaled": "original resolution",
    "brightened": "untouched tones",
    "darkened": "untouched tones",
    "blurred": "sharpest",
    "grey": "in colour",
    "rotated": "no border",
    "downscaled": "full size",
    "jpeg20": "best JPEG quality",
}


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ImageFacts]:
    folder = tmp_path_factory.mktemp("planted")
    return {name: image_facts(path)
            for name, path in planted(folder, *EDITS, "jpeg20").items()}


@pytest.mark.parametrize("edit", sorted(BADGES))
def test_the_original_beats_each_edited_copy(facts: dict[str, ImageFacts], edit: str) -> None:
    # The copy comes first, so that the position tie-break cannot rescue the original.
    keeper, reasons = choose_keeper([facts[edit], facts["original"]])
    assert keeper == 1
    assert BADGES[edit] in reasons
    assert defects([facts[edit], facts["original"]])[1] == set()


def test_the_original_wins_a_group_of_all_edits(facts: dict[str, ImageFacts]) -> None:
    names = [*sorted(BADGES), "original"]
    keeper, reasons = choose_keeper([facts[name] for name in names])
    assert names[keeper] == "original"
    assert set(reasons) == set(BADGES.values())
    found = dict(zip(names, defects([facts[name] for name in names])))
    assert "border" in found["border"] and "border" in found["rotated"]
    assert "upscaled" in found["upscaled"] and "blurred" in found["blurred"]
    assert "tonal" in found["brightened"] and "tonal" in found["darkened"]
    assert "recompressed" in found["jpeg20"] and "smaller" in found["downscaled"]
    assert "greyscale" in found["grey"]


def test_the_old_rule_would_keep_the_padded_and_the_enlarged_copies(
        facts: dict[str, ImageFacts]) -> None:
    # What "most pixels, then largest file" picked; the evidence overrules both.
    for edit in ("border", "upscaled"):
        assert facts[edit].pixels > facts["original"].pixels
        assert choose_keeper([facts[edit], facts["original"]])[0] == 1


def fact(**changes: object) -> ImageFacts:
    base = ImageFacts(
        width=400, height=300, file_size=50_000, border_fraction=0.0, jpeg_quality=90,
        top_band_energy=0.1, sharpness=300.0, filled_corners=0, highlights_clipped=0.01,
        darkest=0, lightest=255, colourfulness=40.0, camera="", captured=None)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_mirror_image_ties_and_metadata_decides() -> None:
    original, mirror = fact(file_size=50_000), fact(file_size=50_100)
    assert choose_keeper([original, mirror]) == (1, ["largest file"])
    camera = replace(original, camera="Canon EOS R6")
    assert choose_keeper([mirror, camera]) == (1, ["camera data"])
    early, late = datetime(2019, 5, 1, 9, 0), datetime(2019, 5, 1, 9, 30)
    shots = [replace(camera, captured=late), replace(camera, captured=early)]
    assert choose_keeper(shots) == (1, ["earliest"])


def test_identical_copies_go_to_the_preferred_one_without_a_reason() -> None:
    same = [fact(), fact(), fact()]
    assert choose_keeper(same) == (0, [])
    assert choose_keeper(same, preferred=[2]) == (2, [])
    # Evidence comes first: a preferred copy with a defect is not kept.
    assert choose_keeper([fact(), fact(jpeg_quality=40)], preferred=[1]) == (
        0, ["best JPEG quality"])


def test_a_frame_that_every_copy_shares_counts_against_none() -> None:
    framed = [fact(border_fraction=0.2, file_size=size) for size in (40_000, 41_000)]
    assert defects(framed) == [set(), set()]


def test_a_crop_that_cut_the_frame_away_does_not_count_against_the_framed_original() -> None:
    original = fact(border_fraction=0.2)
    crop = fact(width=250, height=190, border_fraction=0.0)
    assert defects([original, crop]) == [set(), {"smaller"}]
    assert choose_keeper([crop, original]) == (1, ["full size"])


def test_a_darkened_copy_does_not_make_its_original_look_clipped() -> None:
    original = fact(highlights_clipped=0.08)
    darkened = fact(highlights_clipped=0.0, lightest=180)
    brightened = fact(highlights_clipped=0.2)
    assert defects([original, darkened]) == [set(), {"tonal"}]
    assert defects([original, brightened]) == [set(), {"tonal"}]


def test_a_downscaled_copy_does_not_make_its_original_look_upscaled() -> None:
    # Downscaling packs detail into fewer pixels: the small copy's share is higher.
    original = fact(top_band_energy=0.05)
    small = fact(width=133, height=100, top_band_energy=0.2)
    assert defects([original, small]) == [set(), {"smaller"}]


def test_no_copies_is_an_error() -> None:
    with pytest.raises(ValueError):
        choose_keeper([])

