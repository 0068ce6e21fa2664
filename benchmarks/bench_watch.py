"""How soon a served folder shows a new file, and forgets a deleted one, with ``--watch``.

    python benchmarks/bench_watch.py            # flowers17 (1,360 images), 5 files in turn

flowers17 is copied to a work folder and indexed with the default model; ``lookalike serve
--watch`` runs on it. Then, one at a time, a new photo (an edited copy of one of the set)
is moved into the folder: timed until ``/api/images`` lists it and its similar images
come back, then until it is gone from the list after deletion.
"""

from __future__ import annotations

import argparse
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

from PIL import Image, ImageOps

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers17"
LOOKALIKE = Path(sys.executable).with_name("lookalike")


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
        return json.loads(answer.read())


def until(port: int, path: str, check: Any) -> tuple[float, Any]:
    started = time.monotonic()
    while True:
        try:
            found = get(port, path)
            if check(found):
                return time.monotonic() - started, found
        except OSError:
            pass
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lookalike-bench-watch"))
    args = parser.parse_args()
    folder = args.work / "flowers17"
    if not folder.exists():
        shutil.copytree(SHARED, folder)
    subprocess.run([LOOKALIKE, "index", folder], check=True, capture_output=True)
    total = sum(1 for p in folder.rglob("*.jpg") if ".lookalike" not in p.parts)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = subprocess.Popen([LOOKALIKE, "serve", folder, "--watch", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until(port, "/api/images", lambda page: page["total"] == total)
        sources = sorted(SHARED.rglob("*.jpg"))[:: max(1, 1360 // args.files)][: args.files]
        for number, source in enumerate(sources):
            staged = args.work / f"new_{number}.jpg"
            with Image.open(source) as image:
                ImageOps.mirror(image).save(staged, quality=85)
            target = folder / source.parent.name / staged.name
            shutil.move(staged, target)
            listed, page = until(port, "/api/images?sort=-id&limit=1",
                                 lambda page, name=staged.name: page["items"][0]["path"]
                                 .endswith(name))
            new_id = page["items"][0]["id"]
            searchable = listed + until(port, f"/api/images/{new_id}/similar?k=5",
                                        lambda found: len(found["hits"]) == 5)[0]
            target.unlink()
            gone, _ = until(port, "/api/images", lambda page: page["total"] == total)
            print(f"{staged.name}: listed after {listed:.2f} s, searchable after "
                  f"{searchable:.2f} s, gone {gone:.2f} s after deletion", flush=True)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
