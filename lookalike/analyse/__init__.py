"""Analyse: pure functions over embeddings and the k-NN graph (no file or network I/O)."""
