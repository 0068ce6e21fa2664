"""A search as the command line asks it: an id, a file, a folder, a text or a vector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike import Collection, StoreError
from lookalike.queries import SearchQuery


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
