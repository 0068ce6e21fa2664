"""Folders of contact sheets: JPEG by default, readable permissions, captions with the
path under the collection root, an index.html, and parallel rendering that writes the
same files as serial rendering."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image
from typer.testing import CliRunner

from lookalike import Collection
from lookalike.act import grids
from lookalike.act.grids import SHEET_MARK, SheetFolder, Tile, TileCache, is_contact_sheet
from lookalike.cli import app
from lookalike.ownership import MARKER
from tests.conftest import scene

runner = CliRunner()


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two folders holding files of the same names, indexed."""
    root = tmp_path_factory.mktemp("nested")
    for folder, offset in (("bedroom", 0), ("kitchen", 10)):
        (root / folder).mkdir()
        for seed in range(3):
            scene(offset + seed).save(root / folder / f"image_{seed}.jpg", quality=90)
    Collection.index_folder(root, model="classic")[0].close()
    return root


def test_grid_writes_marked_jpegs_readable_by_others_and_an_index(nested: Path,
                                                                  tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = tmp_path / "grids"
        result = runner.invoke(app, ["grid", "--db", str(nested), "--out", str(out), "-k", "3"])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    sheets = sorted(p.name for p in out.iterdir() if p.name not in (MARKER, "index.html"))
    assert sheets == ["image_0 (2).jpg", "image_0.jpg", "image_1 (2).jpg", "image_1.jpg",
                      "image_2 (2).jpg", "image_2.jpg"]
    for name in sheets:
        with Image.open(out / name) as sheet:
            assert sheet.format == "JPEG"
            assert sheet.info["comment"] == SHEET_MARK.encode()
        assert is_contact_sheet(out / name)
    for path in [*out.iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    page = (out / "index.html").read_text()
    links = re.findall(r'<a href="([^"]+)"', page)
    assert sorted(unquote(link) for link in links) == sheets
    assert "http" not in page  # nothing fetched from elsewhere: opens from disk


def test_grid_captions_hold_the_path_under_the_collection_root(
    nested: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[list[str]] = []
    real = grids.contact_sheet

    def recording(tiles, *args, **kwargs):
        drawn.append([tile.subtitle for tile in tiles])
        return real(tiles, *args, **kwargs)

    monkeypatch.setattr(grids, "contact_sheet", recording)
    out = tmp_path / "grids"
    query = nested / "kitchen" / "image_1.jpg"
    result = runner.invoke(app, ["grid", str(query), "--out", str(out), "-k", "3"])
    assert result.exit_code == 0, result.output
    (captions,) = drawn
    assert captions[0] == "kitchen/image_1.jpg"
    assert all(re.fullmatch(r"(bedroom|kitchen)/image_\d\.jpg", c) for c in captions[1:])
    assert sorted(p.name for p in out.glob("*.jpg")) == ["image_1.jpg"]
    # Too long for the tile: shortened from the left, so the name stays readable.
    fitted = grids._fit("a/very/long/folder/name/under/the/root/kitchen/image_1.jpg", 192)
    assert fitted.startswith("…") and fitted.endswith("kitchen/image_1.jpg")


def test_parallel_rendering_writes_the_same_files_as_serial(nested: Path,
                                                           tmp_path: Path) -> None:
    files = sorted(nested.rglob("*.jpg"))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")  # a grey tile, in both
    jobs = [(f"{path.parent.name}-{path.stem}.jpg",
             [Tile(path, "image", path.name, highlight=True),
              *(Tile(other, f"#{rank}", other.name) for rank, other in enumerate(files, 1)),
              Tile(broken, "broken", "broken.jpg")])
            for path in files]
    outputs = {}
    for workers in (1, 4):
        folder = SheetFolder(tmp_path / f"w{workers}")
        cache = TileCache(size=4)  # smaller than the images: evictions on the way
        written = list(folder.render(jobs, workers=workers, cache=cache))
        assert sorted(written) == sorted(name for name, _ in jobs)
        folder.write_index()
        folder.finish()
        outputs[workers] = {p.name: p.read_bytes() for p in folder.path.iterdir()
                            if p.name != MARKER}
    assert outputs[1] == outputs[4]
    assert len(outputs[1]) == len(jobs) + 1


def test_tile_cache_decodes_each_image_once(nested: Path) -> None:
    cache = TileCache()
    paths = sorted(nested.rglob("*.jpg"))
    for _ in range(3):
        for path in paths:
            assert isinstance(cache.get(path, 64), Image.Image)
    assert cache.decoded == len(paths)
