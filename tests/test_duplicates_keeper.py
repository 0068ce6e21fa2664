"""The duplicate finder keeps the original of a near-duplicate group, and says why."""

from __future__ import annotations

import pytest

from lookalike import Collection
from lookalike.duplicates_job import find_duplicates
from tests.planted_photos import EDITS, photo, save


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    """Two photos, each with a padded and a brightened copy, and an exact byte copy of
    the second photo's padded copy; four other photos."""
    folder = tmp_path_factory.mktemp("keeper")
    for seed in range(6):
        image = photo(seed, (400, 300))
        save(image, folder / f"p{seed}.jpg")
        if seed < 2:
            save(EDITS["border"](image), folder / f"p{seed}-framed.jpg")
            save(EDITS["brightened"](image), folder / f"p{seed}-bright.jpg")
    (folder / "p1-framed-copy.jpg").write_bytes((folder / "p1-framed.jpg").read_bytes())
    collection, _ = Collection.index_folder(folder, model="classic")
    return collection


def test_the_original_is_kept_over_framed_and_brightened_copies(
        collection: Collection) -> None:
    report = find_duplicates(collection)
    near = {frozenset(report.paths[p] for p in g.members): g for g in report.near}
    for seed in (0, 1):
        group = next(g for members, g in near.items() if f"p{seed}.jpg" in members)
        assert {f"p{seed}-framed.jpg", f"p{seed}-bright.jpg"} <= {
            report.paths[p] for p in group.members}
        assert report.paths[group.keeper] == f"p{seed}.jpg"
        assert {"no border", "untouched tones"} <= set(group.keeper_reasons)
    described = report.to_dict()["near"]
    assert all("keeper_reasons" in group for group in described)
    assert any("no border" in group["keeper_reasons"] for group in described)
