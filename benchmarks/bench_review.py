"""Acting on a whole duplicate review of neardup_flowers through the web API.

    nice python benchmarks/bench_review.py                     # ../shared neardup_flowers
    nice python benchmarks/bench_review.py --work /tmp/review  # keep the indexed copy

The images are copied to ``--work`` (the run moves files; ../shared stays read-only) and
indexed with the shared MobileNetV2 once. A server over them (FastAPI's TestClient, in
this process) lists every duplicate group by pages; every group's suggestion is recorded
as the page's preselection (keeper keep, the others discard) in one POST /api/marks. Then
timed: POST /api/review/plan (reads every discarded file to check it is unchanged),
GET /api/review/status, POST /api/review/apply (journalled moves, the catalogue
following) and POST /api/review/undo, with every file's hash checked at its new place and
back home. Baseline, in the same process: the same moves as a bare ``execute_plan`` plus
its ``undo`` (the sort machinery alone: no checks, no catalogue).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from lookalike import Collection
from lookalike.act.sort import Move, SortPlan, execute_plan, undo
from lookalike.serve import create_app

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODEL = f"onnx:{SHARED / 'models/mobilenetv2-int8/model.onnx'}"


def hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.blake2b(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()
            and not any(part.startswith(".lookalike") for part in p.parts)}


def timed(call):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data/neardup_flowers/images")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-review-"))
    root = work / "photos"
    if not root.is_dir():
        shutil.copytree(args.data, root)
    if not (root / ".lookalike").is_dir():
        _, seconds = timed(lambda: Collection.index_folder(root, model=MODEL)[0].close())
        print(f"indexed {sum(1 for _ in root.rglob('*.jpg'))} images in {seconds:.1f} s")
    before = hashes(root)
    with TestClient(create_app(root, analyse_at_start=False),
                    base_url="http://localhost") as client:
        start, groups, total = time.perf_counter(), [], 1
        while len(groups) < total:  # every page: the review reaches every group
            page = client.get("/api/duplicates",
                              params={"offset": len(groups), "limit": 500}).json()
            groups, total = groups + page["groups"], page["total"]
        print(f"{len(groups)} duplicate groups listed in {time.perf_counter() - start:.1f} s")
        marks = [{"file_id": m["image"]["id"], "group": g["key"],
                  "decision": "keep" if m["keeper"] else "discard"}
                 for g in groups for m in g["members"]]
        client.post("/api/marks", json={"marks": marks}).raise_for_status()
        plan, plan_s = timed(lambda: client.post("/api/review/plan", json={}).json())
        status, status_s = timed(lambda: client.get("/api/review/status").json())
        applied, apply_s = timed(lambda: client.post("/api/review/apply", json={}).json())
        quarantine = Path(plan["folder"])
        moved = hashes(quarantine)
        assert moved == {m["path"]: before[m["path"]] for m in plan["moves"]}, "hash mismatch"
        assert hashes(root) == {p: h for p, h in before.items() if p not in moved}
        undone, undo_s = timed(lambda: client.post("/api/review/undo", json={}).json())
        assert hashes(root) == before and not quarantine.exists(), "undo left a difference"
    files = applied["done"]
    print(f"marked {len(marks)} files; plan: {plan['files']} to move, "
          f"{plan['bytes'] / 1e6:.1f} MB, {len(plan['refused'])} groups refused, "
          f"{len(plan['skipped'])} skipped")
    print(f"plan   {plan_s:6.2f} s  ({files / plan_s:,.0f} files/s, each read and hashed)")
    print(f"status {status_s:6.2f} s")
    print(f"apply  {apply_s:6.2f} s  ({files / apply_s:,.0f} files/s; departed "
          f"{applied['collection']['departed']})")
    print(f"undo   {undo_s:6.2f} s  ({files / undo_s:,.0f} files/s; restored "
          f"{undone['collection']['restored']})")
    print("hashes: every moved file identical in quarantine and back home")
    # baseline: the same moves through the bare sort machinery, then its undo
    bare = SortPlan([Move(root / m["path"], quarantine / m["path"]) for m in plan["moves"]],
                    "move", quarantine)
    result, bare_s = timed(lambda: execute_plan(bare, work / "journals"))
    _, bare_undo_s = timed(lambda: undo(result.journal))
    assert hashes(root) == before
    print(f"baseline execute_plan {bare_s:.2f} s, undo {bare_undo_s:.2f} s; review apply "
          f"is {apply_s / bare_s:.2f}x, review undo {undo_s / bare_undo_s:.2f}x")


if __name__ == "__main__":
    main()
