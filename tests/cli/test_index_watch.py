"""``index --watch`` keeps indexing as files arrive, until interrupted."""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ..conftest import scene

LOOKALIKE = Path(sys.executable).with_name("lookalike")


def wait_for_line(lines: queue.Queue[str], seen: list[str], text: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.2))
        except queue.Empty:
            continue
        if text in seen[-1]:
            return True
    return False


@pytest.mark.slow
def test_index_watch_picks_up_a_new_file_and_stops_on_interrupt(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(2):
        scene(seed).save(folder / f"{seed}.jpg")
    process = subprocess.Popen([LOOKALIKE, "index", folder, "--model", "classic", "--watch"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or []],
                     daemon=True).start()
    seen: list[str] = []
    try:
        assert wait_for_line(lines, seen, "watching", 180), seen
        scene(5).save(tmp_path / "new.jpg")
        shutil.move(tmp_path / "new.jpg", folder / "new.jpg")
        assert wait_for_line(lines, seen, "1 new, 0 changed, 0 removed, 2 unchanged", 120), seen
        assert any("2 new" in line for line in seen)  # the first run
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
