"""A search as the command line asks it: an id, a file, a folder, a text or a vector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike import Collection, StoreError
from lookalike.correspondence import (
    NO_CLASS,
    Correspondence,
    class_of,
    correspondence,
    share_in_class,
)
from lookalike.queries import SearchQuery, summarise


@pytest.fixture
def collection(photo_folder: Path) -> Collection:
    return Collection.index_folder(photo_folder, model="classic")[0]


@pytest.mark.parametrize("sources", [{}, {"image": "a.jpg", "text": "a dog"},
                                     {"text": "a dog", "vector": Path("v.npy")}])
def test_exactly_one_source(sources: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="give exactly one of: QUERY, --text or --vector"):
        SearchQuery(**sources)  # type: ignore[arg-type]


def test_where_the_collection_is_looked_for() -> None:
    assert SearchQuery("~/photos/a.jpg").path == Path("~/photos/a.jpg").expanduser()
    assert SearchQuery("42").path is None  # an id
    assert SearchQuery(text="a dog").path is None


def test_a_file_an_id_and_a_vector_find_the_same_matches(collection: Collection,
                                                          photo_folder: Path) -> None:
    query = photo_folder / "scene0.jpg"
    (by_file,) = SearchQuery(str(query)).search(collection, k=3)
    assert (by_file.label, by_file.file) == (str(query), query)
    assert by_file.hits[0].path == "sub/scene0-crop.jpg"
    record = collection.store.file_by_path("scene0.jpg")
    (by_id,) = SearchQuery(str(record.id)).search(collection, k=3)
    assert (by_id.label, by_id.file) == (f"id {record.id}", query)
    assert [h.path for h in by_id.hits] == [h.path for h in by_file.hits]
    file_ids, vectors = collection.vectors()
    saved = photo_folder.parent / "query.npy"
    np.save(saved, vectors[list(file_ids).index(record.id)])
    (by_vector,) = SearchQuery(vector=saved).search(collection, k=3)
    assert (by_vector.label, by_vector.file) == (str(saved), None)
    assert by_vector.hits[0].path == "scene0.jpg"  # a vector is not a catalogue image


def test_a_folder_searches_each_image(collection: Collection, photo_folder: Path) -> None:
    found = SearchQuery(str(photo_folder / "sub")).search(collection, k=2)
    assert sorted(Path(m.label).name for m in found) == sorted(
        p.name for p in (photo_folder / "sub").iterdir())
    assert all(m.file == Path(m.label) and len(m.hits) == 2 for m in found)


def test_what_cannot_be_searched(collection: Collection, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        SearchQuery(str(tmp_path / "missing.jpg")).search(collection)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images in"):
        SearchQuery(str(tmp_path / "empty")).search(collection)
    for file_id in ("999999", str(2**64)):
        with pytest.raises(StoreError, match=f"no embedded image with id {file_id}"):
            SearchQuery(file_id).search(collection)


@pytest.fixture
def rooms(labelled_folders: tuple[Path, Path]) -> tuple[Path, Path]:
    Collection.index_folder(labelled_folders[0], model="classic")
    return labelled_folders


def test_each_hit_and_each_query_in_a_class_folder_has_its_class(
        rooms: tuple[Path, Path]) -> None:
    folder, queries = rooms
    found = {Path(m.label).relative_to(queries).as_posix(): m
             for m in SearchQuery(str(queries)).search(Collection.open(folder), k=3)}
    assert {name: m.query_class for name, m in found.items()} == {
        "a/q0.jpg": "a", "b/q1.jpg": "b", "b/wrong.jpg": "b", "loose.jpg": None}
    assert [(h.path.split("/")[0], h.class_name) for h in found["a/q0.jpg"].hits] == [
        ("a", "a")] * 3
    assert {name: m.correspondence for name, m in found.items()} == {
        "a/q0.jpg": 1.0, "b/q1.jpg": 1.0, "b/wrong.jpg": 0.0, "loose.jpg": None}
    assert [h.class_name for h in found["loose.jpg"].hits] == ["b"] * 3  # classes still shown
    summary = summarise(list(found.values()))
    assert summary == Correspondence(queries=3, mean_precision=2 / 3, top1=2 / 3,
                                     confusion={"a": {"a": 1.0, "b": 0.0},
                                                "b": {"a": 0.5, "b": 0.5}})


def test_a_single_file_an_id_or_a_text_has_no_class(rooms: tuple[Path, Path]) -> None:
    folder, queries = rooms
    (found,) = SearchQuery(str(queries / "a" / "q0.jpg")).search(Collection.open(folder), k=2)
    assert found.query_class is None and found.correspondence is None
    assert [h.class_name for h in found.hits] == ["a", "a"]
    assert summarise([found]) is None


def test_class_from_top_or_parent_folder() -> None:
    assert class_of("kitchen/2019/a.jpg") == "kitchen"
    assert class_of("kitchen/2019/a.jpg", "parent") == "2019"
    assert class_of("kitchen/a.jpg", "parent") == class_of("kitchen/a.jpg") == "kitchen"
    assert class_of("a.jpg") is None and class_of(Path("a.jpg"), "parent") is None


def test_correspondence_in_exact_fractions() -> None:
    summary = correspondence([
        ("kitchen", ["kitchen", "kitchen", "office", None]),   # 2/4, top-1 right
        ("kitchen", ["office", "kitchen", "kitchen", "kitchen"]),  # 3/4, top-1 wrong
        ("office", ["office", "office", "office", "office"]),  # 4/4
    ])
    assert summary == Correspondence(
        queries=3, mean_precision=(2 / 4 + 3 / 4 + 1) / 3, top1=2 / 3,
        confusion={"kitchen": {"kitchen": 5 / 8, "office": 2 / 8, NO_CLASS: 1 / 8},
                   "office": {"kitchen": 0.0, "office": 1.0, NO_CLASS: 0.0}})
    assert correspondence([]) is None
    assert share_in_class("kitchen", []) == 0.0 and share_in_class(None, ["a"]) is None
