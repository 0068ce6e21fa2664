"""What a collection holds and whether it is intact, behind :meth:`lookalike.Collection.info`
and :meth:`lookalike.Collection.check` (``lookalike info``, ``lookalike check``)."""

from __future__ import annotations

import shutil
from functools import partial

from .graph_cache import graph_intact
from .index_manager import IndexManager
from .indexing import augment_text
from .projection import Projection
from .records import CollectionInfo
from .store import ModelRecord, Problem, Store


def describe(store: Store, record: ModelRecord | None) -> CollectionInfo:
    """Counts, model, index and disk use of the collection whose model is ``record``."""
    index_kind: str | None = None
    transform: str | None = None
    fresh = False
    embedded = dead = 0
    if record is not None:
        state = store.index_state(record.key)
        learned = store.transform_state(record.key)
        transform = learned.description if learned else None
        index_kind = state.kind if state else None
        fresh = (state is not None and state.version == record.version
                 and state.file == record.file
                 and state.transform == (learned.stamp if learned else None))
        embedded = len(store.live_rows(record.key)[1])
        dead = record.rows - embedded
    return CollectionInfo(
        directory=store.directory, root=store.root, counts=store.status_counts(),
        model=record.key if record else None, model_spec=record.spec if record else None,
        dim=record.dim if record else None, index_kind=index_kind, index_fresh=fresh,
        disk_bytes=store.disk_usage(), embedded=embedded, dead_rows=dead,
        skipped=[(f.path, f.reason or "") for f in store.files("skipped")],
        identity=record.identity if record else {},
        augmentation=augment_text(record.options) if record else "no augmentation",
        transform=transform,
    )


def check(store: Store, indexes: IndexManager, projection: Projection,
          repair: bool = False) -> list[Problem]:
    """The problems of a collection's catalogue, embeddings, saved vector index and cached
    graphs; see :meth:`lookalike.Collection.check`."""
    problems = store.check(repair=repair)
    key = None if any(problem.fatal for problem in problems) else store.current_model()
    if key is None:
        return problems
    record = store.model(key)
    problems += indexes.check(record, projection.stamp(record),
                              partial(projection.matrix, record), repair)
    for folder in sorted((store.directory / "index").glob(f"{record.key}.*knn*")):
        if folder.is_dir() and not folder.is_symlink() and not graph_intact(folder):
            if repair:
                shutil.rmtree(folder)
            problems.append(Problem(f"the cached neighbour graph {folder.name} is damaged",
                                    "lookalike check --repair (or the next analysis "
                                    "rebuilds it)", repaired=repair))
    return problems
