"""A small indexed collection with planted structure, shared by the act/ tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import ImageEnhance

from lookalike import Collection
from tests.conftest import crop, scene


@pytest.fixture(scope="package")
def planted_collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six distinct scenes (a0..a5); a0 has a crop and a brighter copy, a1 an exact copy.
    Indexed with the classic model; returns the image folder."""
    folder = tmp_path_factory.mktemp("planted-act")
    for seed in range(6):
        scene(40 + seed, (360, 270)).save(folder / f"a{seed}.jpg", quality=92)
    crop(scene(40, (360, 270)), 0.85).save(folder / "a0-crop.jpg", quality=88)
    ImageEnhance.Brightness(scene(40, (360, 270))).enhance(1.2).save(folder / "a0-bright.jpg")
    (folder / "a1-copy.jpg").write_bytes((folder / "a1.jpg").read_bytes())
    Collection.index_folder(folder, model="classic")[0].close()
    return folder
