"""Run fastdup on a folder and write what bench_fastdup.py scores, as JSON.

Runs inside fastdup's own throw-away virtualenv (fastdup is never a lookalike dependency:
its licence is non-commercial), so it imports nothing from lookalike:

    FASTDUP_VENV/bin/python benchmarks/fastdup_job.py IMAGES WORK_DIR OUT.json

``fastdup.create(WORK_DIR, IMAGES).run()`` at its defaults (kNN k=2, similarity kept from
0.9, connected components at 0.96), then from WORK_DIR: every file (relative to IMAGES),
the similarity pairs (for a threshold sweep) and fastdup's own components.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path


def main(images: Path, work_dir: Path, out: Path) -> None:
    import fastdup  # type: ignore[import-not-found]  # imported before the timed call

    started = time.perf_counter()
    fastdup.create(work_dir=str(work_dir), input_dir=str(images)).run()
    seconds = time.perf_counter() - started

    def rows(name: str) -> list[dict[str, str]]:
        with open(work_dir / name, newline="") as handle:
            return list(csv.DictReader(handle))

    files = {int(r["index"]): str(Path(r["filename"]).relative_to(images))
             for r in rows("atrain_features.dat.csv")}
    pairs = {tuple(sorted((int(r["from"]), int(r["to"])))): float(r["distance"])
             for r in rows("similarity.csv")}
    similarity = [(files[a], files[b], value) for (a, b), value in pairs.items()]
    members: dict[int, list[str]] = {}
    for r in rows("connected_components.csv"):
        if int(r["__id"]) in files:
            members.setdefault(int(r["component_id"]), []).append(files[int(r["__id"])])
    components = [group for group in members.values() if len(group) > 1]
    bad = [r["filename"] for r in rows("atrain_features.bad.csv")]
    out.write_text(json.dumps({
        "version": fastdup.__version__, "run_seconds": seconds, "files": len(files),
        "bad_files": bad, "similarity": similarity, "components": components,
    }))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), Path(sys.argv[3]))
