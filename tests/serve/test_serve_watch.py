"""``serve --watch``: a file copied into the served folder is listed and searchable, a
deleted one disappears, with no restart. (How fast: benchmarks/bench_watch.py; the bounds
here only keep a broken watch from hanging the suite.)"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ..conftest import crop, scene

pytest.importorskip("uvicorn", reason="the serve extra is not installed")
LOOKALIKE = Path(sys.executable).with_name("lookalike")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return json.loads(answer.read())


def poll(port: int, path: str, check: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            found = get(port, path)
            if check(found):
                return found
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not change in {seconds} s")
        time.sleep(0.2)


@pytest.mark.slow
def test_served_folder_follows_new_and_deleted_files(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(3):
        scene(seed).save(folder / f"{seed}.jpg", quality=90)
    subprocess.run([LOOKALIKE, "index", folder, "--model", "classic"], check=True,
                   capture_output=True)
    port = free_port()
    server = subprocess.Popen([LOOKALIKE, "serve", folder, "--watch", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll(port, "/api/images", lambda page: page["total"] == 3, 60)
        crop(scene(7), 0.9).save(tmp_path / "new.jpg", quality=90)
        shutil.move(tmp_path / "new.jpg", folder / "new.jpg")
        page = poll(port, "/api/images", lambda page: page["total"] == 4, 60)
        new = next(item for item in page["items"] if item["path"] == "new.jpg")
        similar = get(port, f"/api/images/{new['id']}/similar?k=2")
        assert len(similar["hits"]) == 2
        (folder / "0.jpg").unlink()
        page = poll(port, "/api/images", lambda page: page["total"] == 3, 60)
        assert {item["path"] for item in page["items"]} == {"1.jpg", "2.jpg", "new.jpg"}
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
