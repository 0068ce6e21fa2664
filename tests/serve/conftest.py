"""A real small collection (generated scenes, edited copies, one broken file), indexed
with the weight-free classic model, shared by the server tests of a session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lookalike import Collection
from lookalike.serve import create_app
from tests.conftest import crop, flip, scene

# The server answers only loopback names without a token (no DNS rebinding): the test
# client's default "testserver" is refused.
LOCAL = "http://localhost"


@pytest.fixture(scope="session")
def served_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("served") / "photos"
    (folder / "sub").mkdir(parents=True)
    for seed in range(12):
        scene(seed).save(folder / f"scene{seed}.jpg", quality=90)
    crop(scene(0)).save(folder / "sub" / "scene0-crop.jpg", quality=90)
    flip(scene(1)).save(folder / "sub" / "scene1-flip.png")
    scene(2).resize((160, 120)).save(folder / "sub" / "scene2-small.jpg", quality=80)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 4)
    collection, _ = Collection.index_folder(folder, model="classic")
    collection.close()
    return folder


@pytest.fixture(scope="session")
def client(served_folder: Path) -> Iterator[TestClient]:
    with TestClient(create_app(served_folder, max_upload_bytes=2 * 2**20),
                    base_url=LOCAL) as test_client:
        yield test_client


def file_id(client: TestClient, name: str) -> int:
    items = client.get("/api/images", params={"limit": 500, "status": "all"}).json()["items"]
    return next(item["id"] for item in items if item["path"] == name)
