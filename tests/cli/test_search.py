"""``search`` on a labelled query folder: the class of each hit and query, the CSV export,
each query's correspondence and the summary, on the planted folders of conftest."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lookalike.cli import app

runner = CliRunner()
HEADER = ["query", "query_class", "rank", "score", "id", "path", "class", "match",
          "correspondence"]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def rooms(labelled_folders: tuple[Path, Path]) -> tuple[Path, Path]:
    assert invoke("index", labelled_folders[0], "--model", "classic").exit_code == 0
    return labelled_folders


def test_csv_has_one_row_per_hit_with_classes_and_matches(rooms: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    folder, queries = rooms
    out = tmp_path / "hits.csv"
    result = invoke("search", queries, "--db", folder, "-k", 3, "--csv", out)
    assert result.exit_code == 0, result.output
    assert f"csv: {out}" in result.stdout
    rows = list(csv.reader(out.open()))
    assert rows[0] == HEADER and len(rows) == 1 + 4 * 3
    by_query: dict[str, list[list[str]]] = {}
    for row in rows[1:]:
        by_query.setdefault(Path(row[0]).relative_to(queries).as_posix(), []).append(row)
    for name, query_class, classes, match, share in (
            ("a/q0.jpg", "a", "aaa", "111", "1.0000"), ("b/q1.jpg", "b", "bbb", "111", "1.0000"),
            ("b/wrong.jpg", "b", "aaa", "000", "0.0000"), ("loose.jpg", "", "bbb", "", "")):
        hits = by_query[name]
        assert [r[1] for r in hits] == [query_class] * 3
        assert [r[2] for r in hits] == ["1", "2", "3"]
        assert "".join(r[6] for r in hits) == classes
        assert all(r[5].startswith(f"{r[6]}/") for r in hits)  # class = the path's folder
        assert "".join(r[7] for r in hits) == match
        assert {r[8] for r in hits} == {share}


def test_summary_is_printed_and_in_json(rooms: tuple[Path, Path]) -> None:
    folder, queries = rooms
    text = invoke("search", queries, "--db", folder, "-k", 3).stdout
    assert "3 queries with a class: mean P@3 0.667" in text and "top-1 0.667" in text
    assert "(class b: 0.00 of the hits in it)" in text
    assert "share of each query class's hits in each class" in text

    found = json.loads(invoke("search", queries, "--db", folder, "-k", 3, "--json").stdout)
    assert found["correspondence"] == {
        "queries": 3, "mean_precision": pytest.approx(2 / 3), "top1": pytest.approx(2 / 3),
        "confusion": {"a": {"a": 1.0, "b": 0.0}, "b": {"a": 0.5, "b": 0.5}}}
    wrong = next(q for q in found["queries"] if q["query"].endswith("wrong.jpg"))
    assert (wrong["query_class"], wrong["correspondence"]) == ("b", 0.0)
    assert [hit["class_name"] for hit in wrong["results"]] == ["a", "a", "a"]


def test_unlabelled_queries_keep_the_plain_json_list(rooms: tuple[Path, Path]) -> None:
    folder, queries = rooms
    found = json.loads(invoke("search", queries / "loose.jpg", "--db", folder, "-k", 2,
                              "--json").stdout)
    assert isinstance(found, list) and found[0]["query_class"] is None
    assert [hit["class_name"] for hit in found[0]["results"]] == ["b", "b"]


def test_csv_to_stdout_and_class_from_parent(rooms: tuple[Path, Path]) -> None:
    folder, queries = rooms
    nested = queries / "b" / "night"
    nested.mkdir()
    (queries / "b" / "q1.jpg").rename(nested / "q1.jpg")
    top = list(csv.reader(io.StringIO(invoke("search", queries, "--db", folder, "-k", 1,
                                             "--csv", "-").stdout)))
    assert top[0] == HEADER and len(top) == 1 + 4
    assert {r[1] for r in top[1:] if r[0].endswith("q1.jpg")} == {"b"}
    parent = list(csv.reader(io.StringIO(invoke(
        "search", queries, "--db", folder, "-k", 1, "--csv", "-",
        "--class-from", "parent").stdout)))
    assert {r[1] for r in parent[1:] if r[0].endswith("q1.jpg")} == {"night"}
    assert {r[7] for r in parent[1:] if r[0].endswith("q1.jpg")} == {"0"}


def test_csv_to_stdout_and_json_exclude_each_other(rooms: tuple[Path, Path]) -> None:
    folder, queries = rooms
    result = invoke("search", queries, "--db", folder, "--csv", "-", "--json")
    assert result.exit_code == 2 and "choose one" in result.output


def test_csv_replaces_only_an_earlier_export(rooms: tuple[Path, Path], tmp_path: Path) -> None:
    folder, queries = rooms
    out = tmp_path / "hits.csv"
    assert invoke("search", queries, "--db", folder, "-k", 1, "--csv", out).exit_code == 0
    assert invoke("search", queries, "--db", folder, "-k", 2, "--csv", out).exit_code == 0
    assert len(out.read_text().splitlines()) == 1 + 4 * 2
    mine = tmp_path / "mine.csv"
    mine.write_text("name,amount\n")
    result = invoke("search", queries, "--db", folder, "--csv", mine)
    assert result.exit_code == 1 and "not written by lookalike" in result.stderr
    assert mine.read_text() == "name,amount\n"
