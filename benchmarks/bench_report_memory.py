"""Peak memory of ``report`` on a just-indexed collection, stage by stage.

    python benchmarks/bench_report_memory.py FOLDER --pristine COPY --out /tmp/report-out

``COPY``: FOLDER/.lookalike saved right after ``lookalike index`` (no k-NN graph and no
calibration cached yet); it is restored first, so every run does the whole job a first
``report`` does. Printed at each stage change: seconds, resident memory now and its peak
so far (VmRSS and VmHWM from /proc), then the whole run's peak.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from lookalike import Collection
from lookalike.act.report import write_collection_report


def memory_mb() -> tuple[int, int]:
    """``(resident now, peak resident)`` of this process, in MB."""
    fields = dict(line.split(":", 1) for line in
                  Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--pristine", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    database = args.folder / ".lookalike"
    shutil.rmtree(database, ignore_errors=True)
    shutil.copytree(args.pristine, database, symlinks=True)
    shutil.rmtree(args.out, ignore_errors=True)
    started, last = time.perf_counter(), [""]

    def progress(stage: str, done: int, total: int) -> None:
        if stage != last[0]:
            now, peak = memory_mb()
            print(f"  {time.perf_counter() - started:7.1f} s  {stage:<12} RSS {now:5d} MB  "
                  f"peak {peak:5d} MB", flush=True)
            last[0] = stage

    with Collection.open(args.folder) as collection:
        write_collection_report(collection, args.out, progress=progress)
    now, peak = memory_mb()
    print(f"  {time.perf_counter() - started:7.1f} s  done         RSS {now:5d} MB  "
          f"peak {peak:5d} MB")


if __name__ == "__main__":
    main()
