"""How long after ``lookalike serve`` starts the page's first analyses are ready.

    python benchmarks/bench_page_start.py FOLDER --pristine COPY   # COPY: FOLDER/.lookalike
                                                                 # saved right after `index`

Each run restores the collection directory from ``--pristine`` (the state ``index``
leaves: no k-NN graph, no calibration cached yet), starts ``lookalike serve`` in a child
process, and as soon as it answers asks for what the page shows first, all at once, the
way the page's three views ask (``/api/clusters``, ``/api/map``, ``/api/duplicates`` at
their defaults). Printed: when the server answered, when each analysis answered, and
(where the server has them) the background jobs as ``/api/jobs`` last listed them. Peak
RSS of the server process is read from /proc while it runs.

``--source DIR`` serves the package found in DIR instead of the installed one (e.g. a
``git archive`` of an older commit), with the same interpreter and dependencies.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

VIEWS = ("/api/clusters", "/api/map", "/api/duplicates")
# The CLI, imported from a given folder rather than through the editable install's finder.
LAUNCH = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in "
          "repr(f)]; sys.path.insert(0, sys.argv.pop(1)); from lookalike.cli import app; "
          "sys.argv[0] = 'lookalike'; app()")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--pristine", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--source", type=Path, help="a folder holding another lookalike/")
    args = parser.parse_args()
    database = args.folder / ".lookalike"
    shutil.rmtree(database, ignore_errors=True)
    shutil.copytree(args.pristine, database, symlinks=True)
    base = f"http://127.0.0.1:{args.port}"
    started = time.perf_counter()
    command = ([sys.executable, "-c", LAUNCH, str(args.source)] if args.source else
               [str(Path(sys.executable).parent / "lookalike")])
    server = subprocess.Popen([*command, "serve", str(args.folder), "--port", str(args.port)])
    ready: dict[str, float] = {}
    try:
        with httpx.Client(base_url=base, timeout=args.timeout) as client:
            while True:
                try:
                    client.get("/api/stats").raise_for_status()
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            ready["server"] = time.perf_counter() - started

            def ask(view: str) -> None:
                client.get(view).raise_for_status()
                ready[view] = time.perf_counter() - started

            askers = [threading.Thread(target=ask, args=(view,)) for view in VIEWS]
            for asker in askers:
                asker.start()
            for asker in askers:
                asker.join()
            jobs = client.get("/api/jobs")
            peak = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    for name, seconds in ready.items():
        print(f"  {name:<16} answered {seconds:7.1f} s after start")
    if jobs.status_code == 200:
        for job in jobs.json():
            print(f"  job {job['name']:<11} {job['state']:<9} {job['seconds']:7.1f} s "
                  f"(last stage {job['stage']} {job['done']}/{job['total']})")
    print(f"  server peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
