"""``moments`` on planted shots with EXIF capture times: bursts group, the sharp shot is
suggested, a look-alike taken later and another scene taken in between stay apart."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageFilter
from typer.testing import CliRunner

from lookalike.cli import app

from ..conftest import crop, scene

runner = CliRunner()


def shot(image: Image.Image, path: Path, when: str) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = when
    image.save(path, exif=exif, quality=92)


def test_bursts_group_by_time_and_looks_with_the_sharpest_suggested(tmp_path: Path) -> None:
    folder = tmp_path / "card"
    folder.mkdir()
    burst = [scene(0), crop(scene(0), 0.95), crop(scene(0), 0.9)]
    shot(burst[0].filter(ImageFilter.GaussianBlur(3)), folder / "a1.jpg", "2024:06:01 10:00:00")
    shot(burst[1], folder / "a2.jpg", "2024:06:01 10:00:01")
    shot(burst[2].filter(ImageFilter.GaussianBlur(2)), folder / "a3.jpg", "2024:06:01 10:00:03")
    shot(scene(5), folder / "other.jpg", "2024:06:01 10:00:02")  # in the window, unlike
    shot(crop(scene(0), 0.85), folder / "later.jpg", "2024:06:01 11:30:00")  # alike, later
    shot(scene(1), folder / "b1.jpg", "2024:06:02 08:00:00")
    shot(crop(scene(1), 0.92), folder / "b2.jpg", "2024:06:02 08:00:04")
    scene(1).save(folder / "undated.png")
    assert runner.invoke(app, ["index", str(folder), "--model", "classic"]).exit_code == 0
    result = runner.invoke(app, ["moments", "--db", str(folder), "--json", "--threshold",
                                 "0.8"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    groups = [[m["path"] for m in moment["members"]] for moment in found["moments"]]
    assert groups == [["a1.jpg", "a2.jpg", "a3.jpg"], ["b1.jpg", "b2.jpg"]]
    assert found["moments"][0]["best"]["path"] == "a2.jpg"
    assert "sharpest" in found["moments"][0]["best"]["reasons"]
    assert found["moments"][0]["seconds"] == 3.0 and found["undated"] == 1
