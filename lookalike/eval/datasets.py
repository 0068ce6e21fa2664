"""Labelled image sets: a folder of class sub-folders, or a ``path,label`` CSV manifest."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..discover import discover


@dataclass(frozen=True)
class LabelledSet:
    """Images with class labels: ``root / paths[i]`` has label ``labels[i]``."""

    root: Path
    paths: list[str]
    labels: np.ndarray  # str [n]

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, positions: np.ndarray) -> LabelledSet:
        positions = np.asarray(positions, dtype=np.int64)
        return LabelledSet(self.root, [self.paths[p] for p in positions], self.labels[positions])

    def only_classes(self, classes: Sequence[str]) -> LabelledSet:
        wanted = set(classes)
        missing = wanted - set(self.labels.tolist())
        if missing:
            raise ValueError(f"no images of class {', '.join(sorted(missing))}")
        return self.subset(np.flatnonzero([label in wanted for label in self.labels]))


def load_labelled(source: str | os.PathLike[str]) -> LabelledSet:
    """A folder whose sub-folders are classes (``<class>/.../<file>``), or a CSV with
    ``path`` and ``label`` columns (paths relative to the CSV's folder, or to the folder
    named by a ``root`` column-less convention: see below).

    CSV paths are tried relative to the CSV's folder, then its parent's sibling data folder
    named like the CSV (``manifests/flowers17.csv`` -> ``../flowers17/``), so the shared
    manifests work as they are.
    """
    source = Path(source).expanduser().absolute()
    if source.is_dir():
        return _from_folder(source)
    if source.is_file():
        return _from_csv(source)
    raise ValueError(f"{source} is neither a folder of class folders nor a CSV file")


def _from_folder(root: Path) -> LabelledSet:
    paths, labels = [], []
    for candidate in discover(root):
        if candidate.reason is not None:
            continue
        relative = Path(candidate.path).as_posix()
        parts = Path(relative).parts
        if len(parts) < 2:
            continue  # a file at the top level has no class
        paths.append(relative)
        labels.append(parts[0])
    if not paths:
        raise ValueError(f"{root} holds no images inside class sub-folders (<class>/<file>)")
    order = np.argsort(paths, kind="stable")
    return LabelledSet(root, [paths[i] for i in order], np.asarray(labels, dtype=str)[order])


def _from_csv(path: Path) -> LabelledSet:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a CSV with 'path' and 'label' columns")
    candidates = [path.parent, path.parent.parent / path.stem]
    root = next((c for c in candidates if (c / rows[0]["path"]).exists()), None)
    if root is None:
        raise ValueError(f"{path}: cannot find {rows[0]['path']!r} relative to "
                         f"{' or '.join(str(c) for c in candidates)}")
    return LabelledSet(root, [r["path"] for r in rows], np.asarray([r["label"] for r in rows],
                                                                    dtype=str))
