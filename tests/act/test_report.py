"""A collection's report: what it shows (``build``) and the folder it writes."""

from __future__ import annotations

import json
from pathlib import Path

from lookalike import Collection
from lookalike.act.report import build, write_collection_report


def test_build_composes_overview_and_sections_from_the_analyses(
        planted_collection: Path) -> None:
    stages: list[str] = []
    with Collection.open(planted_collection) as collection:
        content = build(collection, k=4, threshold=0.9,
                        progress=lambda stage, done, total: stages.append(stage))
    names = [path.name for path in content.paths]
    assert content.title == f"lookalike report: {planted_collection.name}"
    assert content.overview == {
        "images": 9, "skipped files": 0, "model": "classic", "exact duplicate groups": 1,
        "near-duplicate groups": 1, "threshold groups": 2, "clusters": 4,
        "group threshold": "threshold 0.9 (--threshold)"}
    assert [s.title for s in content.sections] == [
        "Duplicates", "Threshold groups", "Clusters", "Outliers"]
    duplicates, groups, clusters, outliers = content.sections
    near = next(g for g in duplicates.galleries if g.title.startswith("near"))
    assert {names[m] for m in near.members} == {"a0.jpg", "a0-crop.jpg", "a0-bright.jpg"}
    assert names[near.highlight] == "a0.jpg" and near.captions[0] == "keep"
    assert [{names[m] for m in g.members} for g in groups.galleries] == [
        {"a0.jpg", "a0-crop.jpg"}, {"a1.jpg", "a1-copy.jpg"}]
    assert len(clusters.galleries) == 4
    assert sum(len(g.members) for g in clusters.galleries) == 9
    assert len(outliers.galleries[0].members) == 1  # the top 1 % of 9 images
    assert content.layout.shape == (9, 2) and len(content.colours) == 9
    assert {"groups", "clusters", "map"} <= set(stages)


def test_write_collection_report_writes_the_page_and_thumbnails(
        planted_collection: Path, tmp_path: Path) -> None:
    stages: set[str] = set()
    with Collection.open(planted_collection) as collection:
        index = write_collection_report(collection, tmp_path / "report", k=3,
                                        progress=lambda stage, done, total: stages.add(stage))
    page = index.read_text()
    start = page.index('<script id="data" type="application/json">')
    data = json.loads(page[page.index(">", start) + 1:page.index("</script>", start)])
    assert data["overview"]["clusters"] == 3
    assert [s["title"] for s in data["sections"]] == [
        "Duplicates", "Threshold groups", "Clusters", "Outliers"]
    assert len(list((tmp_path / "report" / "thumbs").glob("*.jpg"))) == 9
    assert "thumbnails" in stages
