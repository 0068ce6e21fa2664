"""Clustering quality on real labelled images, against the baselines in ../shared/README.md.

    python benchmarks/bench_clusters.py                          # flowers17 + dogs_vs_cats_2k
    python benchmarks/bench_clusters.py --datasets flowers17 --seeds 20

Each dataset is indexed with the shared MobileNetV2 (``Collection.index_folder`` with the
collection kept in ``--cache``, so a second run embeds nothing), the labels are the parent
folder names, and ``lookalike.analyse.clusters.kmeans`` runs with k = the number of classes
for ``--seeds`` seeds. Printed per dataset: ACC (Hungarian), NMI, ARI and purity for seed 0,
the mean and spread over the seeds, the run a user would keep without labels (the seed with
the best k-means objective), the baseline, and the k ``auto_k`` picks by silhouette.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from lookalike import Collection
from lookalike.analyse.clusters import ClusterScores, auto_k, evaluate, kmeans

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODEL = f"onnx:{SHARED / 'models/mobilenetv2-int8/model.onnx'}"
# ../shared/README.md: plain cosine k-means on L2-normalised mobilenetv2-int8 features.
BASELINES = {"flowers17": (0.779, 0.756), "dogs_vs_cats_2k": (0.754, 0.955)}  # NMI, ACC
# The seed-002 report: InceptionV3 + MiniBatchKMeans on 3,999 cats/dogs (its own data).
SEED_002_ACC = 0.9675


def labelled_vectors(dataset: str, cache: Path, model: str) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of ``dataset`` and each one's class (its parent folder's name).

    The collection's folder is a symlink in ``cache`` to the read-only data and its database
    lives beside it, so nothing is written under ../shared.
    """
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / f"{dataset}-images"
    if not root.exists():
        root.symlink_to(SHARED / "data" / dataset, target_is_directory=True)
    started = time.perf_counter()
    collection, report = Collection.index_folder(root, db=cache / f"{dataset}-db", model=model)
    with collection:
        file_ids, vectors = collection.vectors()
        folder = {record.id: Path(record.path).parent.name for record in collection.files()}
    print(
        f"{dataset}: {len(vectors)} images x {vectors.shape[1]} dims, "
        f"{report.embed.embedded} embedded now, {time.perf_counter() - started:.1f} s"
    )
    return vectors, np.array([folder[int(file_id)] for file_id in file_ids])


def row(name: str, scores: ClusterScores, extra: str = "") -> str:
    return (
        f"  {name:<38} ACC {scores.accuracy:.3f}  NMI {scores.nmi:.3f}  "
        f"ARI {scores.ari:.3f}  purity {scores.purity:.3f}{extra}"
    )


def bench(dataset: str, vectors: np.ndarray, labels: np.ndarray, seeds: int) -> None:
    k = len(np.unique(labels))
    base_nmi, base_acc = BASELINES.get(dataset, (float("nan"), float("nan")))
    seed_002 = f"   (seed-002 ACC {SEED_002_ACC})" if dataset == "dogs_vs_cats_2k" else ""
    print(f"  {'baseline (shared/README.md)':<38} ACC {base_acc:.3f}  NMI {base_nmi:.3f}")
    for variant, pca in (
        ("kmeans() default: PCA-128 whitened", 128),
        ("kmeans(pca=None): raw", None),
    ):
        runs, objectives, seconds = [], [], []
        for seed in range(seeds):
            started = time.perf_counter()
            result = kmeans(vectors, k, seed=seed, pca=pca)
            seconds.append(time.perf_counter() - started)
            runs.append(evaluate(labels, result.labels))
            objectives.append(result.objective)
        accuracy = np.array([run.accuracy for run in runs])
        nmi = np.array([run.nmi for run in runs])
        print(f"k-means, k = {k}, {variant}, {np.median(seconds):.2f} s per run")
        print(row("seed 0", runs[0], seed_002))
        print(row("best objective of the seeds", runs[int(np.argmax(objectives))]))
        print(
            f"  {f'mean +- sd over {seeds} seeds':<38} ACC {accuracy.mean():.3f} +- "
            f"{accuracy.std():.3f}  NMI {nmi.mean():.3f} +- {nmi.std():.3f}  "
            f"(min ACC {accuracy.min():.3f})"
        )
    started = time.perf_counter()
    chosen = auto_k(vectors)
    tried = ", ".join(f"{k}:{s:.3f}" for k, s in zip(chosen.ks[:20], chosen.scores[:20]))
    print(
        f"  auto_k (silhouette): k = {chosen.k} ({time.perf_counter() - started:.1f} s); "
        f"{tried}, ..."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(BASELINES))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/lookalike-bench-clusters"))
    args = parser.parse_args()
    for dataset in args.datasets:
        vectors, labels = labelled_vectors(dataset, args.cache, args.model)
        bench(dataset, vectors, labels, args.seeds)
        print()


if __name__ == "__main__":
    main()
