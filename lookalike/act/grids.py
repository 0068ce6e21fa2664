"""Contact sheets: a query and its ranked matches in one picture.

Every sheet lookalike writes carries a mark (:data:`SHEET_MARK`, a PNG text chunk or a
JPEG comment), so that a sheet written to a path the user named can be told from the
user's own file: :func:`save_image` replaces an existing file only when it carries the mark.
A folder of sheets is a :class:`SheetFolder`, owned through :mod:`lookalike.ownership`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from ..decode import DecodeError, decode_file
from ..discover import Root
from ..ownership import NotOwnedError, OwnedFolder, atomic_write

TILE = 192
SHEET_MARK = "lookalike contact sheet"
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
    """Write a sheet to a file the user named: atomically, marked as lookalike's.

    JPEG for a ``.jpg``/``.jpeg`` name, else PNG. Something already at ``path`` is replaced
    only when it is a sheet lookalike wrote (:func:`is_contact_sheet`); anything else - the
    user's picture, a link, a folder - is refused with :class:`NotOwnedError`.
    """
    path = Path(path).expanduser()
    if os.path.lexists(path) and not is_contact_sheet(path):
        raise NotOwnedError(
            f"{path} exists and was not written by lookalike: choose another name for the "
            "contact sheet, or move that file away first (lookalike never overwrites a file "
            "it did not create)")
    suffix = path.suffix.lower()
    return atomic_write(path, _writer(image, "JPEG" if suffix in (".jpg", ".jpeg") else "PNG"))


def is_contact_sheet(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a regular file (not a link) carrying lookalike's sheet mark.

    Reads only the header: the mark is written before the pixels."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with Image.open(path) as image:
            mark = image.info.get("Comment", image.info.get("comment"))
    except Exception:  # not an image, unreadable, a bomb: not ours either way
        return False
    if isinstance(mark, bytes):
        mark = mark.decode("utf-8", "replace")
    return mark == SHEET_MARK


class SheetFolder:
    """A folder of contact sheets lookalike owns: claimed on creation (a user's non-empty
    folder is refused), each sheet listed before it is written, and :meth:`finish` removes
    the sheets of earlier runs that this run did not write - never anything unlisted."""

    def __init__(self, path: str | os.PathLike[str], purpose: str = "contact sheets") -> None:
        self.folder = OwnedFolder.claim(path, purpose)
        self.written: list[str] = []
        self._taken: set[str] = set()

    @property
    def path(self) -> Path:
        return self.folder.path

    def save(self, image: Image.Image, name: str) -> Path:
        """Write ``name`` (a PNG); a name already used in this run gets " (2)", " (3)"..."""
        stem, suffix = os.path.splitext(name)
        counter = 1
        while name.casefold() in self._taken:
            counter += 1
            name = f"{stem} ({counter}){suffix}"
        self._taken.add(name.casefold())
        path = self.folder.write(name, _writer(image, "PNG"))
        self.written.append(name)
        return path

    def finish(self) -> int:
        """Remove the listed sheets this run did not write; how many were removed."""
        return self.folder.remove_stale(keep=self.written)


def _writer(image: Image.Image, image_format: str) -> Callable[[Path], None]:
    if image_format == "JPEG":
        return lambda temporary: image.save(temporary, format="JPEG", quality=90,
                                            comment=SHEET_MARK)
    info = PngInfo()
    info.add_text("Comment", SHEET_MARK)
    return lambda temporary: image.save(temporary, format="PNG", pnginfo=info)


def _fit(text: str, width: int, char_width: int = 6) -> str:
    limit = max(4, width // char_width)
    return text if len(text) <= limit else "…" + text[-(limit - 1):]
