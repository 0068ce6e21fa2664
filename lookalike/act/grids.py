"""Contact sheets: a query and its ranked matches in one picture (seeds 000 and 003)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..decode import DecodeError, decode_file
from ..discover import Root

TILE = 192
LABEL = 34
GAP = 6


@dataclass(frozen=True)
class Tile:
    """One cell of a sheet: an image file and two caption lines."""

    path: Root  # a local file or an object on storage read through fsspec
    title: str
    subtitle: str = ""
    highlight: bool = False


def contact_sheet(tiles: Sequence[Tile], columns: int = 5, tile: int = TILE) -> Image.Image:
    """Lay tiles out in a grid; an unreadable image becomes a grey cell saying why."""
    columns = max(1, min(columns, len(tiles) or 1))
    rows = max(1, -(-len(tiles) // columns))
    cell_w, cell_h = tile + GAP, tile + LABEL + GAP
    sheet = Image.new("RGB", (columns * cell_w + GAP, rows * cell_h + GAP), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for position, item in enumerate(tiles):
        x = GAP + (position % columns) * cell_w
        y = GAP + (position // columns) * cell_h
        try:
            thumb = decode_file(item.path, min_side=tile).image
            thumb.thumbnail((tile, tile), Image.Resampling.BILINEAR)
            sheet.paste(thumb, (x + (tile - thumb.width) // 2, y + (tile - thumb.height) // 2))
        except DecodeError as error:
            draw.rectangle((x, y, x + tile, y + tile), fill=(200, 200, 200))
            draw.text((x + 6, y + tile // 2), _fit(str(error), tile), fill=(90, 0, 0), font=font)
        if item.highlight:
            draw.rectangle((x - 3, y - 3, x + tile + 2, y + tile + 2), outline=(220, 40, 40),
                           width=3)
        draw.text((x, y + tile + 4), _fit(item.title, tile), fill=(0, 0, 0), font=font)
        draw.text((x, y + tile + 18), _fit(item.subtitle, tile), fill=(90, 90, 90), font=font)
    return sheet


def save_image(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a PNG."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower() or ".png"
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=suffix, prefix=".tmp-")
    os.close(handle)
    try:
        image.save(temporary, format="JPEG" if suffix in (".jpg", ".jpeg") else "PNG")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _fit(text: str, width: int, char_width: int = 6) -> str:
    limit = max(4, width // char_width)
    return text if len(text) <= limit else "…" + text[-(limit - 1):]
