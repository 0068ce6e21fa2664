"""A self-contained static HTML report: numbers, galleries and a 2-D map; no server needed.

The folder holds ``index.html`` (data inlined as JSON, plain JS, no CDN) and ``thumbs/``.
Thumbnails are made only for images that appear in a gallery or on the map (the map shows
at most ``MAP_POINTS`` points), so the report stays small for a million images.

The folder is an :class:`~lookalike.ownership.OwnedFolder`: a user's non-empty folder is
refused, every file is written atomically under a name listed first, and a re-run removes
only the files of earlier runs it listed and no longer uses; whatever the user saved into
the folder stays.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..analyse.layout import map_2d
from ..decode import decode_file, parallel_ordered
from ..ownership import OwnedFolder, atomic_write

if TYPE_CHECKING:
    from ..analyse.results import ClusterReport, GroupReport, OutlierReport
    from ..collection import Collection
    from ..discover import Root
    from ..duplicates_job import DuplicateReport

THUMB = 160
MAP_POINTS = 5_000


@dataclass(frozen=True)
class Gallery:
    """One row of thumbnails: a duplicate group, a cluster sample, the outliers..."""

    title: str
    members: Sequence[int]  # positions into the report's paths
    captions: Sequence[str] = ()
    highlight: int | None = None  # position to outline (keeper, medoid)


@dataclass(frozen=True)
class Section:
    title: str
    description: str
    galleries: Sequence[Gallery] = field(default_factory=list)


def write_report(
    out: str | os.PathLike[str] | OwnedFolder,
    *,
    title: str,
    paths: Sequence[Root],
    overview: dict[str, Any],
    sections: Sequence[Section],
    layout: np.ndarray,
    layout_method: str,
    colours: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the report folder and return its ``index.html``.

    ``out``: the folder, or one already claimed (callers claim it before long analyses, so
    that a refusal comes first). Raises :class:`~lookalike.ownership.NotOwnedError` for a
    folder, or a file inside it, that lookalike did not create.
    ``layout``: [n, 2] map coordinates in [0, 1] by position; ``colours``: an optional int
    label per position (e.g. the cluster) to colour the map.
    """
    folder = out if isinstance(out, OwnedFolder) else OwnedFolder.claim(out, "report")
    on_map = map_sample(len(paths))
    wanted = sorted({int(p) for s in sections for g in s.galleries for p in g.members}
                    | set(on_map.tolist()))
    thumbs = {position: f"thumbs/{position}.jpg" for position in wanted}
    folder.reserve([*thumbs.values(), "index.html"])  # before anything is written
    targets = {position: folder.target(name) for position, name in thumbs.items()}
    made = _write_thumbnails(paths, targets, progress)
    data = {
        "title": title,
        "overview": overview,
        "files": {str(p): {"name": paths[p].name, "href": paths[p].as_uri(),
                           "thumb": thumbs[p] if p in made else None}
                  for p in wanted},
        "sections": [
            {"title": s.title, "description": s.description,
             "galleries": [{"title": g.title, "members": [int(m) for m in g.members],
                            "captions": list(g.captions), "highlight": g.highlight}
                           for g in s.galleries]}
            for s in sections
        ],
        "map": {"method": layout_method,
                "points": [[int(p), round(float(layout[p, 0]), 4), round(float(layout[p, 1]), 4),
                            int(colours[p]) if colours is not None else 0] for p in on_map]},
    }
    payload = json.dumps(data).replace("</", "<\\/")
    index = folder.write("index.html", _PAGE.replace("__TITLE__", html.escape(title))
                         .replace("__DATA__", payload))
    folder.remove_stale(keep={"index.html", *(thumbs[p] for p in made)})
    return index


@dataclass(frozen=True)
class ReportContent:
    """What :func:`write_report` shows of a collection (see :func:`build`); ``colours``:
    each image's cluster."""

    title: str
    paths: list[Root]
    overview: dict[str, Any]
    sections: list[Section]
    layout: np.ndarray
    layout_method: str
    colours: np.ndarray


def build(
    collection: Collection, *, k: int | str = "auto", threshold: float | None = None,
    fraction: float = 0.01, verify: bool = True, map_method: str = "auto",
    progress: Callable[[str, int, int], None] | None = None,
) -> ReportContent:
    """Run the analyses a collection's report shows: duplicates (``verify``: geometrically),
    threshold groups (``threshold``; None: the calibrated one), ``k`` clusters (or auto),
    the top ``fraction`` of outliers and a 2-D map (``map_method``: auto, umap, tsne or
    pca). ``progress(stage, done, total)`` follows each stage."""
    update = progress or (lambda stage, done, total: None)
    dups = collection.duplicates(verify=verify, progress=progress)
    update("groups", 0, 1)
    groups = collection.groups(threshold)
    update("groups", 1, 1)
    update("clusters", 0, 1)
    clusters = collection.clusters(k)
    update("clusters", 1, 1)
    outliers = collection.outliers()
    update("map", 0, 1)
    layout, method = _map_layout(collection, map_method)
    update("map", 1, 1)
    details = collection.info()
    overview = {
        "images": details.embedded,
        "skipped files": len(details.skipped),
        "model": details.model_spec,
        "exact duplicate groups": len(dups.exact),
        "near-duplicate groups": len(dups.near),
        "threshold groups": len(groups.groups),
        "clusters": clusters.k,
        "group threshold": groups.threshold.describe(),
    }
    return ReportContent(
        title=f"lookalike report: {collection.root.name}",
        paths=[collection.root / p for p in groups.paths], overview=overview,
        sections=_sections(dups, groups, clusters, outliers, fraction), layout=layout,
        layout_method=method, colours=clusters.clustering.labels)


def map_sample(count: int) -> np.ndarray:
    """The positions the map shows: all, or ``MAP_POINTS`` of them drawn with a fixed seed."""
    if count <= MAP_POINTS:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, MAP_POINTS, replace=False))


def _map_layout(collection: Collection, method: str) -> tuple[np.ndarray, str]:
    """``(layout [n, 2], method used)``: only the images the map shows are laid out (the
    rest are NaN), their vectors read from the memory-mapped store; a whole collection
    reuses its cached k-NN graph."""
    file_ids, vectors = collection.vectors(copy=False)
    shown = map_sample(len(file_ids))
    whole = len(shown) == len(file_ids) and method in ("auto", "graph") and len(shown) > 5
    points, used = map_2d(np.asarray(vectors[shown], dtype=np.float32), method,
                          graph=collection.knn_graph()[1] if whole else None)
    layout = np.full((len(file_ids), 2), np.nan, dtype=np.float32)
    layout[shown] = points
    return layout, used


def write_collection_report(
    collection: Collection, out: str | os.PathLike[str] | OwnedFolder, *,
    progress: Callable[[str, int, int], None] | None = None, **options: Any,
) -> Path:
    """:func:`build` (``options``: its keywords) and :func:`write_report` into ``out``;
    returns the report's ``index.html``. ``progress(stage, done, total)`` follows the
    analyses, then the "thumbnails" stage."""
    content = build(collection, progress=progress, **options)
    return write_report(
        out, title=content.title, paths=content.paths, overview=content.overview,
        sections=content.sections, layout=content.layout, layout_method=content.layout_method,
        colours=content.colours,
        progress=None if progress is None else (
            lambda done, total: progress("thumbnails", done, total)))


def _sections(dups: DuplicateReport, groups: GroupReport, clusters: ClusterReport,
              outliers: OutlierReport, fraction: float) -> list[Section]:
    """The report's galleries; members are positions into the collection's live images
    (the same in every result)."""
    duplicate_galleries = [
        Gallery(f"{group.kind} duplicates #{n}", group.members,
                ["keep" if m == group.keeper else f"{s:.3f}"
                 for m, s in zip(group.members, group.scores)], highlight=group.keeper)
        for n, group in enumerate(dups.exact + dups.near, start=1)]
    group_galleries = [Gallery(f"group #{n}: {g.size} images, mean cosine "
                               f"{g.mean_similarity:.3f}", g.members[:40].tolist(),
                               highlight=g.medoid)
                       for n, g in enumerate(groups.groups, start=1)]
    clustering = clusters.clustering
    cluster_galleries = []
    for c in range(clustering.k):
        central = clustering.members(c)[:24]
        cluster_galleries.append(Gallery(
            f"cluster {c}: {int(clustering.sizes[c])} images", central.tolist(),
            [f"{clustering.similarity[m]:.3f}" for m in central],
            highlight=int(clustering.medoids[c])))
    top, scores = outliers.top(fraction), outliers.scores
    return [
        Section("Duplicates", "Exact and near-duplicate groups; the outlined copy is the "
                "suggested keeper (largest resolution, then file size).", duplicate_galleries),
        Section("Threshold groups", "Images linked at the group threshold, without chaining; "
                "the outlined image is the medoid.", group_galleries),
        Section("Clusters", "k-means clusters: the most central members, medoid outlined.",
                cluster_galleries),
        Section("Outliers", "Images least like their neighbours (local outlier factor).",
                [Gallery("most unusual first", top.tolist(),
                         [f"{scores[p]:.2f}" for p in top])] if len(top) else []),
    ]


def _write_thumbnails(
    paths: Sequence[Root], targets: dict[int, Path], progress: Callable[[int, int], None] | None,
) -> set[int]:
    """Write the thumbnails to their (reserved) targets; the positions that were made."""
    def make(position: int) -> int:
        image = decode_file(paths[position], min_side=THUMB).image
        image.thumbnail((THUMB, THUMB), Image.Resampling.BILINEAR)
        atomic_write(targets[position],
                     lambda temporary: image.save(temporary, format="JPEG", quality=80))
        return position

    made: set[int] = set()  # an unreadable image becomes a grey "unreadable" tile
    wanted = list(targets)
    for done, outcome in enumerate(parallel_ordered(make, wanted), start=1):
        if outcome.error is None:
            made.add(outcome.item)
        if progress:
            progress(done, len(wanted))
    return made


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
header{background:#263238;color:#fff;padding:12px 20px}
header h1{margin:0;font-size:20px} nav a{color:#cfd8dc;margin-right:14px}
main{padding:12px 20px} h2{border-bottom:1px solid #ccc;padding-bottom:4px}
table.overview td{padding:2px 12px 2px 0} .gallery{margin:10px 0 18px}
.gallery h3{font-size:14px;margin:4px 0}
.tiles{display:flex;flex-wrap:wrap;gap:6px}
.tile{width:160px;text-align:center;font-size:11px;overflow:hidden}
.tile img,.tile .missing{width:160px;height:160px;object-fit:contain;background:#eee;
 display:block;border:2px solid transparent}
.tile.highlight img{border-color:#d32f2f}
.tile span{display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
#map{position:relative;width:min(900px,100%);aspect-ratio:1;background:#fff;
 border:1px solid #ccc}
#map canvas{width:100%;height:100%} #tip{position:fixed;pointer-events:none;display:none;
 background:#fff;border:1px solid #999;padding:4px}
#tip img{width:160px;display:block}
</style></head><body>
<header><h1>__TITLE__</h1><nav id="nav"></nav></header>
<main id="main"></main><div id="tip"><img alt=""><span></span></div>
<script id="data" type="application/json">__DATA__</script>
<script>
const data = JSON.parse(document.getElementById("data").textContent);
const main = document.getElementById("main"), nav = document.getElementById("nav");
function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const kid of kids) node.append(kid);
  return node;
}
function section(id, title) {
  nav.append(el("a", {href: "#" + id}, title));
  const s = el("section", {id}); s.append(el("h2", {}, title)); main.append(s); return s;
}
const overview = section("overview", "Overview"), table = el("table", {class: "overview"});
for (const [k, v] of Object.entries(data.overview)) table.append(el("tr", {}, el("td", {}, k),
  el("td", {}, String(v))));
overview.append(table);
function tile(position, caption, highlight) {
  const file = data.files[position];
  const link = el("a", {href: file.href, title: file.name});
  link.append(file.thumb ? el("img", {src: file.thumb, loading: "lazy", alt: file.name})
                         : el("div", {class: "missing"}, "unreadable"));
  const box = el("div", {class: "tile" + (highlight ? " highlight" : "")}, link,
                 el("span", {}, caption || file.name));
  return box;
}
data.sections.forEach((s, n) => {
  const node = section("s" + n, s.title);
  node.append(el("p", {}, s.description));
  if (!s.galleries.length) node.append(el("p", {}, "Nothing found."));
  for (const g of s.galleries) {
    const tiles = el("div", {class: "tiles"});
    g.members.forEach((m, i) => tiles.append(tile(m, g.captions[i], m === g.highlight)));
    node.append(el("div", {class: "gallery"}, el("h3", {}, g.title), tiles));
  }
});
const mapSection = section("map-section", "Map (" + data.map.method + ")");
mapSection.append(el("p", {}, "Each dot is an image; nearby dots look alike. " +
  "Hover for a thumbnail, click to open."));
const box = el("div", {id: "map"}), canvas = el("canvas", {width: 900, height: 900});
box.append(canvas); mapSection.append(box);
const ctx = canvas.getContext("2d"), tip = document.getElementById("tip");
const colour = c => "hsl(" + ((c * 137.5) % 360) + ",65%,45%)";
for (const [p, x, y, c] of data.map.points) {
  ctx.fillStyle = colour(c); ctx.beginPath();
  ctx.arc(10 + x * 880, 10 + y * 880, 3, 0, 2 * Math.PI); ctx.fill();
}
function nearest(event) {
  const r = canvas.getBoundingClientRect();
  const x = (event.clientX - r.left) / r.width * 900, y = (event.clientY - r.top) / r.height * 900;
  let best = null, bestD = 64;
  for (const point of data.map.points) {
    const d = (10 + point[1] * 880 - x) ** 2 + (10 + point[2] * 880 - y) ** 2;
    if (d < bestD) { bestD = d; best = point; }
  }
  return best;
}
canvas.addEventListener("mousemove", e => {
  const point = nearest(e);
  if (!point || !data.files[point[0]].thumb) { tip.style.display = "none"; return; }
  const file = data.files[point[0]];
  tip.querySelector("img").src = file.thumb; tip.querySelector("span").textContent = file.name;
  tip.style.left = (e.clientX + 14) + "px"; tip.style.top = (e.clientY + 14) + "px";
  tip.style.display = "block";
});
canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
canvas.addEventListener("click", e => {
  const point = nearest(e); if (point) window.open(data.files[point[0]].href);
});
</script></body></html>
"""
