"""The PNG figures of ``lookalike eval --plots``; matplotlib is imported only when one is
drawn (it is a heavy import, and no other command needs it)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..extras import import_module
from .scoring import ConfigResult


def write_figures(results: Sequence[ConfigResult], folder: Path) -> list[str]:
    """``metrics.png`` for the run and ``confusion-<configuration>.png`` for each result."""
    figures = [str(plot_summary(results, folder / "metrics.png"))]
    for result in results:
        figures.append(str(plot_confusion(result, folder / f"confusion-{slug(result.label)}.png")))
    return figures


def plot_summary(results: Sequence[ConfigResult], path: Path) -> Path:
    """A grouped bar chart: every retrieval metric for every configuration."""
    plt = _pyplot()
    metrics = list(results[0].summary)
    width = 0.8 / len(results)
    figure, axes = plt.subplots(figsize=(max(6, 1.6 * len(metrics) + len(results)), 4.5))
    for i, result in enumerate(results):
        offsets = np.arange(len(metrics)) + (i - (len(results) - 1) / 2) * width
        bars = axes.bar(offsets, [result.summary[m] for m in metrics], width,
                        label=result.label)
        axes.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
    axes.set_xticks(np.arange(len(metrics)), metrics)
    axes.set_ylim(0, 1.08)
    axes.set_title(results[0].protocol, fontsize=9)
    axes.legend(fontsize=7, loc="lower right")
    return _save(figure, path)


def plot_confusion(result: ConfigResult, path: Path) -> Path:
    """Heat map of the class-to-class retrieval confusion (rows: query class)."""
    plt = _pyplot()
    n = len(result.classes)
    size = max(4.0, 0.45 * n + 2)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(result.confusion, cmap="viridis", vmin=0, vmax=1)
    axes.set_xticks(range(n), result.classes, rotation=90, fontsize=7)
    axes.set_yticks(range(n), result.classes, fontsize=7)
    axes.set_xlabel("class of the retrieved image")
    axes.set_ylabel("query class")
    axes.set_title(f"{result.label}: share of top-k results", fontsize=9)
    if n <= 20:
        for row in range(n):
            for col in range(n):
                value = result.confusion[row, col]
                if value >= 0.005:
                    axes.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=6,
                              color="black" if value > 0.6 else "white")
    figure.colorbar(image, ax=axes, fraction=0.046)
    return _save(figure, path)


def _pyplot() -> Any:
    matplotlib = import_module("matplotlib", "plots", "lookalike eval --plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    _pyplot().close(figure)
    return path


def slug(text: str) -> str:
    """A file-name-safe form of a configuration's label."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:80] or "config"
