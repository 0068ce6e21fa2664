"""A 2-D map of a collection: nearby points look alike.

The default layout (``graph``) is a force layout of the k-nearest-neighbour graph, in the
manner of UMAP but in plain numpy: points start at their first two principal components,
then every graph edge pulls its ends together while points drawn at random push each other
apart. Each step is a few vector operations over all edges at once, so 5,000 images lay
out in seconds on two cores (t-SNE: minutes), deterministically for a given seed, with
classes as far apart as t-SNE puts them (``benchmarks/bench_map.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..knn import KnnGraph, knn_graph

METHODS = ("auto", "graph", "umap", "tsne", "pca")
GRAPH_NEIGHBOURS = 15
EPOCHS = 150
NEGATIVES = 6  # random points drawn per point and epoch to push it away
REPULSION = 2.0  # their total push, relative to the point's total edge weight
STEP = 0.5  # a point's move per epoch: its mean force times this, times the learning rate
# UMAP's output curve 1 / (1 + a d^2b) for min_dist 0.1, spread 1.
CURVE_A, CURVE_B = 1.577, 0.8951
CLIP = 4.0  # largest move along one axis from one force


def map_2d(vectors: np.ndarray, method: str = "auto", seed: int = 0, *,
           graph: KnnGraph | None = None,
           progress: Callable[[str, int, int], None] | None = None) -> tuple[np.ndarray, str]:
    """``(coordinates float32 [n, 2] scaled to [0, 1], method used)``.

    ``auto`` and ``graph``: the k-NN graph force layout (PCA below 6 points); ``umap``
    needs ``umap-learn``; ``tsne`` is scikit-learn's (slow past a few thousand points);
    ``pca`` is linear and fast at any size. ``graph``: the vectors' k-NN graph for the
    graph layout, e.g. a collection's cached one; computed here when not given.
    ``progress(stage, done, total)`` follows its stages ("neighbours", "layout": epochs).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    if method not in METHODS:
        raise ValueError(f"map method must be one of {', '.join(METHODS)}, not {method!r}")
    if method in ("auto", "graph"):
        method = "graph" if n > 5 else "pca"
    if method == "graph":
        if graph is None:
            if progress:
                progress("neighbours", 0, 1)
            graph = knn_graph(_unit(vectors), min(GRAPH_NEIGHBOURS, n - 1))
        layout_progress = None if progress is None else (
            lambda done, total: progress("layout", done, total))
        points = graph_layout(vectors, graph, seed=seed, progress=layout_progress)
    elif method == "umap":
        import umap

        points = umap.UMAP(n_components=2, metric="cosine", random_state=seed).fit_transform(
            vectors)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (n - 1) // 3)))
        points = TSNE(2, metric="cosine", init="pca", perplexity=perplexity,
                      random_state=seed).fit_transform(vectors)
    else:
        points = _pca_2d(vectors)
    return _unit_square(np.asarray(points, dtype=np.float32)), method


def graph_layout(vectors: np.ndarray, graph: KnnGraph, *, epochs: int = EPOCHS,
                 seed: int = 0, progress: Callable[[int, int], None] | None = None
                 ) -> np.ndarray:
    """2-D points [n, 2] for ``vectors`` [n, d] where the edges of their k-NN graph
    (its first ``GRAPH_NEIGHBOURS`` columns) are short and the rest spread out.

    UMAP's method, in bulk: edges weighted by UMAP's fuzzy membership, a PCA start, then
    per epoch every edge pulls its ends together while random points push each point
    away, all forces of the epoch applied at once (UMAP applies one edge at a time), each
    point moving by its mean force with a learning rate falling linearly to zero.
    ``progress(epochs done, epochs)`` every 10 epochs.
    """
    n = len(vectors)
    rng = np.random.default_rng(seed)
    heads, tails, weights = fuzzy_edges(
        np.asarray(graph.neighbours[:, :GRAPH_NEIGHBOURS]),
        1 - np.asarray(graph.scores[:, :GRAPH_NEIGHBOURS], dtype=np.float32))
    points = _scaled(_pca_2d(vectors)) + rng.normal(0, 1e-3, (n, 2)).astype(np.float32)
    a, b = np.float32(CURVE_A), np.float32(CURVE_B)
    degree = (np.bincount(heads, weights, minlength=n)
              + np.bincount(tails, weights, minlength=n)).astype(np.float32)
    push_weight = (REPULSION * degree / NEGATIVES)[:, None]
    step = (STEP / np.maximum(degree, 1e-6))[:, None]
    sources = np.repeat(np.arange(n), NEGATIVES)
    for epoch in range(epochs):
        diff = points[heads] - points[tails]
        d2 = np.einsum("ij,ij->i", diff, diff)
        powered = np.power(np.maximum(d2, 1e-12), b - 1)
        pull = np.clip((-2 * a * b * powered / (1 + a * powered * d2))[:, None] * diff,
                       -CLIP, CLIP) * weights[:, None]
        move = _sum_by_node(heads, pull, n) - _sum_by_node(tails, pull, n)
        others = rng.integers(0, n, len(sources))
        diff = points[sources] - points[others]
        d2 = np.einsum("ij,ij->i", diff, diff)
        push = np.clip((2 * b / ((0.001 + d2) * (1 + a * np.power(d2, b))))[:, None] * diff,
                       -CLIP, CLIP)
        push[sources == others] = 0
        move += _sum_by_node(sources, push, n) * push_weight
        points += np.float32(1.0 - epoch / epochs) * move * step
        if progress and (epoch + 1) % 10 == 0:
            progress(epoch + 1, epochs)
    return points


def fuzzy_edges(neighbours: np.ndarray, distances: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(heads, tails, weights)``: the undirected edges of the graph ``neighbours``
    [n, k] (positions, -1 where missing; ``distances`` along them), each once, weighted as
    UMAP does: per point, exp(-(distance - nearest distance) / sigma) with sigma such that
    its k weights sum to log2(k); then w_ij + w_ji - w_ij * w_ji."""
    n, k = neighbours.shape
    distances = np.where(neighbours >= 0, distances, np.inf)
    excess = np.maximum(distances - distances.min(axis=1, keepdims=True), 0)
    target = np.log2(max(k, 2))
    low, high = np.zeros((n, 1)), np.full((n, 1), np.inf)
    sigma = np.ones((n, 1))
    for _ in range(64):  # bisection for every point's sigma at once
        over = np.exp(-excess / sigma).sum(axis=1, keepdims=True) > target
        high, low = np.where(over, sigma, high), np.where(over, low, sigma)
        sigma = np.where(np.isinf(high), sigma * 2, (low + high) / 2)
    rows = np.repeat(np.arange(n), k)
    cols = neighbours.ravel().astype(np.int64)
    weights = np.exp(-excess / sigma).ravel()
    keep = (cols >= 0) & (cols != rows) & (cols < n)
    rows, cols, weights = rows[keep], cols[keep], weights[keep]
    pairs, which = np.unique(np.minimum(rows, cols) * n + np.maximum(rows, cols),
                             return_inverse=True)
    both = np.bincount(which, minlength=len(pairs)) == 2
    product = np.exp(np.bincount(which, np.log(np.maximum(weights, 1e-30)),
                                 minlength=len(pairs)))
    symmetric = np.bincount(which, weights, minlength=len(pairs)) - np.where(both, product, 0)
    return pairs // n, pairs % n, symmetric.astype(np.float32)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


def _sum_by_node(nodes: np.ndarray, forces: np.ndarray, n: int) -> np.ndarray:
    return np.stack([np.bincount(nodes, forces[:, 0], minlength=n),
                     np.bincount(nodes, forces[:, 1], minlength=n)], axis=1).astype(np.float32)


def _scaled(points: np.ndarray) -> np.ndarray:
    """``points`` centred and spread over about [-10, 10], where UMAP's forces work."""
    centred = np.asarray(points, dtype=np.float32) - points.mean(axis=0)
    extent = float(np.abs(centred).max()) if len(centred) else 0.0
    return centred * np.float32(10 / extent) if extent > 0 else centred


def _pca_2d(vectors: np.ndarray) -> np.ndarray:
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2), dtype=np.float32)
    centred = vectors - vectors.mean(axis=0)
    # The top two principal axes by subspace iteration, O(n d) per step: the d x d
    # covariance and its eigendecomposition take seconds at d = 1280.
    basis = np.random.default_rng(0).standard_normal((vectors.shape[1], 8)).astype(np.float32)
    for _ in range(10):
        basis, _ = np.linalg.qr(centred.T @ (centred @ basis))
    projected = centred @ basis
    _, rotation = np.linalg.eigh(projected.T @ projected)
    axes = basis @ rotation[:, -1:-3:-1]
    axes *= np.where(axes.sum(axis=0) < 0, -1, 1)  # one sign, whatever the solver's
    return centred @ axes


def _unit_square(points: np.ndarray) -> np.ndarray:
    if len(points) == 0:
        return points.reshape(0, 2)
    low, high = points.min(axis=0), points.max(axis=0)
    return (points - low) / np.where(high > low, high - low, 1.0)
