"""The HTTP API against the real app on a real small collection."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike import Collection
from lookalike.duplicates_job import load_calibration
from lookalike.serve import create_app
from tests.conftest import crop, scene
from tests.serve.conftest import LOCAL, file_id


def png_bytes(image: Image.Image, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format)
    return buffer.getvalue()


def test_stats(client: TestClient) -> None:
    stats = client.get("/api/stats").json()
    assert stats["embedded"] == 15
    assert stats["skipped"] == 1
    assert stats["model_spec"] == "classic"
    assert stats["text_search"] is False


def test_images_are_paged_and_sorted(client: TestClient) -> None:
    first = client.get("/api/images", params={"limit": 4}).json()
    second = client.get("/api/images", params={"limit": 4, "offset": 4}).json()
    assert first["total"] == 15 and len(first["items"]) == 4
    assert {i["id"] for i in first["items"]}.isdisjoint(i["id"] for i in second["items"])
    by_size = client.get("/api/images", params={"sort": "-size", "limit": 100}).json()["items"]
    sizes = [item["size"] for item in by_size]
    assert sizes == sorted(sizes, reverse=True)
    assert client.get("/api/images", params={"sort": "evil"}).status_code == 422


def test_image_metadata_and_skip_reason(client: TestClient) -> None:
    broken = client.get(f"/api/images/{file_id(client, 'broken.jpg')}").json()
    assert broken["status"] == "skipped" and broken["reason"]
    ok = client.get(f"/api/images/{file_id(client, 'scene3.jpg')}").json()
    assert (ok["width"], ok["height"], ok["format"]) == (320, 240, "JPEG")
    assert client.get("/api/images/999999").status_code == 404


def test_search_routes_answer_in_their_documented_schema(client: TestClient) -> None:
    """The search routes write their JSON directly (the hot path); it must still be exactly
    what the OpenAPI document promises."""
    from lookalike.serve.schemas import SearchResult

    similar = client.get(f"/api/images/{file_id(client, 'scene3.jpg')}/similar",
                         params={"k": 3})
    assert similar.headers["content-type"] == "application/json"
    parsed = SearchResult.model_validate_json(similar.content)
    assert parsed.model_dump(mode="json") == similar.json()
    assert parsed.query.startswith("id:") and len(parsed.hits) == 3
    uploaded = client.post("/api/search", files={"file": ("q.png", png_bytes(scene(3)))},
                           data={"k": "2"})
    assert SearchResult.model_validate_json(uploaded.content).hits[0].image.path == "scene3.jpg"
    paths = client.get("/openapi.json").json()["paths"]
    for route, method in (("/api/images/{file_id}/similar", "get"), ("/api/search", "post")):
        ok = paths[route][method]["responses"]["200"]["content"]["application/json"]
        assert ok["schema"] == {"$ref": "#/components/schemas/SearchResult"}


def test_similar_ranks_the_edited_copy_first(client: TestClient) -> None:
    found = client.get(f"/api/images/{file_id(client, 'scene0.jpg')}/similar",
                       params={"k": 5}).json()
    assert [hit["rank"] for hit in found["hits"]] == [1, 2, 3, 4, 5]
    assert found["hits"][0]["image"]["path"] == "sub/scene0-crop.jpg"
    scores = [hit["score"] for hit in found["hits"]]
    assert scores == sorted(scores, reverse=True)
    skipped = client.get(f"/api/images/{file_id(client, 'broken.jpg')}/similar")
    assert skipped.status_code == 404


def test_search_by_upload(client: TestClient) -> None:
    upload = png_bytes(crop(scene(5), 0.9))
    found = client.post("/api/search", files={"file": ("query.png", upload, "image/png")},
                        data={"k": "3"}).json()
    assert found["hits"][0]["image"]["path"] == "scene5.jpg"
    assert len(found["hits"]) == 3


def test_search_by_vector_and_text(client: TestClient) -> None:
    dim = client.get("/api/stats").json()["dim"]
    vector = np.random.default_rng(0).standard_normal(dim)
    found = client.post("/api/search", json={"vector": vector.tolist(), "k": 4})
    assert found.status_code == 200 and len(found.json()["hits"]) == 4
    wrong = client.post("/api/search", json={"vector": [1.0, 2.0]})
    assert wrong.status_code == 400 and "numbers" in wrong.json()["detail"]
    text = client.post("/api/search", json={"text": "a red car"})
    assert text.status_code == 400 and "text" in text.json()["detail"]
    assert client.post("/api/search", content=b"x", headers={
        "content-type": "text/plain"}).status_code == 415


@pytest.mark.slow
def test_bad_uploads_get_4xx_with_a_message(client: TestClient) -> None:
    not_image = client.post("/api/search", files={"file": ("a.jpg", b"hello" * 100)})
    assert not_image.status_code == 422 and "not a usable image" in not_image.json()["detail"]
    empty = client.post("/api/search", files={"file": ("a.jpg", b"")})
    assert empty.status_code == 422
    # A decompression bomb: a tiny PNG whose header claims 20000 x 20000 pixels.
    bomb = png_bytes(Image.new("1", (20_000, 20_000)))
    assert len(bomb) < 2**20
    response = client.post("/api/search", files={"file": ("bomb.png", bomb, "image/png")})
    assert response.status_code == 422
    assert "decompression bomb" in response.json()["detail"]
    big = client.post("/api/search", files={"file": ("big.jpg", b"\0" * (3 * 2**20))})
    assert big.status_code == 413
    assert client.post("/api/search", files={"other": ("a.png", b"x")}).status_code == 400


def test_path_traversal_gets_404(client: TestClient) -> None:
    for path in ["/image/../../etc/passwd", "/image/..%2F..%2Fetc%2Fpasswd",
                 "/thumb/%2E%2E%2Fcatalogue.sqlite", "/image/-1", "/image/1.0",
                 "/static/../catalogue.sqlite", "/static/..%2F..%2Fcollection.py",
                 "/image//etc/passwd", "/api/images/..%2F1"]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"root:" not in response.content


def test_original_and_thumbnail(client: TestClient, served_folder: Path) -> None:
    jpeg = client.get(f"/image/{file_id(client, 'scene0.jpg')}")
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert jpeg.content == (served_folder / "scene0.jpg").read_bytes()
    png = client.get(f"/image/{file_id(client, 'sub/scene1-flip.png')}")
    assert png.headers["content-type"] == "image/png"
    thumb = client.get(f"/thumb/{file_id(client, 'scene0.jpg')}", params={"size": 100})
    assert thumb.headers["content-type"] == "image/webp"
    image = Image.open(io.BytesIO(thumb.content))
    assert image.format == "WEBP" and max(image.size) == 96
    scene0 = file_id(client, "scene0.jpg")  # cached on disk under its size and id
    assert list((served_folder / ".lookalike" / "thumbs" / "96").rglob(f"{scene0}-*.webp"))
    for route in ("thumb", "image"):  # only indexed images are served
        skipped = client.get(f"/{route}/{file_id(client, 'broken.jpg')}")
        assert skipped.status_code == 404 and "skipped" in skipped.json()["detail"]


def test_collection_on_object_storage_serves_originals_and_thumbnails(
    photo_folder: Path, remote_folder: str, tmp_path: Path
) -> None:
    """Images read through fsspec: the server relays originals and makes thumbnails."""
    import fsspec

    from lookalike import Collection

    Collection.index_folder(remote_folder, tmp_path / "remote.lookalike", model="classic")
    with TestClient(create_app(tmp_path / "remote.lookalike"), base_url=LOCAL) as remote:
        jpeg = remote.get(f"/image/{file_id(remote, 'scene0.jpg')}")
        assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
        assert jpeg.content == (photo_folder / "scene0.jpg").read_bytes()
        thumb = remote.get(f"/thumb/{file_id(remote, 'sub/scene1-flip.png')}",
                           params={"size": 100})
        assert Image.open(io.BytesIO(thumb.content)).format == "WEBP"
        similar = remote.get(f"/api/images/{file_id(remote, 'scene0.jpg')}/similar",
                             params={"k": 1}).json()
        assert similar["hits"][0]["image"]["path"] == "sub/scene0-crop.jpg"
        gone = file_id(remote, "scene5.jpg")
        fsspec.filesystem("memory").rm(f"{remote_folder[len('memory://'):]}/scene5.jpg")
        for route in (f"/image/{gone}", f"/thumb/{gone}"):
            missing = remote.get(route)
            assert missing.status_code == 404 and "disappeared" in missing.json()["detail"]


def test_analyses(client: TestClient) -> None:
    duplicates = client.get("/api/duplicates").json()
    sets = [{m["image"]["path"] for m in g["members"]} for g in duplicates["groups"]]
    assert {"scene2.jpg", "sub/scene2-small.jpg"} in sets
    for group in duplicates["groups"]:
        assert sum(m["keeper"] for m in group["members"]) == 1
        keeper = next(m for m in group["members"] if m["keeper"])
        assert keeper["image"]["id"] == group["keeper"]
        if "scene2.jpg" in {m["image"]["path"] for m in group["members"]}:
            assert keeper["image"]["path"] == "scene2.jpg"  # the larger copy
    groups = client.get("/api/groups", params={"threshold": 0.9}).json()
    assert groups["threshold"] == 0.9
    grouped = {group["number"]: {member["path"] for member in group["members"]}
               for group in groups["groups"]}
    number = next(n for n, paths in grouped.items()
                  if {"scene0.jpg", "sub/scene0-crop.jpg"} <= paths)
    listed = client.get("/api/images", params={"group": number, "threshold": 0.9}).json()
    assert {item["path"] for item in listed["items"]} == grouped[number]
    for group in groups["groups"]:
        assert group["members"][0]["id"] == group["medoid"]["id"]
    # pages: the same groups, numbered as in the whole list
    assert groups["total"] >= 2
    loose = {"verify": "false", "threshold": 0.8}  # more groups than the verified default
    every = client.get("/api/duplicates", params=loose).json()
    assert every["total"] >= 3
    for offset in (0, 1, 2):
        page = client.get("/api/duplicates",
                          params={**loose, "offset": offset, "limit": 1}).json()
        assert page["total"] == every["total"]
        assert page["groups"] == every["groups"][offset:offset + 1]
    second = client.get("/api/groups", params={"threshold": 0.9, "offset": 1,
                                               "limit": 1}).json()
    assert second["total"] == groups["total"] and second["groups"] == groups["groups"][1:2]
    assert second["groups"][0]["number"] == 2
    clusters = client.get("/api/clusters").json()
    assert sum(c["size"] for c in clusters["clusters"]) == 15
    cluster = clusters["clusters"][0]
    members = client.get("/api/images", params={"cluster": 0, "limit": 100}).json()
    assert members["total"] == cluster["size"]
    outliers = client.get("/api/outliers", params={"fraction": 0.2}).json()
    assert outliers["items"] and outliers["items"][0]["rank"] == 1
    points = client.get("/api/map").json()["points"]
    assert len(points) == 15 and all(0 <= p["x"] <= 1 for p in points)


def test_groups_default_to_the_calibrated_threshold(client: TestClient,
                                                   served_folder: Path) -> None:
    page = client.get("/api/groups").json()
    with Collection.open(served_folder) as collection:
        calibration = load_calibration(collection)  # measured on first use, then stored
    assert calibration is not None
    assert page["threshold"] == calibration["near_threshold"] and page["calibrated"] is True
    grouped = {group["number"]: {member["path"] for member in group["members"]}
               for group in page["groups"]}
    number = next(n for n, paths in grouped.items()
                  if {"scene0.jpg", "sub/scene0-crop.jpg"} <= paths)
    # the gallery of one group, without a threshold, lists the same default groups
    listed = client.get("/api/images", params={"group": number}).json()
    assert {item["path"] for item in listed["items"]} == grouped[number]
    given = client.get("/api/groups", params={"threshold": 0.9}).json()
    assert given["threshold"] == 0.9 and given["calibrated"] is False
    for bad in (0, -0.5, 1.5):
        refused = client.get("/api/groups", params={"threshold": bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert client.get("/api/images", params={"group": 1, "threshold": bad}
                          ).status_code == 422


def test_marks_round_trip_and_csv(client: TestClient, served_folder: Path) -> None:
    keep, discard = file_id(client, "scene0.jpg"), file_id(client, "sub/scene0-crop.jpg")
    other = file_id(client, "scene7.jpg")
    saved = client.post("/api/marks", json={"marks": [
        {"file_id": keep, "decision": "keep", "group": "g1"},
        {"file_id": discard, "decision": "discard", "group": "g1"},
    ]})
    assert saved.status_code == 200
    single = client.post("/api/marks", json={"file_id": other, "decision": "not-duplicate"})
    assert single.status_code == 200
    again = client.post("/api/marks", json={"file_id": discard, "decision": "keep"})
    marks = {m["file_id"]: m["decision"] for m in again.json()["marks"]}
    assert marks[keep] == "keep" and marks[discard] == "keep" and marks[other] == "not-duplicate"
    assert client.post("/api/marks", json={"file_id": keep, "decision": "delete"}
                       ).status_code == 422
    assert client.post("/api/marks", json={"file_id": 999999, "decision": "keep"}
                       ).status_code == 404
    exported = client.get("/api/marks.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    by_path = {row["path"]: row for row in rows}
    assert by_path["scene0.jpg"]["decision"] == "keep"
    assert by_path["scene7.jpg"]["decision"] == "not-duplicate"
    assert Path(by_path["scene0.jpg"]["absolute_path"]) == served_folder / "scene0.jpg"
    assert client.delete(f"/api/marks/{other}").status_code == 204
    assert other not in {m["file_id"] for m in client.get("/api/marks").json()["marks"]}
    # Marks are only records: every file is still there.
    assert (served_folder / "sub" / "scene0-crop.jpg").exists()
    assert (served_folder / ".lookalike" / "marks.sqlite").exists()


def test_page_and_docs(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "http" not in page.text.split("<body>")[1].replace("http://www.w3.org", "")
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 200
    assert "/api/images/{file_id}/similar" in client.get("/openapi.json").json()["paths"]


def test_token_is_required_everywhere(served_folder: Path) -> None:
    with TestClient(create_app(served_folder, token="s3cret")) as guarded:
        for path in ["/", "/api/stats", "/docs", "/openapi.json", "/static/app.js",
                     "/thumb/1", "/image/1", "/api/marks.csv"]:
            assert guarded.get(path).status_code == 401, path
        assert guarded.get("/api/stats", headers={"authorization": "Bearer nope"}
                           ).status_code == 401
        assert guarded.get("/api/stats", headers={"authorization": "Bearer s3cret"}
                           ).status_code == 200
        assert guarded.get("/api/stats", headers={"x-lookalike-token": "s3cret"}
                           ).status_code == 200
        page = guarded.get("/?token=s3cret")
        assert page.status_code == 200 and "lookalike_token" in page.headers["set-cookie"]
        assert guarded.get("/api/stats").status_code == 200  # the cookie now set


def test_concurrent_requests_while_indexing(tmp_path: Path) -> None:
    """Readers keep getting whole answers while an index run adds images."""
    import threading

    from lookalike import Collection

    folder = tmp_path / "growing"
    folder.mkdir()
    for seed in range(6):
        scene(seed).save(folder / f"a{seed}.jpg")
    Collection.index_folder(folder, model="classic")[0].close()
    errors: list[str] = []
    stop = threading.Event()
    with TestClient(create_app(folder), base_url=LOCAL) as app_client:
        def reader() -> None:
            while not stop.is_set():
                first = app_client.get("/api/images", params={"limit": 1}).json()["items"][0]
                found = app_client.get(f"/api/images/{first['id']}/similar?k=3")
                if found.status_code != 200:
                    errors.append(found.text)
                for hit in found.json().get("hits", []):
                    if app_client.get(f"/api/images/{hit['image']['id']}").status_code != 200:
                        errors.append(f"hit {hit} vanished")

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            for round_ in range(3):
                for seed in range(6 + round_ * 4, 10 + round_ * 4):
                    scene(seed).save(folder / f"b{seed}.jpg")
                Collection.index_folder(folder, model="classic", batch_size=2)[0].close()
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert not errors, errors[:3]
        assert app_client.get("/api/stats").json()["embedded"] == 18
        found = app_client.get(f"/api/images/{file_id(app_client, 'b17.jpg')}/similar?k=20")
        assert len(found.json()["hits"]) == 17
