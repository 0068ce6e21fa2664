"""What the FAISS stages share (the vector index, the k-NN graph, k-means): the training
sample they draw from embeddings that may be memory-mapped, and the GPUs FAISS can use."""

from __future__ import annotations

import faiss
import numpy as np

# Rows read from a memmap at a time: 65,536 x 384 float32 is 96 MiB.
CHUNK_ROWS = 65_536


def faiss_gpus() -> int:
    """GPUs FAISS can use: > 0 only with the faiss-gpu build on a machine with CUDA. The
    k-NN graph and k-means then run there (same results within float tolerance)."""
    count = getattr(faiss, "get_num_gpus", None)
    return int(count()) if count is not None else 0


def sample_rows(vectors: np.ndarray, size: int, seed: int = 0,
                chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """A reproducible random subset of at most ``size`` rows (all when there are no more),
    as float32 in row order; a memmap is read ``chunk_rows`` rows at a time."""
    n = len(vectors)
    if size >= n:
        rows = np.arange(n)
    else:
        rows = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    chunks = [np.asarray(vectors[rows[start : start + chunk_rows]], dtype=np.float32)
              for start in range(0, len(rows), chunk_rows)]
    return np.concatenate(chunks) if chunks else np.zeros((0, vectors.shape[1]), np.float32)
