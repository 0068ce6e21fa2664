"""``lookalike serve``: argument handling and the warning for a non-loopback bind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import lookalike.serve
from lookalike.cli import app
from lookalike.serve import is_loopback


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(lookalike.serve, "run",
                        lambda directory, **options: seen.append({"dir": directory, **options}))
    return seen


def test_defaults_bind_loopback(served_folder: Path, calls: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["serve", str(served_folder)])
    assert result.exit_code == 0, result.output
    assert calls[0]["host"] == "127.0.0.1" and calls[0]["port"] == 8765
    assert calls[0]["token"] is None
    assert calls[0]["dir"] == served_folder / ".lookalike"
    assert "warning" not in result.output


def test_warns_on_open_bind_without_token(served_folder: Path,
                                          calls: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["serve", str(served_folder), "--host", "0.0.0.0"])
    assert result.exit_code == 0 and "without --token" in result.output
    quiet = CliRunner().invoke(app, ["serve", str(served_folder), "--host", "0.0.0.0",
                                     "--token", "t"])
    assert "without --token" not in quiet.output and calls[-1]["token"] == "t"


def test_no_collection_is_a_clear_error(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 1 and not calls


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


@pytest.mark.slow
def test_workers_share_one_port_one_collection_and_the_token(photo_folder: Path) -> None:
    """``--workers 2``: two processes answer on one port, each with the token, and a mark
    saved through one is seen through the other."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from lookalike import Collection

    Collection.index_folder(photo_folder, model="classic")[0].close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "lookalike.cli", "serve", str(photo_folder), "--port",
         str(port), "--workers", "2", "--token", "secret"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    url, auth = f"http://127.0.0.1:{port}", {"authorization": "Bearer secret"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/stats", headers=auth).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, \
                server.stderr.read().decode() if server.poll() is not None else "no answer"
            time.sleep(0.1)
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        commands = [Path(f"/proc/{child}/cmdline").read_bytes() for child in children]
        assert sum(b"spawn_main" in command for command in commands) == 2  # + a tracker
        assert httpx.get(f"{url}/api/stats").status_code == 401  # the workers got the token
        items = httpx.get(f"{url}/api/images", headers=auth, params={"limit": 50}).json()
        ids = {item["path"]: item["id"] for item in items["items"]}
        httpx.post(f"{url}/api/marks", headers=auth, json={
            "file_id": ids["sub/scene0-crop.jpg"], "decision": "discard"}).raise_for_status()
        for _ in range(20):  # a new connection each time: both workers answer some
            similar = httpx.get(f"{url}/api/images/{ids['scene0.jpg']}/similar",
                                headers=auth, params={"k": 1}).json()
            assert similar["hits"][0]["image"]["path"] == "sub/scene0-crop.jpg"
            marks = httpx.get(f"{url}/api/marks", headers=auth).json()["marks"]
            assert [m["decision"] for m in marks] == ["discard"]
    finally:
        server.terminate()
        server.wait(timeout=20)
