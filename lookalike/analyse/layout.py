"""A 2-D map of a collection: nearby points look alike."""

from __future__ import annotations

import importlib.util

import numpy as np

TSNE_MAX = 3_000  # t-SNE is O(n log n) but slow on 2 cores past a few thousand points


def map_2d(vectors: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """``(coordinates float32 [n, 2] scaled to [0, 1], method used)``.

    ``auto``: UMAP when ``umap-learn`` is installed, else t-SNE up to ``TSNE_MAX`` points,
    else PCA (always available, linear, fast at any size).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    if method == "auto":
        if importlib.util.find_spec("umap") is not None and n > 15:
            method = "umap"
        elif n <= TSNE_MAX and n > 5:
            method = "tsne"
        else:
            method = "pca"
    if method == "umap":
        import umap

        points = umap.UMAP(n_components=2, metric="cosine", random_state=seed).fit_transform(
            vectors)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (n - 1) // 3)))
        points = TSNE(2, metric="cosine", init="pca", perplexity=perplexity,
                      random_state=seed).fit_transform(vectors)
    elif method == "pca":
        points = _pca_2d(vectors)
    else:
        raise ValueError(f"map method must be auto, umap, tsne or pca, not {method!r}")
    return _unit_square(np.asarray(points, dtype=np.float32)), method


def _pca_2d(vectors: np.ndarray) -> np.ndarray:
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2), dtype=np.float32)
    centred = vectors - vectors.mean(axis=0)
    # The top two right-singular vectors via the small d x d covariance: O(n d^2), no n x n.
    covariance = centred.T @ centred
    _, eigenvectors = np.linalg.eigh(covariance)
    return centred @ eigenvectors[:, -1:-3:-1]


def _unit_square(points: np.ndarray) -> np.ndarray:
    if len(points) == 0:
        return points.reshape(0, 2)
    low, high = points.min(axis=0), points.max(axis=0)
    return (points - low) / np.where(high > low, high - low, 1.0)
