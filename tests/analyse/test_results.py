"""The analyses' result objects: positions turned into ids and paths, one row per file for
CSV, and JSON, all agreeing with the analysis they wrap."""

from __future__ import annotations

import json
import math

import numpy as np

from lookalike.analyse.clusters import kmeans
from lookalike.analyse.groups import threshold_groups
from lookalike.analyse.outliers import outlier_scores
from lookalike.analyse.results import (
    LOW_CONFIDENCE,
    ClusterReport,
    GroupReport,
    OutlierReport,
)
from lookalike.knn import knn_graph
from lookalike.records import GroupThreshold


def planted() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Two tight blobs of five (positions 0-4 and 5-9) and three scattered points (10-12);
    file ids are not positions (101, 104, ...), paths name the part each belongs to."""
    rng = np.random.default_rng(0)
    dim = 16
    centres = np.eye(dim, dtype=np.float32)[:2]
    parts = [centres[b] + 0.03 * rng.standard_normal((5, dim)) for b in range(2)]
    parts.append(rng.standard_normal((3, dim)) * np.r_[0, 0, np.ones(dim - 2)])
    vectors = np.concatenate(parts).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    file_ids = 101 + 3 * np.arange(len(vectors), dtype=np.int64)
    paths = [f"a/{p}.jpg" for p in range(5)] + [f"b/{p}.jpg" for p in range(5, 10)] + [
        f"odd/{p}.jpg" for p in range(10, 13)]
    return vectors, file_ids, paths


def test_group_report_rows_and_json_name_the_planted_groups() -> None:
    vectors, file_ids, paths = planted()
    groups = threshold_groups(vectors, knn_graph(vectors, 6), 0.9)
    report = GroupReport(file_ids, paths, groups, GroupThreshold(0.9, calibrated=False),
                         "classic")
    rows = report.rows()
    assert [row["group"] for row in rows] == [1] * 5 + [2] * 5  # the scattered: no row
    assert {tuple(sorted(r["path"][0] for r in rows if r["group"] == n)) for n in (1, 2)} == {
        ("a",) * 5, ("b",) * 5}
    assert all(row["id"] == file_ids[paths.index(row["path"])] for row in rows)
    assert [row["medoid"] for row in rows] == [1, 0, 0, 0, 0] * 2  # medoid first
    assert list(rows[0]) == list(GroupReport.COLUMNS)
    data = json.loads(json.dumps(report.to_dict()))
    assert (data["threshold"], data["threshold_source"], data["model"]) == (0.9, "given",
                                                                             "classic")
    first = data["groups"][0]
    assert first["size"] == 5 and first["medoid"] == {"id": rows[0]["id"],
                                                      "path": rows[0]["path"]}
    assert [m["id"] for m in first["members"]] == report.ids(groups[0].members)
    nothing = GroupReport(file_ids[:1], paths[:1], [],
                          GroupThreshold(math.nan, calibrated=True, model="classic"), "classic")
    assert nothing.to_dict()["threshold"] is None and nothing.rows() == []


def test_cluster_report_rows_json_and_low_confidence() -> None:
    vectors, file_ids, paths = planted()
    clustering = kmeans(vectors, 2, seed=0)
    report = ClusterReport(file_ids, paths, clustering)
    rows = report.rows()
    assert [row["id"] for row in rows] == file_ids.tolist()  # one row per file, in order
    by_part: dict[str, set[int]] = {}
    for row in rows:
        by_part.setdefault(row["path"].split("/")[0], set()).add(row["cluster"])
    assert len(by_part["a"]) == len(by_part["b"]) == 1 and by_part["a"] != by_part["b"]
    data = report.to_dict()
    assert data["k"] == report.k == 2 and data["images"] == rows
    assert data["low_confidence_margin"] == LOW_CONFIDENCE
    for c, entry in enumerate(data["clusters"]):
        assert entry["size"] == int(clustering.sizes[c])
        assert entry["medoid"] == report.medoid_path(c) == paths[clustering.medoids[c]]
        unsure = [r for r in rows if r["cluster"] == c and r["confidence"] < LOW_CONFIDENCE]
        assert report.low_confidence(c) == len(unsure)


def test_outlier_report_ranks_the_scattered_points_first() -> None:
    vectors, file_ids, paths = planted()
    scores = outlier_scores(knn_graph(vectors, 4), k=4)
    report = OutlierReport(file_ids, paths, scores, 4)
    top = report.rows(0.25)  # ceil(0.25 * 13) = 4
    assert [row["rank"] for row in top] == [1, 2, 3, 4]
    assert {row["path"] for row in top[:3]} == {"odd/10.jpg", "odd/11.jpg", "odd/12.jpg"}
    assert [row["score"] for row in top] == sorted((row["score"] for row in top), reverse=True)
    assert top[0]["id"] == report.file_id(int(report.top(0.25)[0]))
    assert len(report.rows()) == 13 and list(top[0]) == list(OutlierReport.COLUMNS)
    data = report.to_dict(0.25)
    assert (data["k"], data["fraction"], data["total"]) == (4, 0.25, 13)
    assert data["outliers"] == top
