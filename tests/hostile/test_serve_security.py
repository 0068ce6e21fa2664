"""Hostile: requests to ``lookalike serve`` never reach, leak or exhaust what it did not create.

A folder planted with links out of it (to /etc/passwd, to a private image, to the
catalogue), non-images named like images and files swapped for links after indexing;
requests from a page on another host name (DNS rebinding).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

import lookalike.serve.server as server_module
from lookalike import Collection
from lookalike.serve import create_app
from tests.conftest import in_memory, scene
from tests.hostile.trees import fingerprint

LOCAL = "http://localhost"  # a loopback name: the only kind a token-less server answers
SECRET = b"root:x:0:0:lookalike-test-secret:/root:/bin/bash\n"
INSIDE = {"scene0.jpg", "scene1.jpg", "scene2.jpg", "scene3.jpg", "links/alias.jpg"}


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


