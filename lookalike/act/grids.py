"""Contact sheets: a query and its ranked matches in one picture.

Every sheet lookalike writes carries a mark (:data:`SHEET_MARK`, a PNG text chunk or a
JPEG comment), so that a sheet written to a path the user named can be told from the
user's own file: :func:`save_image` replaces an existing file only when it carries the mark.
A folder of sheets is a :class:`SheetFolder`, owned through :mod:`lookalike.ownership`.
"""

from __future__ import annotations

import html
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from ..decode import DecodeError, decode_file
from ..discover import Root
from ..ownership import NotOwnedError, OwnedFolder, atomic_write

TILE = 192
INDEX = "index.html"
JPEG_QUALITY = 85
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


class TileCache:
    """Decoded tiles shared by the threads rendering sheets: each image is decoded once
    at tile size while it stays among the ``size`` most recently used (neighbours repeat
    across sheets). Holds the thumbnail, or the decode error's message."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._tiles: OrderedDict[tuple[str, int], Image.Image | str] = OrderedDict()
        self._lock = threading.Lock()
        self.decoded = 0

    def get(self, path: Root, tile: int) -> Image.Image | str:
        key = (str(path), tile)
        with self._lock:
            if key in self._tiles:
                self._tiles.move_to_end(key)
                return self._tiles[key]
        found = _thumbnail(path, tile)  # outside the lock: decodes run in parallel
        with self._lock:
            self.decoded += 1
            self._tiles[key] = found
            self._tiles.move_to_end(key)
            while len(self._tiles) > self.size:
                self._tiles.popitem(last=False)
        return found


def _thumbnail(path: Root, tile: int) -> Image.Image | str:
    try:
        thumb = decode_file(path, min_side=tile).image
        thumb.thumbnail((tile, tile), Image.Resampling.BILINEAR)
        return thumb
    except DecodeError as error:
        return str(error)


def contact_sheet(tiles: Sequence[Tile], columns: int = 5, tile: int = TILE,
                  cache: TileCache | None = None) -> Image.Image:
    """Lay tiles out in a grid; an unreadable image becomes a grey cell saying why.
    Thumbnails come from ``cache`` when given (shared between sheets and threads)."""
    columns = max(1, min(columns, len(tiles) or 1))
    rows = max(1, -(-len(tiles) // columns))
    cell_w, cell_h = tile + GAP, tile + LABEL + GAP
    sheet = Image.new("RGB", (columns * cell_w + GAP, rows * cell_h + GAP), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for position, item in enumerate(tiles):
        x = GAP + (position % columns) * cell_w
        y = GAP + (position // columns) * cell_h
        thumb = (cache.get(item.path, tile) if cache is not None
                 else _thumbnail(item.path, tile))
        if isinstance(thumb, str):
            draw.rectangle((x, y, x + tile, y + tile), fill=(200, 200, 200))
            draw.text((x + 6, y + tile // 2), _fit(thumb, tile), fill=(90, 0, 0), font=font)
        else:
            sheet.paste(thumb, (x + (tile - thumb.width) // 2, y + (tile - thumb.height) // 2))
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
    return atomic_write(path, _writer(image, _format(path.name)))


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
        """Write ``name`` (JPEG for ``.jpg``/``.jpeg``, else PNG); a name already used in
        this run gets " (2)", " (3)"..."""
        name = self.take(name)
        path = self.folder.write(name, _writer(image, _format(name)))
        self.written.append(name)
        return path

    def take(self, name: str) -> str:
        """This run's unique spelling of ``name`` (" (2)", " (3)"... on a repeat)."""
        stem, suffix = os.path.splitext(name)
        counter = 1
        while name.casefold() in self._taken or name == INDEX:
            counter += 1
            name = f"{stem} ({counter}){suffix}"
        self._taken.add(name.casefold())
        return name

    def render(self, sheets: Sequence[tuple[str, Sequence[Tile]]], columns: int = 5,
               workers: int | None = None, cache: TileCache | None = None
               ) -> Iterator[str]:
        """Render and write many sheets in a pool of threads (Pillow lets go of the GIL
        while it decodes, resizes and encodes); yields each name as its file is written.

        Names are settled (and reserved in the marker, once) before any rendering, in the
        order given, so they do not depend on which thread finishes first; at most two
        sheets per thread are in flight, so memory stays bounded however many there are."""
        names = [self.take(name) for name, _ in sheets]
        self.folder.reserve(names)
        cache = cache if cache is not None else TileCache()
        workers = max(1, workers or os.cpu_count() or 1)

        def one(name: str, tiles: Sequence[Tile]) -> str:
            image = contact_sheet(tiles, columns=columns, cache=cache)
            atomic_write(self.folder.target(name), _writer(image, _format(name)))
            return name

        jobs = iter(zip(names, (tiles for _, tiles in sheets)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sheet") as pool:
            pending: set[Future[str]] = set()
            try:
                for name, tiles in jobs:
                    pending.add(pool.submit(one, name, tiles))
                    while len(pending) >= 2 * workers:
                        yield from self._collect(pending)
                while pending:
                    yield from self._collect(pending)
            finally:
                for future in pending:
                    future.cancel()

    def _collect(self, pending: set[Future[str]]) -> Iterator[str]:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            pending.discard(future)
            name = future.result()
            self.written.append(name)
            yield name

    def write_index(self, title: str = "lookalike contact sheets") -> Path:
        """``index.html``: every sheet written in this run, as a link with its picture
        (relative links, no scripts or remote resources: it opens from disk)."""
        items = "\n".join(
            f'<figure><a href="{html.escape(quote(name))}"><img src="{html.escape(quote(name))}"'
            f' loading="lazy" alt=""></a><figcaption>{html.escape(name)}</figcaption></figure>'
            for name in sorted(self.written, key=str.casefold))
        page = (f"<!doctype html>\n<html><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(title)}</title>\n<style>body{{font:14px sans-serif;"
                "margin:1em}}figure{{display:inline-block;margin:.4em;width:300px;"
                "vertical-align:top}}img{{width:300px;border:1px solid #ccc}}"
                "figcaption{{overflow-wrap:anywhere}}</style></head><body>\n"
                f"<h1>{html.escape(title)}</h1><p>{len(self.written)} sheets</p>\n"
                f"{items}\n</body></html>\n")
        path = self.folder.write(INDEX, page)
        self.written.append(INDEX)
        return path

    def finish(self) -> int:
        """Remove the listed sheets this run did not write; how many were removed."""
        return self.folder.remove_stale(keep=self.written)


def _format(name: str) -> str:
    return "JPEG" if os.path.splitext(name)[1].lower() in (".jpg", ".jpeg") else "PNG"


def _writer(image: Image.Image, image_format: str) -> Callable[[Path], None]:
    if image_format == "JPEG":
        return lambda temporary: image.save(temporary, format="JPEG", quality=JPEG_QUALITY,
                                            comment=SHEET_MARK)
    info = PngInfo()
    info.add_text("Comment", SHEET_MARK)
    return lambda temporary: image.save(temporary, format="PNG", pnginfo=info)


def _fit(text: str, width: int, char_width: int = 6) -> str:
    limit = max(4, width // char_width)
    return text if len(text) <= limit else "…" + text[-(limit - 1):]
