"""Hostile: requests to ``lookalike serve`` never reach, leak or exhaust what it did not create.

A folder planted with links out of it (to /etc/passwd, to a private image, to the
catalogue), non-images named like images and files swapped for links after indexing;
requests from a page on another host name (DNS rebinding); bodies past their cap, with
and without a Content-Length; ids past SQLite's integers; spreadsheet formulas in the
marks export; marks whose file id now names another file.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

import lookalike.serve.server as server_module
from lookalike import Collection
from lookalike.serve import create_app
from lookalike.serve.marks import MarkRecord, MarkStore
from lookalike.store import FileRecord
from tests.conftest import in_memory, scene
from tests.hostile.trees import fingerprint

LOCAL = "http://localhost"  # a loopback name: the only kind a token-less server answers
SECRET = b"root:x:0:0:lookalike-test-secret:/root:/bin/bash\n"
INSIDE = {"scene0.jpg", "scene1.jpg", "scene2.jpg", "scene3.jpg", "links/alias.jpg"}


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def items(client: TestClient) -> dict[str, int]:
    listed = client.get("/api/images", params={"limit": 500, "status": "all"}).json()
    return {item["path"]: item["id"] for item in listed["items"]}


# -- a folder with links out of it ---------------------------------------------------------------
@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(folder, outside)``: images, a non-image named .jpg, links to files and a folder
    outside, a link inside; after indexing two indexed images are swapped for links (to
    an image outside, to the catalogue)."""
    base = tmp_path_factory.mktemp("planted")
    outside, folder = base / "outside", base / "photos"
    outside.mkdir()
    (folder / "links").mkdir(parents=True)
    (outside / "secret.jpg").write_bytes(SECRET)
    scene(20).save(outside / "private.jpg", quality=90)
    for seed in range(4):
        scene(seed).save(folder / f"scene{seed}.jpg", quality=90)
    scene(5).save(folder / "swapped.jpg", quality=90)
    scene(6).save(folder / "swapped-to-catalogue.jpg", quality=90)
    (folder / "notes.jpg").write_bytes(b"my private notes, not an image\n" * 4)
    if Path("/etc/passwd").exists():
        (folder / "links" / "passwd.jpg").symlink_to("/etc/passwd")
    (folder / "links" / "secret.jpg").symlink_to(outside / "secret.jpg")
    (folder / "links" / "private.jpg").symlink_to(outside / "private.jpg")
    (folder / "links" / "away").symlink_to(outside, target_is_directory=True)
    (folder / "links" / "alias.jpg").symlink_to(Path("..") / "scene0.jpg")
    Collection.index_folder(folder, model="classic")[0].close()
    (folder / "swapped.jpg").unlink()
    (folder / "swapped.jpg").symlink_to(outside / "private.jpg")
    (folder / "swapped-to-catalogue.jpg").unlink()
    (folder / "swapped-to-catalogue.jpg").symlink_to(folder / ".lookalike" / "catalogue.sqlite")
    return folder, outside


@pytest.fixture(scope="module")
def planted_client(planted: tuple[Path, Path]) -> Iterator[TestClient]:
    with TestClient(create_app(planted[0]), base_url=LOCAL) as client:
        yield client


def test_only_indexed_images_inside_the_folder_are_served(
        planted: tuple[Path, Path], planted_client: TestClient) -> None:
    folder, outside = planted
    before = fingerprint(folder.parent, skip=(".lookalike",))
    ids = items(planted_client)
    # the catalogue holds what was planted (whatever indexing does with the links)
    assert {"notes.jpg", "swapped.jpg", "swapped-to-catalogue.jpg"} <= set(ids)
    assert INSIDE - {"links/alias.jpg"} <= set(ids)
    secrets = [SECRET, (outside / "private.jpg").read_bytes(), b"SQLite format"]
    if Path("/etc/passwd").exists():
        secrets.append(Path("/etc/passwd").read_bytes()[:64])
    for path, file_id in ids.items():
        original = planted_client.get(f"/image/{file_id}")
        thumb = planted_client.get(f"/thumb/{file_id}", params={"size": 96})
        for response in (original, thumb):
            assert not any(secret in response.content for secret in secrets), path
        if path in INSIDE:
            assert original.status_code == 200, (path, original.text)
            assert original.content == (folder / path).read_bytes()
            assert thumb.status_code == 200
            assert Image.open(io.BytesIO(thumb.content)).format == "WEBP"
            continue
        for response in (original, thumb):
            assert response.status_code == 404, (path, response.status_code)
            detail = response.json()["detail"]
            assert f"image {file_id} " in detail
            assert str(outside) not in detail and "catalogue" not in detail  # no leak
    for name in ("swapped.jpg", "links/private.jpg", "links/away/private.jpg"):
        if name in ids:
            detail = planted_client.get(f"/image/{ids[name]}").json()["detail"]
            assert "outside the collection's folder" in detail, detail
    detail = planted_client.get(f"/image/{ids['swapped-to-catalogue.jpg']}").json()["detail"]
    assert "lookalike's own files" in detail
    skipped = planted_client.get(f"/image/{ids['notes.jpg']}").json()["detail"]
    assert "skipped" in skipped and "only indexed images" in skipped
    # the metadata of a skipped file stays readable: it names no bytes of it
    assert planted_client.get(f"/api/images/{ids['notes.jpg']}").json()["status"] == "skipped"
    assert fingerprint(folder.parent, skip=(".lookalike",)) == before


def test_skipped_objects_on_object_storage_are_not_relayed(tmp_path: Path) -> None:
    """Without links to follow, the status still decides: a non-image is not relayed."""
    folder = tmp_path / "bucket"
    folder.mkdir()
    scene(0).save(folder / "scene0.jpg", quality=90)
    scene(1).save(folder / "scene1.jpg", quality=90)
    (folder / "notes.jpg").write_bytes(SECRET)
    with in_memory(folder) as url:
        Collection.index_folder(url, tmp_path / "bucket.lookalike", model="classic")[0].close()
        with TestClient(create_app(tmp_path / "bucket.lookalike"), base_url=LOCAL) as client:
            ids = items(client)
            assert client.get(f"/image/{ids['scene0.jpg']}").content == (
                folder / "scene0.jpg").read_bytes()
            refused = client.get(f"/image/{ids['notes.jpg']}")
            assert refused.status_code == 404 and SECRET not in refused.content
            assert "skipped" in refused.json()["detail"]


# -- DNS rebinding -------------------------------------------------------------------------------
def test_loopback_server_without_token_answers_loopback_names_only(
        planted: tuple[Path, Path]) -> None:
    app = create_app(planted[0])  # bound to 127.0.0.1 by default, as `lookalike serve`
    with TestClient(app, base_url=LOCAL) as client:
        for host in ("localhost", "localhost:8765", "127.0.0.1", "127.0.0.1:8765", "[::1]",
                     "[::1]:8765", "LOCALHOST:80"):
            assert client.get("/api/stats", headers={"host": host}).status_code == 200, host
        for host in ("evil.example", "evil.example:8765", "127.0.0.1.evil.example",
                     "localhost.evil.example:8765", "192.168.1.4:8765"):
            for path in ("/api/stats", "/", "/image/1", "/api/marks.csv"):
                refused = client.get(path, headers={"host": host})
                assert refused.status_code == 403, (host, path)
                detail = refused.json()["detail"]
                assert "DNS rebinding" in detail and "--token" in detail
                assert b"root" not in refused.content and b"scene" not in refused.content
        posted = client.post("/api/marks", headers={"host": "evil.example"},
                             json={"file_id": 1, "decision": "discard"})
        assert posted.status_code == 403
        assert client.get("/api/marks").json()["total"] == 0  # nothing recorded


def test_host_check_follows_the_bind_address_and_the_token(planted: tuple[Path, Path]) -> None:
    evil = {"host": "evil.example:8765"}
    with TestClient(create_app(planted[0], host="127.0.0.2"), base_url=LOCAL) as bound:
        assert bound.get("/api/stats", headers={"host": "127.0.0.2:8765"}).status_code == 200
        assert bound.get("/api/stats", headers=evil).status_code == 403
    # with a token, the token guards (a rebinding page cannot send it)
    with TestClient(create_app(planted[0], token="s3cret"), base_url=LOCAL) as guarded:
        assert guarded.get("/api/stats", headers=evil).status_code == 401
        assert guarded.get("/api/stats", headers={**evil, "authorization": "Bearer s3cret"}
                           ).status_code == 200
    # bound to the network on purpose (the CLI warns): any name the machine has
    with TestClient(create_app(planted[0], host="0.0.0.0"), base_url=LOCAL) as open_:
        assert open_.get("/api/stats", headers=evil).status_code == 200


def test_serve_run_passes_the_bind_address_to_the_app(planted: tuple[Path, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[FastAPI] = []
    monkeypatch.setattr(server_module.uvicorn, "run", lambda app, **_: started.append(app))
    server_module.run(planted[0] / ".lookalike", host="127.0.0.1", port=8765)
    server_module.run(planted[0] / ".lookalike", host="localhost", port=8765)
    for app in started:
        with TestClient(app, base_url=LOCAL) as client:
            assert client.get("/api/stats", headers={"host": "evil.example"}).status_code == 403
            assert client.get("/api/stats", headers={"host": "localhost:8765"}
                              ).status_code == 200


# -- request bodies past their cap ---------------------------------------------------------------
def asgi_request(app: FastAPI, method: str, path: str, chunks: Iterable[bytes],
                 headers: dict[str, str]) -> tuple[int, dict[str, str], bytes, int]:
    """One request straight through the ASGI app, its body handed over chunk by chunk
    only when the app asks: ``(status, headers, body, bytes the app pulled)``."""
    pulled = 0
    source = iter(chunks)
    finished = False
    response: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal pulled, finished
        if finished:
            return {"type": "http.disconnect"}
        chunk = next(source, None)
        if chunk is None:
            finished = True
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
            response["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            response["body"] += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 8765),
             "headers": [(b"host", b"localhost:8765")] + [
                 (k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(app(scope, receive, send))
    return response["status"], response["headers"], response["body"], pulled


def spaces(total: int, chunk: int = 4096) -> Iterator[bytes]:
    """``total`` bytes of JSON whitespace, made only as they are read."""
    for _ in range(total // chunk):
        yield b" " * chunk


@pytest.fixture
def capped(planted: tuple[Path, Path]) -> FastAPI:
    return create_app(planted[0], max_body_bytes=64 * 1024, max_upload_bytes=1024 * 1024)


def test_chunked_bodies_are_cut_off_at_the_cap(capped: FastAPI) -> None:
    """No Content-Length: the bytes are counted as they arrive and reading stops at the
    cap (before: /api/search read a chunked body whole, /api/marks had no cap at all)."""
    json_body = {"content-type": "application/json", "transfer-encoding": "chunked"}
    for path in ("/api/search", "/api/marks"):
        status, headers, body, pulled = asgi_request(capped, "POST", path,
                                                     spaces(64 * 2**20), json_body)
        assert status == 413, (path, body)
        assert json.loads(body)["detail"] == "request body is larger than 65,536 bytes"
        assert headers["connection"] == "close"
        assert 64 * 1024 < pulled <= 64 * 1024 + 4096, (path, pulled)  # not 64 MB
    form = {"content-type": "multipart/form-data; boundary=x"}
    head = (b'--x\r\ncontent-disposition: form-data; name="file"; filename="q.png"\r\n'
            b"content-type: image/png\r\n\r\n")
    status, _, body, pulled = asgi_request(capped, "POST", "/api/search",
                                           [head, *spaces(64 * 2**20)], form)
    assert status == 413 and "upload is larger than 1,048,576 bytes" in body.decode()
    assert pulled <= 1024 * 1024 + 65536 + 4096


def test_declared_lengths_over_the_cap_are_refused_unread(capped: FastAPI) -> None:
    length = {"content-type": "application/json", "content-length": str(10 * 2**20)}
    for path in ("/api/search", "/api/marks", "/api/stats"):
        status, headers, body, pulled = asgi_request(capped, "POST", path,
                                                     spaces(10 * 2**20), length)
        assert status == 413 and pulled == 0, path
        assert "larger than 65,536 bytes" in json.loads(body)["detail"]
    with TestClient(capped, base_url=LOCAL) as client:
        marks = [{"file_id": 1, "decision": "keep", "note": "x" * 1000}] * 100  # ~110 KB
        refused = client.post("/api/marks", json={"marks": marks})
        assert refused.status_code == 413 and "65,536" in refused.json()["detail"]
        assert client.get("/api/marks").json()["total"] == 0


def test_bodies_under_their_cap_and_uploads_keep_working(capped: FastAPI) -> None:
    with TestClient(capped, base_url=LOCAL) as client:
        dim = client.get("/api/stats").json()["dim"]
        found = client.post("/api/search", json={"vector": [0.1] * dim, "k": 2})
        assert found.status_code == 200 and len(found.json()["hits"]) == 2
        # an upload may be larger than the JSON cap, up to its own
        image = png(Image.effect_noise((256, 256), 64).convert("RGB"))
        assert 64 * 1024 < len(image) < 1024 * 1024
        uploaded = client.post("/api/search", files={"file": ("q.png", image)})
        assert uploaded.status_code == 200, uploaded.text
        big = client.post("/api/search", files={"file": ("q.png", b"\0" * (2 * 2**20))})
        assert big.status_code == 413 and "upload is larger" in big.json()["detail"]
        mark = client.post("/api/marks", json={"file_id": items(client)["scene1.jpg"],
                                               "decision": "keep"})
        assert mark.status_code == 200
        client.delete(f"/api/marks/{items(client)['scene1.jpg']}")


def test_a_real_server_stops_reading_a_chunked_body(capped: FastAPI) -> None:
    """uvicorn + httpx, a generator body (Transfer-Encoding: chunked): the server answers
    413 and closes the connection instead of taking in 128 MB."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(capped, host="127.0.0.1", port=port,
                                           log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for chunk in spaces(128 * 2**20, 65536):
            sent += len(chunk)
            yield chunk

    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        try:
            response = httpx.post(f"{url}/api/marks", content=body(), timeout=30,
                                  headers={"content-type": "application/json"})
            assert response.status_code == 413
            assert "65,536" in response.json()["detail"]
        except httpx.TransportError:
            pass  # the server closed the connection while the client was still sending
        assert sent < 16 * 2**20, sent  # the rest was never read
        assert httpx.get(f"{url}/api/stats").status_code == 200  # and it still serves
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- ids, k, offsets past any range --------------------------------------------------------------
def test_huge_and_negative_numbers_get_a_4xx_with_a_message(planted: tuple[Path, Path]
                                                            ) -> None:
    huge, enormous = "9" * 20, "9" * 5000  # past SQLite's integers; past int()'s 4,300 digits
    with TestClient(create_app(planted[0]), base_url=LOCAL,
                    raise_server_exceptions=False) as client:
        requests = [("get", f"/api/images/{huge}"), ("get", f"/api/images/{enormous}"),
                    ("get", f"/api/images/{huge}/similar"), ("get", f"/image/{huge}"),
                    ("get", f"/thumb/{huge}"), ("get", f"/image/{enormous}"),
                    ("delete", f"/api/marks/{huge}")]
        for method, path in requests:
            response = client.request(method, path)
            assert response.status_code == 404, (path, response.status_code)
            assert "no image with that id" in response.json()["detail"], path
        for file_id in (int(huge), -5, 2**63):
            marked = client.post("/api/marks", json={"file_id": file_id, "decision": "keep"})
            assert marked.status_code == 422, file_id
        for k in (huge, "0", "5000", "50"):  # 50 > the number of images
            clusters = client.get("/api/clusters", params={"k": k})
            assert clusters.status_code == 422, (k, clusters.text)
            assert "k must be" in clusters.json()["detail"] or (
                "no clusters" in clusters.json()["detail"])
        for params in ({"cluster": huge}, {"cluster": "-3"}, {"offset": huge},
                       {"group": huge}):
            listed = client.get("/api/images", params=params)
            assert listed.status_code in (200, 404), (params, listed.text)
            assert listed.status_code == 404 or listed.json()["items"] == []
        for route in ("/api/images", "/api/duplicates", "/api/groups"):
            for params in ({"offset": "-1"}, {"limit": huge}, {"limit": "0"}):
                assert client.get(route, params=params).status_code == 422, (route, params)
        scene0 = items(client)["scene0.jpg"]
        for k in (huge, "-1", "0"):
            assert client.get(f"/api/images/{scene0}/similar", params={"k": k}
                              ).status_code == 422
        nested = client.post("/api/search", content=b"[" * 100_000,
                             headers={"content-type": "application/json"})
        assert nested.status_code == 400 and "bad search request" in nested.json()["detail"]
        for vector in ("[1e400]", f"[{huge}{'0' * 400}]"):
            found = client.post("/api/search", content=f'{{"vector": {vector}}}',
                                headers={"content-type": "application/json"})
            assert found.status_code == 400, vector


def test_a_huge_id_does_not_fail_the_searches_batched_with_it(planted: tuple[Path, Path]
                                                              ) -> None:
    from lookalike.serve.batching import SearchBatcher

    collection = Collection.open(planted[0])
    batcher = SearchBatcher(collection, workers=1)
    try:
        scene0 = collection.store.file_by_path("scene0.jpg")
        assert scene0 is not None
        futures = [batcher.submit(10**20, 3), batcher.submit(scene0.id, 3)]
        with pytest.raises(KeyError):
            futures[0].result(timeout=30)
        assert len(futures[1].result(timeout=30)) == 3
    finally:
        batcher.close()
        collection.close()


# -- the marks export in a spreadsheet -----------------------------------------------------------
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP: what a spreadsheet may run
FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"click\")", "+1+1", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1"]


def test_marks_csv_neutralises_formulas(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    names = ["=1+2.jpg", "+plus.jpg", "-dash.jpg", "@at.jpg", "plain.jpg"]
    for seed, name in enumerate(names):
        scene(seed + 30).save(folder / name, quality=90)
    Collection.index_folder(folder, model="classic")[0].close()
    with TestClient(create_app(folder), base_url=LOCAL) as client:
        ids = items(client)
        notes = [*FORMULAS, "a = b, plainly"][:len(names)]
        marks = [{"file_id": ids[name], "decision": "discard", "note": note,
                  "group": "=cmd|' /C calc'!A0" if name == "plain.jpg" else "g1"}
                 for name, note in zip(names, notes)]
        assert client.post("/api/marks", json={"marks": marks}).status_code == 200
        text = client.get("/api/marks.csv").text
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == len(names)
    by_id = {int(row["file_id"]): row for row in rows}
    for mark, name in zip(marks, names):
        row = by_id[mark["file_id"]]
        for column, original in (("path", name), ("note", mark["note"]),
                                 ("group", mark["group"])):
            risky = original.startswith(FORMULA_STARTS)
            assert row[column] == ("'" + original if risky else original), (column, original)
        assert row["absolute_path"] == str(folder / name)  # starts with /: usable as is
    for row in csv.reader(io.StringIO(text, newline="")):
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), cell


# -- marks of a file id that now names another file ----------------------------------------------
def record(file_id: int, path: str, digest: str | None = "aa") -> FileRecord:
    return FileRecord(file_id, path, 1, 1, digest, 8, 8, "JPEG", "ok", None)


def test_a_mark_is_read_back_only_for_the_file_it_was_made_on(tmp_path: Path) -> None:
    store = MarkStore(tmp_path)
    try:
        store.save([MarkRecord(5, "old.jpg", "aa", "discard", "g", "dup", 0.0),
                    MarkRecord(6, "kept.jpg", None, "keep", "g", None, 0.0)])
        same = {5: record(5, "old.jpg"), 6: record(6, "kept.jpg")}
        assert {m.file_id for m in store.all(same)} == {5, 6}
        assert store.decisions(same) == {5: "discard", 6: "keep"}
        reused = {5: record(5, "new.jpg"), 6: record(6, "kept.jpg")}  # id 5 reused
        assert store.decisions(reused) == {6: "keep"}
        assert [m.file_id for m in store.all(reused)] == [6]
        assert "new.jpg" not in store.to_csv(tmp_path, reused)
        assert "old.jpg" not in store.to_csv(tmp_path, reused)
        assert store.decisions({6: record(6, "kept.jpg")}) == {6: "keep"}  # 5 is gone
        edited = {5: record(5, "old.jpg", "bb"), 6: record(6, "kept.jpg", "cc")}
        assert store.decisions(edited) == {6: "keep"}  # 5 now holds other content
        assert len(store.all()) == 2  # ignored, not deleted
    finally:
        store.close()


def test_a_deleted_files_mark_never_lands_on_the_next_file(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(4):
        scene(seed + 40).save(folder / f"p{seed}.jpg", quality=90)
    Collection.index_folder(folder, model="classic")[0].close()
    with TestClient(create_app(folder), base_url=LOCAL) as client:
        ids = items(client)
        last = max(ids, key=ids.__getitem__)  # the highest id: SQLite may hand it out again
        client.post("/api/marks", json={"file_id": ids[last], "decision": "discard",
                                        "note": "the worse copy"}).raise_for_status()
        (folder / last).unlink()
        scene(50).save(folder / "new.jpg", quality=90)
        Collection.index_folder(folder, model="classic")[0].close()
        now = items(client)
        assert last not in now
        listed = client.get("/api/marks").json()
        assert listed["total"] == 0 and listed["marks"] == [], listed
        assert "the worse copy" not in client.get("/api/marks.csv").text
        for group in client.get("/api/duplicates", params={"verify": "false",
                                                           "threshold": -1}).json()["groups"]:
            assert all(member["mark"] is None for member in group["members"])
        # marking the new file works, under its own path
        client.post("/api/marks", json={"file_id": now["new.jpg"], "decision": "keep"}
                    ).raise_for_status()
        assert [(m["path"], m["decision"]) for m in client.get("/api/marks").json()["marks"]
                ] == [("new.jpg", "keep")]
    assert os.path.exists(folder / "new.jpg")
