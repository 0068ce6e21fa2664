"""Clusters: spherical k-means over the embeddings, a principled k, and label-based scores.

``kmeans`` runs FAISS k-means on unit vectors with unit centroids (``spherical``), so every
similarity here is a cosine. Training uses at most ``max_points_per_centroid`` rows per
centroid (FAISS' own cap), sampled here so that a float16 memmap of a 1M collection is never
copied whole as float32 for training; every row is then assigned in chunks. k = 1000 on
1M x 384 takes ~20 s on 2 cores (BENCHMARKS.md, "Analyses at scale").
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import faiss
import numpy as np
from scipy.sparse import coo_matrix

from ..embed.transform import PCA
from ..faiss_util import faiss_gpus, sample_rows

_CHUNK_ROWS = 65_536
# Below this many training rows x centroids k-means++ seeding is cheap (it costs one pass
# over the data per centroid); above it, FAISS' random seeding plus more data does as well.
_KMEANS_PLUS_PLUS_MAX_WORK = 2_000_000
# Below this many multiply-adds per pass (rows x k x dim), FAISS runs single-threaded: its
# OpenMP regions (one per k-means++ centroid) cost more in synchronisation than they save,
# up to 1000x on a busy 2-core machine.
_SINGLE_THREAD_MAX_WORK = 50_000_000
# Multiply-adds spent on k-means restarts by default (FAISS reaches ~50 GFLOP/s on 2 cores).
_RESTART_WORK = 150_000_000_000
# Rows the PCA is fitted on: ample for a 1280 x 1280 covariance, and ~1 s.
_PCA_SAMPLE = 50_000


@dataclass(frozen=True)
class Clustering:
    """A k-means partition of n items into k clusters.

    ``centroids``: the normalised mean of each cluster's members in the original embedding
    space (so they can be searched like any embedding; a zero row for an empty cluster).
    ``similarity``: each item's cosine to its centroid. ``medoids``: per cluster, the
    position of the member most similar to the centroid (-1 for an empty cluster).
    ``confidence``: per item, the margin by which it won its cluster in the space k-means
    ran in: cosine to the own centroid minus cosine to the runner-up (0 = on the border;
    1.0 when k = 1). ``objective``: the mean ``similarity``.
    """

    labels: np.ndarray  # int64 [n]
    centroids: np.ndarray  # float32 [k, dim]
    sizes: np.ndarray  # int64 [k]
    medoids: np.ndarray  # int64 [k]
    confidence: np.ndarray  # float32 [n]
    similarity: np.ndarray  # float32 [n]
    objective: float
    chosen: AutoK | None = None  # how k was picked, when it was (``-k auto``)

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    def members(self, cluster: int) -> np.ndarray:
        """Positions of ``cluster``'s items, the most central (closest to the centroid)
        first; none for a cluster number out of range."""
        return self._ranked[cluster] if 0 <= cluster < self.k else np.zeros(0, np.int64)

    @functools.cached_property
    def _ranked(self) -> list[np.ndarray]:
        """Every cluster's members in that order, from one sort (not a scan per cluster)."""
        order = np.lexsort((-self.similarity, self.labels))
        return np.split(order, np.cumsum(self.sizes)[:-1])


def pca_whitening(vectors: np.ndarray, dims: int, eigen_power: float = -0.25) -> PCA:
    """The PCA projection of ``vectors`` (float32 rows, e.g. a sample) onto its top ``dims``
    components, partially whitened.

    Why: CNN features are dominated by a few high-variance directions (ReLU outputs share
    a large common component), so cosine k-means splits along those and ignores the many
    weaker directions that separate classes. Dividing each component by its standard
    deviation to the power 1/2 (eigenvalue^-1/4) evens that out without blowing up noise
    as full whitening does (which wrecked k = 2 on dogs vs cats: ACC .96 -> .53); dropping
    the components beyond ``dims`` drops most of the noise. See BENCHMARKS.md,
    "Clustering quality".
    """
    return PCA(dim=dims, whiten=-2 * eigen_power).fit(vectors)


def kmeans(
    vectors: np.ndarray,
    k: int,
    seed: int = 0,
    *,
    niter: int = 25,
    restarts: int | None = None,
    pca: int | None = 128,
    max_points_per_centroid: int = 256,
    kmeans_plus_plus: bool | None = None,
) -> Clustering:
    """Spherical k-means of the L2-normalised rows of ``vectors`` (float16/32, may be a memmap).

    ``pca``: run k-means on the top ``pca`` partially whitened principal components (see
    ``pca_whitening``; fitted on the training sample), None for the raw embeddings. On the
    shared flowers17 set (MobileNetV2) this lifts mean ACC from .77 to .80 and NMI from .79 to
    .81, on dogs_vs_cats_2k ACC from .957 to .964.
    ``restarts`` (FAISS ``nredo``; the run with the best objective is kept) defaults to as
    many as fit in ``_RESTART_WORK`` multiply-adds (~5 s on 2 cores), between 1 and 20:
    many where they are cheap and a bad local optimum matters most (small n and k; on
    flowers17, 40 restarts instead of 10 lift mean ACC by .02-.04), one at 1M x k = 1000.
    ``kmeans_plus_plus`` seeding defaults to on when it is cheap (see
    ``_KMEANS_PLUS_PLUS_MAX_WORK``). Deterministic for a given ``seed``.
    """
    n, dim = vectors.shape
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of vectors ({n}), not {k}")
    train = sample_rows(vectors, k * max_points_per_centroid, seed)
    projection = None
    if pca is not None:
        step = -(-len(train) // _PCA_SAMPLE)  # a random sample, so every step-th row is too
        projection = pca_whitening(train[::step], max(1, min(pca, len(train) - 1)))
        train = projection.transform(train)
    if restarts is None:
        restarts = int(np.clip(_RESTART_WORK // (train.size * k * niter), 1, 20))
    if kmeans_plus_plus is None:
        kmeans_plus_plus = len(train) * k <= _KMEANS_PLUS_PLUS_MAX_WORK
    model = faiss.Kmeans(
        train.shape[1],
        k,
        niter=niter,
        nredo=max(1, restarts),
        spherical=True,
        seed=seed,
        max_points_per_centroid=max_points_per_centroid,
        min_points_per_centroid=1,  # small n is fine for us: no warning noise
        **({"gpu": True} if faiss_gpus() else {}),
    )
    # k-means++ seeding arrived in FAISS 1.12; older ones seed at random.
    plus_plus = getattr(faiss, "ClusteringInitMethod_KMEANS_PLUS_PLUS", None)
    if kmeans_plus_plus and plus_plus is not None:
        model.cp.init_method = plus_plus
    with _threads(1 if train.size * k <= _SINGLE_THREAD_MAX_WORK else None):
        model.train(train)
    return _assign(vectors, np.ascontiguousarray(model.centroids, np.float32), projection)


def _assign(vectors: np.ndarray, centres: np.ndarray, projection: PCA | None) -> Clustering:
    """Label every row by its most similar of ``centres`` (in the projected space when
    there is a projection), then compute the original-space centroids and medoids."""
    n, dim = vectors.shape
    k = len(centres)
    index = faiss.IndexFlatIP(centres.shape[1])
    index.add(centres)
    labels = np.empty(n, dtype=np.int64)
    confidence = np.ones(n, dtype=np.float32)
    sums = np.zeros((k, dim), dtype=np.float64)
    small = n * centres.size <= _SINGLE_THREAD_MAX_WORK
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        block = np.ascontiguousarray(vectors[start:stop], dtype=np.float32)
        queries = projection.transform(block) if projection is not None else block
        with _threads(1 if small else None):
            scores, found = index.search(queries, min(2, k))
        labels[start:stop] = found[:, 0]
        if k > 1:
            confidence[start:stop] = scores[:, 0] - scores[:, 1]
        members = coo_matrix(
            (np.ones(stop - start, np.float32), (found[:, 0], np.arange(stop - start))),
            shape=(k, stop - start),
        )
        sums += members.tocsr() @ block
    centroids = _normalise(sums).astype(np.float32)
    similarity = np.empty(n, dtype=np.float32)
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        block = np.asarray(vectors[start:stop], dtype=np.float32)
        similarity[start:stop] = np.einsum("ij,ij->i", block, centroids[labels[start:stop]])
    sizes = np.bincount(labels, minlength=k).astype(np.int64)
    medoids = np.full(k, -1, dtype=np.int64)
    if n:
        # Per cluster, the member with the highest similarity to the centroid.
        order = np.lexsort((-similarity, labels))
        first = np.r_[True, labels[order][1:] != labels[order][:-1]]
        medoids[labels[order][first]] = order[first]
    objective = float(similarity.mean(dtype=np.float64)) if n else 0.0
    return Clustering(labels, centroids, sizes, medoids, confidence, similarity, objective)


def _normalise(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1)


@contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """Run FAISS with ``count`` OpenMP threads (None: unchanged). The setting is per
    calling thread in OpenMP, so other threads' FAISS calls are not affected."""
    if count is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


# -- choosing k --------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoK:
    """The chosen ``k`` and every candidate tried with its score (higher is better)."""

    k: int
    ks: np.ndarray  # int64
    scores: np.ndarray  # float64
    method: str = "silhouette"

    def describe(self) -> str:
        """One line: which k won, among which, by how much."""
        order = np.argsort(-self.scores, kind="stable")
        runner = (f"; next best k = {int(self.ks[order[1]])} ({self.scores[order[1]]:.3f})"
                  if len(order) > 1 else "")
        return (f"k = {self.k}: the highest mean {self.method} "
                f"({self.scores[order[0]]:.3f}) among k = {int(self.ks.min())}.."
                f"{int(self.ks.max())}{runner}")


def auto_k(
    vectors: np.ndarray,
    ks: Sequence[int] | None = None,
    *,
    sample: int = 5000,
    seed: int = 0,
    restarts: int = 3,
    pca: int | None = 128,
) -> AutoK:
    """Pick k by the mean cosine silhouette of spherical k-means on a random sample.

    The silhouette compares each item's mean distance to its own cluster with that to the
    nearest other cluster; it peaks where clusters are both tight and apart, needs no
    assumption about cluster shape or a noise model, and is comparable across k. It needs
    all pairwise distances of the sample (computed in chunks by scikit-learn), hence the
    ``sample`` cap. Clustering and silhouette both run in the space ``kmeans`` clusters in
    (``pca``: the same partially whitened PCA, fitted once). ``ks`` defaults to 2..20 then
    steps of ~25 % up to ``sample / 20`` (at most 200). Ties go to the smaller k.
    """
    from sklearn.metrics import silhouette_score  # scikit-learn costs ~1.6 s to import

    n = len(vectors)
    if n < 3:
        raise ValueError(f"choosing k needs at least 3 vectors, not {n}")
    data = sample_rows(vectors, min(sample, n), seed)
    if pca is not None:
        data = pca_whitening(data, max(1, min(pca, len(data) - 1))).transform(data)
    candidates = np.array(sorted(set(ks)) if ks is not None else _default_ks(len(data)))
    candidates = candidates[(candidates >= 2) & (candidates < len(data))]
    if not len(candidates):
        raise ValueError(f"no candidate k between 2 and {len(data) - 1}")
    scores = np.full(len(candidates), -1.0)
    for i, k in enumerate(candidates):
        labels = kmeans(data, int(k), seed, restarts=restarts, pca=None).labels
        if len(np.unique(labels)) > 1:
            scores[i] = float(silhouette_score(data, labels, metric="cosine"))
    best = int(np.argmax(scores))  # the first maximum: the smallest k among ties
    return AutoK(int(candidates[best]), candidates.astype(np.int64), scores)


def _default_ks(n: int) -> list[int]:
    top = max(2, min(200, n // 20))
    ks = list(range(2, min(20, top) + 1))
    while ks[-1] < top:
        ks.append(min(top, max(ks[-1] + 1, round(ks[-1] * 1.25))))
    return ks


# -- evaluation against known labels -------------------------------------------------------


@dataclass(frozen=True)
class ClusterScores:
    accuracy: float  # Hungarian-matched cluster accuracy
    nmi: float
    ari: float
    purity: float


def contingency(labels_true: np.ndarray, labels_pred: np.ndarray) -> np.ndarray:
    """Counts [classes, clusters] of items per (true class, predicted cluster)."""
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    if labels_true.shape != labels_pred.shape or labels_true.ndim != 1:
        raise ValueError(f"label arrays differ: {labels_true.shape} vs {labels_pred.shape}")
    _, true_codes = np.unique(labels_true, return_inverse=True)
    _, pred_codes = np.unique(labels_pred, return_inverse=True)
    table = np.zeros((true_codes.max(initial=-1) + 1, pred_codes.max(initial=-1) + 1), np.int64)
    np.add.at(table, (true_codes, pred_codes), 1)
    return table


def cluster_accuracy(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Fraction of items whose cluster maps to their class under the best one-to-one
    mapping of clusters to classes (Hungarian algorithm); with more clusters than classes
    the unmatched clusters count as wrong."""
    table = contingency(labels_true, labels_pred)
    if not table.size:
        return 0.0
    from scipy.optimize import linear_sum_assignment  # 0.3 s to import: not at start-up

    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def purity(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Fraction of items in their cluster's majority class (1.0 for singletons: it
    rewards over-splitting, so read it beside ACC and NMI)."""
    table = contingency(labels_true, labels_pred)
    return float(table.max(axis=0).sum() / table.sum()) if table.size else 0.0


def nmi(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Normalised mutual information (arithmetic normalisation, scikit-learn's default)."""
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(labels_true, labels_pred))


def ari(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Adjusted Rand index: 0 for chance, 1 for identical partitions."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(labels_true, labels_pred))


def evaluate(labels_true: np.ndarray, labels_pred: np.ndarray) -> ClusterScores:
    return ClusterScores(
        accuracy=cluster_accuracy(labels_true, labels_pred),
        nmi=nmi(labels_true, labels_pred),
        ari=ari(labels_true, labels_pred),
        purity=purity(labels_true, labels_pred),
    )
