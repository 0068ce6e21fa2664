"""Which folder each file goes to when a collection is sorted by an analysis.

Each function returns ``{absolute file path: folder name}`` for
:func:`lookalike.act.sort.plan_sort` (:func:`by_examples` returns placements that carry
it); files absent from the mapping stay where they are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..analyse.exemplars import assign_to_classes
from ..discover import discover, is_remote
from .sort import SortError, duplicate_assignments

if TYPE_CHECKING:
    from ..collection import Collection

def by_clusters(collection: Collection, k: int | str = "auto") -> dict[Path, str]:
    """Every image into the folder of its k-means cluster: ``cluster_000``, ``cluster_001``..."""
    report = collection.clusters(k)
    return {local_root(collection) / path: f"cluster_{label:03d}"
            for path, label in zip(report.paths, report.clustering.labels)}


def by_groups(collection: Collection, threshold: float | None = None) -> dict[Path, str]:
    """The members of each threshold group into ``group_001``, ``group_002``...; images in no
    group stay. ``threshold``: None for the calibrated one (see
    :meth:`~lookalike.Collection.group_threshold`)."""
    report, root = collection.groups(threshold), local_root(collection)
    return {root / report.paths[m]: f"group_{n:03d}"
            for n, g in enumerate(report.groups, start=1) for m in g.members}


def by_duplicates(collection: Collection, threshold: float | None = None) -> dict[Path, str]:
    """The copies of each duplicate group into ``duplicates_001_<keeper's name>``...; the
    suggested keeper stays. A near group already holds the exact copies it overlaps, so an
    exact group is used only where no near group covers it."""
    report = collection.duplicates(threshold=threshold)
    in_near = {m for g in report.near for m in g.members}
    chosen = report.near + [g for g in report.exact if not in_near.intersection(g.members)]
    root = local_root(collection)
    # Links and hard links are one file under several names, not copies: the planner
    # compares files, never moves a link, and never moves a file a link points to.
    return duplicate_assignments(
        (f"duplicates_{n:03d}_{Path(report.paths[g.keeper]).stem}",
         [root / report.paths[m] for m in [g.keeper, *(m for m in g.members if m != g.keeper)]])
        for n, g in enumerate(chosen, start=1))


def local_root(collection: Collection) -> Path:
    """The collection's folder, which sorting needs on local disk (it moves and verifies
    files); a folder on object storage is refused before any work."""
    root = collection.root
    if is_remote(root):
        raise SortError(f"sorting moves local files only; {root} is on object storage: "
                        "copy the images to a local folder first and index that")
    return root


def folders_by(collection: Collection, by: str, *, k: int | str = "auto",
               threshold: float | None = None) -> dict[Path, str]:
    """File -> folder name for ``by`` clusters (with ``k``), groups or duplicates (with
    ``threshold``): ``sort --by``."""
    if by == "clusters":
        return by_clusters(collection, k)
    if by == "groups":
        return by_groups(collection, threshold)
    if by == "duplicates":
        return by_duplicates(collection, threshold)
    raise ValueError(f"--by must be clusters, groups or duplicates, not {by!r}")


UNSURE = "unsure"


@dataclass(frozen=True)
class Placement:
    """Where sorting by examples puts one image, and why."""

    path: Path  # the image (absolute)
    label: str  # its class: an example sub-folder's name, or a loose example's folder
    folder: str  # destination folder: the class's, or ``unsure``
    score: float  # similarity to its class (cosine to the class centre, whitened space)
    margin: float  # how much more similar to its class than to the next one
    example_similarity: float  # cosine to the most similar example of its class


@dataclass(frozen=True)
class ExampleSort:
    placements: list[Placement]  # the images that go somewhere
    classes: list[str]
    stayed: int  # images left where they are (below ``threshold``, beyond ``top_k``)

    def folders(self) -> dict[Path, str]:
        """``{image: folder}`` for :func:`~lookalike.act.sort.plan_sort`."""
        return {placement.path: placement.folder for placement in self.placements}


def read_examples(folder: str | os.PathLike[str]) -> tuple[list[Path], list[str]]:
    """``(files, class of each)`` from an examples folder: ``<class>/*.jpg`` sub-folders
    are classes; a loose image is a class of its own, ``folder_01_<name>``, ...."""
    folder = Path(folder).expanduser().absolute()
    found = [c.path for c in discover(folder) if c.reason is None]
    if not found:
        raise ValueError(f"no example images in {folder}")
    loose = [path for path in found if len(path.parts) == 1]
    width = len(str(len(loose)))
    names = {path: f"folder_{n:0{width}d}_{path.stem}" for n, path in enumerate(loose, 1)}
    return ([folder / path for path in found],
            [names.get(path) or path.parts[0] for path in found])


def by_examples(collection: Collection, examples: str | os.PathLike[str], *,
                min_margin: float = 0.01, threshold: float | None = None,
                top_k: int | None = None) -> ExampleSort:
    """Every image into the folder of its class, learnt from a few examples per class
    (see :func:`~lookalike.analyse.exemplars.assign_to_classes`); an image whose class wins
    by less than ``min_margin`` goes to ``unsure``. ``threshold``: an image less similar
    than this (cosine) to every example of its class stays where it is; ``top_k``: at most
    this many images per class (the most similar), the rest stay. Example files that are
    in the collection stay where they are."""
    files, labels = read_examples(examples)
    classes = list(dict.fromkeys(labels))
    label_index = np.array([classes.index(label) for label in labels])
    example_vectors = np.stack([collection.embed_file(path) for path in files])
    file_ids, vectors = collection.vectors(copy=False)
    examples_here = {path.resolve() for path in files}
    root = local_root(collection)
    images = [root / path for path in collection.paths(file_ids)]
    to_sort = np.array([image.resolve() not in examples_here for image in images], dtype=bool)
    if not to_sort.all():  # examples inside the collection count once, as examples
        file_ids, vectors = file_ids[to_sort], vectors[to_sort]
        images = [image for image, keep in zip(images, to_sort) if keep]
    result = assign_to_classes(vectors, example_vectors, label_index, min_margin=min_margin)
    nearest_example = _nearest_example(vectors, example_vectors, label_index, result.labels)
    keep = np.ones(len(file_ids), dtype=bool)
    if threshold is not None:
        keep &= nearest_example >= threshold
    if top_k is not None:
        for class_index in range(len(classes)):
            mine = np.flatnonzero(keep & (result.labels == class_index))
            keep[mine[np.argsort(-result.scores[mine], kind="stable")][top_k:]] = False
    unsure = UNSURE if UNSURE not in classes else f"{UNSURE}_"  # a class may be so named
    placements = []
    for position, image in enumerate(images):
        if not keep[position]:
            continue
        label = classes[int(result.labels[position])]
        placements.append(Placement(
            image, label, unsure if result.unsure[position] else label,
            float(result.scores[position]), float(result.margins[position]),
            float(nearest_example[position])))
    return ExampleSort(placements, classes, int((~keep).sum()))


def _nearest_example(vectors: np.ndarray, examples: np.ndarray, example_labels: np.ndarray,
                     labels: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Per image, its cosine to the most similar example of its own class."""
    found = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), chunk):
        similarity = np.asarray(vectors[start:start + chunk], np.float32) @ examples.T
        own = example_labels[None, :] == labels[start:start + chunk, None]
        found[start:start + chunk] = np.where(own, similarity, -np.inf).max(axis=1)
    return found
