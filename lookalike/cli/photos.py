"""For photographers: ``moments`` (bursts: same place, same moment, by time and looks)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from .common import (
    DbOption,
    JsonOption,
    console,
    find_collection,
    friendly_errors,
    print_csv,
    print_json,
)
from .curate import measure_collection


@friendly_errors
def moments(
    db: DbOption = None,
    window: Annotated[float, typer.Option(
        min=0.0, help="Seconds between two shots of one moment (capture times, EXIF).")]
    = 10.0,
    threshold: Annotated[float | None, typer.Option(
        min=-1.0, max=1.0, help="Cosine two shots of one moment need at least (default: "
        "the collection's calibrated candidate threshold for copies).")] = None,
    max_distance: Annotated[float, typer.Option(
        min=0.0, help="Metres between two shots' GPS positions, when both have one.")]
    = 100.0,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: moment,id,path,best")] = False,
    as_json: JsonOption = False,
) -> None:
    """Bursts and series: shots taken seconds apart that look alike, best shot suggested."""
    import numpy as np

    from ..analyse.moments import find_moments
    from ..collection import Collection

    collection = Collection.open(find_collection(db))
    ids, paths, stats = measure_collection(collection, as_csv or as_json)
    vector_ids, vectors = collection.vectors(raw=True)
    row_of = {int(i): r for r, i in enumerate(vector_ids)}
    keep = [p for p, i in enumerate(ids) if i in row_of and stats[p] is not None]
    measured = [stats[p] for p in keep]

    def column(name: str) -> np.ndarray:
        return np.array([np.nan if (v := getattr(s, name)) is None else float(v)
                         for s in measured])

    times = np.array([s.capture_time.timestamp() if s.capture_time else np.nan
                      for s in measured])
    if threshold is None:
        threshold = float(collection.calibration()["candidate_threshold"])
    found = find_moments(
        vectors[[row_of[ids[p]] for p in keep]], times, np.asarray([ids[p] for p in keep]),
        [paths[p] for p in keep], sharpness=column("sharpness"),
        brightness=column("brightness"), highlights=column("highlights"),
        shadows=column("shadows"), window=window, threshold=threshold,
        latitude=column("latitude"), longitude=column("longitude"),
        max_distance=max_distance)
    if as_json:
        print_json(found.to_dict())
        return
    if as_csv:
        print_csv(["moment", "id", "path", "best"], found.rows())
        return
    table = Table(title=f"{len(found.moments)} moments ({len(found.undated)} images have no "
                  f"capture time)", title_justify="left")
    for column_name in ("moment", "shots", "taken", "best shot", "why"):
        table.add_column(column_name, overflow="fold")
    for number, moment in enumerate(found.moments, start=1):
        taken = datetime.fromtimestamp(moment.start).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(str(number), str(len(moment.members)),
                      f"{taken} (+{moment.end - moment.start:.0f} s)",
                      found.paths[moment.best], ", ".join(moment.reasons))
    console.print(table)
