"""The review API on a real server over real files: reviewed groups, accepting the
suggestions, the dry run, applying (files moved, hashes kept, the collection following)
and undoing it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lookalike import Collection
from lookalike.serve import create_app
from tests.act.test_quarantine import digest, review_folder
from tests.serve.conftest import LOCAL


@pytest.fixture
def review(tmp_path: Path) -> Iterator[tuple[Path, TestClient]]:
    """Three exact pairs (a0 with sub/a0-copy, a1, a2) and a lone a3."""
    root = review_folder(tmp_path / "photos")
    with TestClient(create_app(root), base_url=LOCAL) as client:
        yield root, client


def hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): digest(p) for p in folder.rglob("*.jpg")}


def groups_by_path(client: TestClient) -> dict[str, dict]:
    """Each group of /api/duplicates by its members' paths, sorted and joined."""
    groups = client.get("/api/duplicates", params={"limit": 500}).json()["groups"]
    return {"+".join(sorted(m["image"]["path"] for m in g["members"])): g for g in groups}


def test_review_accept_plan_apply_undo(review: tuple[Path, TestClient]) -> None:
    root, client = review
    quarantine = root.parent / "photos-duplicates"
    groups = groups_by_path(client)
    assert set(groups) == {"a0.jpg+sub/a0-copy.jpg", "a1-copy.jpg+a1.jpg", "a2-copy.jpg+a2.jpg"}
    assert not any(g["reviewed"] for g in groups.values())
    assert client.get("/api/review/status").json() == {
        "reviewed": 0, "total": 3, "files_to_move": 0, "bytes_to_free": 0, "refused": 0,
        "last_run": None}

    # accept the suggestions: keeper keep, the other copy discard, the group reviewed
    accepted = client.post("/api/review/accept-suggestions", json={"tiers": ["exact"]})
    assert accepted.json() == {"groups": 3, "files": 6, "passed_over": 0}
    groups = groups_by_path(client)
    assert all(g["reviewed"] for g in groups.values())
    for group in groups.values():
        assert {m["mark"] for m in group["members"] if m["keeper"]} == {"keep"}
        assert {m["mark"] for m in group["members"] if not m["keeper"]} == {"discard"}
    discarded = {g_key: next(m["image"] for m in g["members"] if not m["keeper"])
                 for g_key, g in groups.items()}

    # a1's keeper marked discard too: its group is refused; a2's discard changes on disk
    a1_keeper = next(m["image"] for m in groups["a1-copy.jpg+a1.jpg"]["members"] if m["keeper"])
    client.post("/api/marks", json={"file_id": a1_keeper["id"], "decision": "discard",
                                    "group": groups["a1-copy.jpg+a1.jpg"]["key"]})
    changed = discarded["a2-copy.jpg+a2.jpg"]["path"]
    with open(root / changed, "ab") as edited:
        edited.write(b"retouched")
    before = hashes(root)

    plan = client.post("/api/review/plan").json()
    moving = discarded["a0.jpg+sub/a0-copy.jpg"]
    size = (root / moving["path"]).stat().st_size
    assert plan["folder"] == str(quarantine)
    assert (plan["files"], plan["bytes"]) == (1, size)
    assert plan["moves"] == [{"id": moving["id"], "path": moving["path"],
                              "destination": str(quarantine / moving["path"]), "size": size}]
    assert [(g["key"], g["paths"]) for g in plan["refused"]] == [
        (groups["a1-copy.jpg+a1.jpg"]["key"], ["a1-copy.jpg", "a1.jpg"])]
    assert plan["skipped"] == [{"path": changed,
                                "reason": "changed since it was marked: review it again"}]
    assert hashes(root) == before and not quarantine.exists()  # a dry run

    applied = client.post("/api/review/apply")
    assert applied.status_code == 200, applied.text
    result = applied.json()
    assert (result["done"], result["bytes"], result["failed"]) == (1, size, [])
    assert result["collection"] == {"renamed": 0, "departed": 1, "restored": 0}
    assert result["journal"].startswith("sort-") and result["journal"].endswith(".jsonl")
    assert hashes(quarantine) == {moving["path"]: before[moving["path"]]}
    assert hashes(root) == {p: h for p, h in before.items() if p != moving["path"]}
    listed = client.get("/api/images", params={"limit": 500, "status": "all"}).json()["items"]
    assert moving["path"] not in {item["path"] for item in listed}  # left the collection
    assert "a0.jpg+sub/a0-copy.jpg" not in groups_by_path(client)
    after = client.post("/api/review/plan").json()  # what moved is no longer in the plan
    assert (after["files"], [s["path"] for s in after["skipped"]]) == (0, [changed])

    status = client.get("/api/review/status").json()
    assert status["last_run"]["journal"] == result["journal"]
    assert (status["last_run"]["files"], status["last_run"]["bytes"]) == (1, size)
    assert status["last_run"]["undone"] is False

    undone = client.post("/api/review/undo")
    assert undone.status_code == 200, undone.text
    assert undone.json()["undone"] == 1 and undone.json()["collection"]["restored"] == 1
    assert hashes(root) == before and not quarantine.exists()
    listed = client.get("/api/images", params={"limit": 500, "status": "all"}).json()["items"]
    assert {item["path"]: item["id"] for item in listed}[moving["path"]] == moving["id"]
    assert client.get("/api/review/status").json()["last_run"]["undone"] is True
    again = client.post("/api/review/undo")
    assert again.status_code == 409 and "no applied review" in again.json()["detail"]


def test_group_decisions_and_reviewed_state(review: tuple[Path, TestClient]) -> None:
    root, client = review
    group = groups_by_path(client)["a1-copy.jpg+a1.jpg"]
    ids = sorted(m["image"]["id"] for m in group["members"])
    client.post("/api/marks", json={"marks": [
        {"file_id": i, "decision": "discard", "group": group["key"]} for i in ids]})
    refused = client.post("/api/review/plan").json()["refused"]
    assert [g["key"] for g in refused] == [group["key"]]
    forced = client.post("/api/review/plan", json={"force": True}).json()
    assert forced["files"] == 2 and forced["forced"] == [group["key"]]

    kept = client.post(f"/api/review/groups/{group['key']}",
                       json={"reviewed": True, "decision": "keep-all"})
    assert kept.json() == {"key": group["key"], "reviewed": True, "decision": "keep-all",
                           "marks": {str(i): "keep" for i in ids}}
    assert client.post("/api/review/plan").json()["files"] == 0
    assert groups_by_path(client)["a1-copy.jpg+a1.jpg"]["reviewed"] is True
    nothing = client.post("/api/review/apply")
    assert nothing.status_code == 409 and "nothing to move" in nothing.json()["detail"]

    other = client.post(f"/api/review/groups/{group['key']}",
                        json={"reviewed": True, "decision": "not-duplicates"}).json()
    assert set(other["marks"].values()) == {"not-duplicate"}
    reopened = client.post(f"/api/review/groups/{group['key']}", json={"reviewed": False})
    assert reopened.json()["reviewed"] is False
    assert groups_by_path(client)["a1-copy.jpg+a1.jpg"]["reviewed"] is False
    assert client.get("/api/review/status").json()["reviewed"] == 0
    # marked groups are passed over by accept-suggestions; similar shots are never accepted
    accepted = client.post("/api/review/accept-suggestions", json={}).json()
    assert accepted == {"groups": 2, "files": 4, "passed_over": 1}
    assert client.post("/api/review/accept-suggestions",
                       json={"tiers": ["similar"]}).status_code == 422
    assert client.post("/api/review/groups/1", json={"reviewed": True}).status_code == 422
    assert client.post("/api/review/groups/998-999",
                       json={"reviewed": True}).status_code == 404


def test_review_actions_follow_the_servers_access_rules(tmp_path: Path) -> None:
    root = review_folder(tmp_path / "photos")
    with TestClient(create_app(root, token="s3cret", max_body_bytes=1000),
                    base_url=LOCAL) as client:
        assert client.post("/api/review/apply").status_code == 401
        assert client.post("/api/review/undo").status_code == 401
        headers = {"authorization": "Bearer s3cret"}
        big = client.post("/api/review/plan", headers=headers,
                          content=b'{"force": false' + b" " * 2000 + b"}")
        assert big.status_code == 413
        assert client.post("/api/review/plan", headers=headers).json()["files"] == 0
    with TestClient(create_app(root), base_url="http://attacker.example") as client:
        assert client.post("/api/review/apply").status_code == 403
    assert {p.name for p in root.rglob("*.jpg")} >= {"a0-copy.jpg", "a1-copy.jpg"}


def test_a_page_of_another_site_cannot_change_files_or_decisions(
        review: tuple[Path, TestClient]) -> None:
    """On loopback without a token, a page on another site could make the browser POST
    here; browsers say where such a request comes from, and it is refused."""
    root, client = review
    before = {p.relative_to(root) for p in root.rglob("*.jpg")}
    ids = [g["members"][1]["image"]["id"] for g in groups_by_path(client).values()]
    for headers in ({"origin": "http://evil.example"}, {"origin": "null"},
                    {"origin": "http://localhost:9999"}, {"sec-fetch-site": "cross-site"}):
        for path, body in (("/api/review/accept-suggestions", {}), ("/api/review/apply", {}),
                           ("/api/review/undo", {}),
                           ("/api/marks", {"file_id": ids[0], "decision": "discard"})):
            refused = client.post(path, json=body, headers=headers)
            assert refused.status_code == 403, (path, headers)
    assert client.get("/api/marks").json()["total"] == 0
    assert {p.relative_to(root) for p in root.rglob("*.jpg")} == before
    own = {"origin": "http://localhost", "sec-fetch-site": "same-origin"}  # the page itself
    assert client.post("/api/review/accept-suggestions", json={}, headers=own).json()[
        "groups"] == 3
    assert client.post("/api/review/apply", json={}, headers=own).json()["done"] == 3


def test_a_collection_on_object_storage_is_reviewed_but_not_moved(remote_folder: str,
                                                                  tmp_path: Path) -> None:
    db = tmp_path / "db"
    Collection.index_folder(remote_folder, db, model="classic")[0].close()
    with TestClient(create_app(db), base_url=LOCAL) as client:
        status = client.get("/api/review/status").json()
        assert (status["files_to_move"], status["bytes_to_free"]) == (0, 0)
        refused = client.post("/api/review/plan", json={})
        assert refused.status_code == 409 and "object storage" in refused.json()["detail"]
