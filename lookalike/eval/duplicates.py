"""Near-duplicate finding scored against a groups CSV (``lookalike eval --duplicates``)."""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..analyse.duplicates import pair_scores, pair_scores_by_tag
from ..collection import Collection
from .cache import default_cache
from .configurations import Configuration
from .plots import slug


@dataclass
class DuplicateEval:
    images: int
    model: str
    verified: bool
    overall: dict[str, float]
    by_edit: dict[str, dict[str, float]]
    groups_found: int
    seconds: float
    threshold: float = float("nan")  # the cosine the candidate graph used
    configuration: str = ""  # the --model text this row scores
    # distractors (look-alikes, not copies) and any tag with no true pair: how many wrong
    # pairs (false positives) touch them, i.e. look-alike pairs wrongly joined. Not an
    # edit, and precision/recall read like a failure there, so counted, not scored.
    wrongly_joined: dict[str, int] = field(default_factory=dict)


def evaluate_duplicates(
    groups_csv: str | os.PathLike[str],
    configuration: Configuration,
    *,
    cache: Path | None = None,
    verify: bool = True,
) -> DuplicateEval:
    """Pairwise precision / recall / F1 of ``lookalike duplicates`` against a groups CSV
    (``file,group[,edit]``; group -1 = a duplicate of nothing), overall and per edit type.

    The images are indexed into a cache collection (one per folder and model) with the
    configuration's first model, and found by the same code as ``lookalike duplicates``."""
    groups_csv = Path(groups_csv).expanduser().absolute()
    with groups_csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"file", "group"} <= set(rows[0]):
        raise ValueError(f"{groups_csv}: expected a CSV with 'file' and 'group' columns")
    folder = next((f for f in (groups_csv.parent / "images", groups_csv.parent)
                   if (f / rows[0]["file"]).exists()), None)
    if folder is None:
        raise ValueError(f"{groups_csv}: cannot find {rows[0]['file']!r} beside it")
    model, _ = configuration.members[0]
    if model.border_crop or model.flip:
        raise ValueError("--duplicates uses the collection pipeline: no --crop-borders/--flip")
    started = time.perf_counter()
    base = Path(cache) if cache is not None else default_cache()
    db = base / "collections" / slug(f"{folder.parent.name}-{folder.name}-{model.short}")
    options = {"preprocess": model.preprocess} if model.preprocess else {}
    collection, _ = Collection.index_folder(folder, db, model=model.spec, rebuild=False,
                                            **options)
    try:
        report = collection.duplicates(verify=verify)
    finally:
        collection.close()
    position = {path: i for i, path in enumerate(report.paths)}
    truth = np.full(len(report.paths), -1, dtype=np.int64)
    edits = [""] * len(report.paths)
    for row in rows:
        where = position.get(row["file"])
        if where is not None:
            truth[where] = int(row["group"])
            edits[where] = row.get("edit") or row.get("kind") or ""
    groups = report.groups()

    def as_dict(scores: Any) -> dict[str, float]:
        return {"precision": scores.precision, "recall": scores.recall, "f1": scores.f1,
                "true_pairs": scores.true_positives + scores.false_negatives}

    by_edit: dict[str, dict[str, float]] = {}
    wrongly_joined: dict[str, int] = {}
    if any(edits):
        for tag, scores in pair_scores_by_tag(groups, truth, edits).items():
            if not tag:
                continue
            if tag == "distractor" or scores.true_positives + scores.false_negatives == 0:
                wrongly_joined[tag] = int(scores.false_positives)
            else:
                by_edit[tag] = as_dict(scores)
    return DuplicateEval(len(report.paths), model.short, verify,
                         as_dict(pair_scores(groups, truth)), by_edit, len(groups),
                         time.perf_counter() - started, threshold=float(report.threshold),
                         configuration=configuration.label, wrongly_joined=wrongly_joined)
