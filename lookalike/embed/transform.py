"""Fitted stages applied to embeddings after the backbone: PCA (+ whitening), KISSME, LDA,
regularised LDA (blended with the raw space) and a small linear / MLP head trained with a
metric loss.

Each stage is a small sklearn-like estimator (``fit(x[, y])`` then ``transform(x)``) over
float32 L2-normalised rows, and returns L2-normalised rows, so that everything downstream
(FAISS inner product, k-means, thresholds) keeps reading cosines. Stages chain in a
:class:`TransformChain`, which saves to ``NAME.npz`` (arrays) + ``NAME.json`` (what it is,
readable) and is applied to stored embeddings without re-embedding any image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..ownership import atomic_write
from .base import l2_normalize

# Ridge added to covariance matrices, relative to their mean eigenvalue: labelled sets are
# often smaller than the embedding width, so the raw scatter matrices are singular.
_SHRINKAGE = 1e-3


class Stage:
    """One fitted stage: ``x -> normalise(f(x))``. Subclasses hold only numpy arrays and
    plain parameters, so that :class:`TransformChain` can save them."""

    kind: ClassVar[str] = ""
    supervised: ClassVar[bool] = False

    def fit(self, vectors: np.ndarray, labels: np.ndarray | None = None) -> Stage:
        raise NotImplementedError

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit_transform(self, vectors: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        return self.fit(vectors, labels).transform(vectors)

    def params(self) -> dict[str, Any]:
        """Plain settings (saved to JSON)."""
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        """Fitted state (saved to npz)."""
        return {}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        for name, value in arrays.items():
            setattr(self, name, value)


@dataclass
class Affine(Stage):
    """``x -> normalise((x - mean) @ matrix)``: the shape every linear stage fits into."""

    mean: np.ndarray | None = None
    matrix: np.ndarray | None = None

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Projected in blocks of ``_BLOCK_ROWS``: ``vectors`` may be a float16 memmap, and
        no full-size float32 copy of it is made."""
        if self.mean is None or self.matrix is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        out = np.empty((len(vectors), self.matrix.shape[1]), dtype=np.float32)
        for start in range(0, len(vectors), _BLOCK_ROWS):
            block = np.asarray(vectors[start:start + _BLOCK_ROWS], dtype=np.float32)
            out[start:start + len(block)] = l2_normalize((block - self.mean) @ self.matrix)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        assert self.mean is not None and self.matrix is not None
        return {"mean": self.mean, "matrix": self.matrix}


_BLOCK_ROWS = 65_536


def _covariance(centred: np.ndarray) -> np.ndarray:
    return centred.T @ centred / max(len(centred) - 1, 1)


def _shrink(matrix: np.ndarray, amount: float) -> np.ndarray:
    scale = float(np.trace(matrix)) / len(matrix) if len(matrix) else 0.0
    return matrix + np.eye(len(matrix)) * max(scale, 1e-12) * amount


def _pca_basis(data: np.ndarray, dim: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, eigenvectors [d, dim], eigenvalues [dim])`` of ``data``, largest first."""
    mean = data.mean(axis=0)
    centred = data - mean
    limit = min(data.shape[1], max(len(data) - 1, 1))
    dim = limit if dim is None else min(dim, limit)
    if len(data) < data.shape[1]:  # few rows: eigen-decompose the Gram matrix instead
        u, s, vt = np.linalg.svd(centred, full_matrices=False)
        values = s**2 / max(len(data) - 1, 1)
        return mean, vt[:dim].T, values[:dim]
    values, vectors = np.linalg.eigh(_covariance(centred))
    order = np.argsort(values)[::-1][:dim]
    return mean, vectors[:, order], values[order]


@dataclass
class PCA(Affine):
    """Principal components, optionally whitened.

    ``whiten``: each component is scaled by its variance to the power ``-whiten / 2``
    (0 = plain PCA, 1 = full whitening, 0.5 = the partial whitening that k-means uses).
    Why whitening helps retrieval: CNN features are dominated by a few high-variance
    directions shared by all images; evening them out lets the many weaker directions that
    separate classes count. Full whitening also amplifies noise, hence the dimension cut.
    """

    kind: ClassVar[str] = "pca"
    dim: int | None = None
    whiten: float = 0.0

    def fit(self, vectors: np.ndarray, labels: np.ndarray | None = None) -> PCA:
        data = np.asarray(vectors, dtype=np.float64)
        mean, basis, values = _pca_basis(data, self.dim)
        floor = max(values[0], 1e-30) * 1e-9
        scale = np.maximum(values, floor) ** (-self.whiten / 2)
        self.mean = mean.astype(np.float32)
        self.matrix = (basis * scale).astype(np.float32)
        return self

    def params(self) -> dict[str, Any]:
        return {"dim": self.dim, "whiten": self.whiten}


def _scatter(data: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """``(similar-pair covariance, dissimilar-pair covariance, n_similar, n_dissimilar)``
    of the pairwise differences x_i - x_j over all pairs, in closed form (no pair sampling):
    sum over pairs in a set S of (x_i - x_j)(x_i - x_j)^T = |S| * S_scatter for one class."""
    total = np.zeros((data.shape[1], data.shape[1]))
    within = np.zeros_like(total)
    n = len(data)
    n_similar = 0.0
    centred = data - data.mean(axis=0)
    total = n * (centred.T @ centred)
    for label in np.unique(labels):
        members = data[labels == label]
        m = len(members)
        if m < 2:
            continue
        offsets = members - members.mean(axis=0)
        within += m * (offsets.T @ offsets)
        n_similar += m * (m - 1) / 2
    n_dissimilar = n * (n - 1) / 2 - n_similar
    if n_similar == 0 or n_dissimilar == 0:
        raise ValueError("metric learning needs at least two classes and a class with two items")
    return within / n_similar, (total - within) / n_dissimilar, n_similar, n_dissimilar


@dataclass
class KISSME(Affine):
    """"Keep It Simple and Straightforward MEtric" (Koestinger et al., CVPR 2012).

    The log-likelihood ratio of "same class" vs "different class" for a pair, with both
    differences modelled as zero-mean Gaussians, is (x_i - x_j)^T M (x_i - x_j) with
    M = Σ_similar⁻¹ − Σ_dissimilar⁻¹. Fitted after a PCA to ``pca_dim`` (the covariances are
    then well conditioned), M is projected to the PSD cone (negative eigenvalues clipped),
    and the stage maps x -> M^½ P (x - mean): squared distances there are the learned metric,
    and after normalisation cosine ranks like it for rows of similar norm.
    """

    kind: ClassVar[str] = "kissme"
    supervised: ClassVar[bool] = True
    pca_dim: int | None = 256
    shrinkage: float = 0.2
    dim: int | None = None  # keep the top ``dim`` directions of M (None: all with > 0)

    def fit(self, vectors: np.ndarray, labels: np.ndarray | None = None) -> KISSME:
        if labels is None:
            raise ValueError("KISSME needs labels")
        data = np.asarray(vectors, dtype=np.float64)
        labels = np.asarray(labels)
        mean, basis, _ = _pca_basis(data, self.pca_dim)
        projected = (data - mean) @ basis
        similar, dissimilar, _, _ = _scatter(projected, labels)
        metric = (np.linalg.inv(_shrink(similar, self.shrinkage))
                  - np.linalg.inv(_shrink(dissimilar, self.shrinkage)))
        values, vectors_ = np.linalg.eigh((metric + metric.T) / 2)
        order = np.argsort(values)[::-1]
        values, vectors_ = values[order], vectors_[:, order]
        keep = values > values[0] * 1e-9
        if self.dim is not None:
            keep[self.dim:] = False
        root = vectors_[:, keep] * np.sqrt(values[keep])
        self.mean = mean.astype(np.float32)
        self.matrix = (basis @ root).astype(np.float32)
        return self

    def params(self) -> dict[str, Any]:
        return {"pca_dim": self.pca_dim, "shrinkage": self.shrinkage, "dim": self.dim}


@dataclass
class LDA(Affine):
    """Fisher linear discriminant: the directions maximising between-class over within-class
    scatter (generalised eigenproblem S_b v = λ S_w v, S_w shrunk for stability), scaled so
    within-class scatter is white. At most ``classes - 1`` dimensions carry signal; ``dim``
    caps them. Fitted after a PCA to ``pca_dim``."""

    kind: ClassVar[str] = "lda"
    supervised: ClassVar[bool] = True
    pca_dim: int | None = 512
    shrinkage: float = 0.1
    dim: int | None = None

    def fit(self, vectors: np.ndarray, labels: np.ndarray | None = None) -> LDA:
        if labels is None:
            raise ValueError("LDA needs labels")
        mean, directions, _ = _discriminants(vectors, labels, self.pca_dim, self.shrinkage)
        classes = len(np.unique(labels))
        self.mean = mean.astype(np.float32)
        self.matrix = directions[:, :min(classes - 1, self.dim or classes)].astype(np.float32)
        return self

    def params(self) -> dict[str, Any]:
        return {"pca_dim": self.pca_dim, "shrinkage": self.shrinkage, "dim": self.dim}


def _discriminants(vectors: np.ndarray, labels: np.ndarray, pca_dim: int | None,
                   shrinkage: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, directions [d, p], values [p])``: every solution of the generalised
    eigenproblem S_b v = λ S_w v in a PCA to ``pca_dim`` (S_w shrunk by ``shrinkage``),
    largest λ first, scaled so that within-class scatter is white along them."""
    from scipy.linalg import eigh

    data = np.asarray(vectors, dtype=np.float64)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError("LDA needs at least two classes")
    mean, basis, _ = _pca_basis(data, pca_dim)
    projected = (data - mean) @ basis
    within = np.zeros((projected.shape[1],) * 2)
    between = np.zeros_like(within)
    for label in classes:
        members = projected[labels == label]
        centre = members.mean(axis=0)
        offsets = members - centre
        within += offsets.T @ offsets
        between += len(members) * np.outer(centre, centre)  # overall mean is 0 after PCA
    within /= len(projected)
    between /= len(projected)
    values, directions = eigh(between, _shrink(within, shrinkage))
    order = np.argsort(values)[::-1]
    return mean, basis @ directions[:, order], np.maximum(values[order], 0.0)


@dataclass
class RegularisedLDA(Affine):
    """LDA that keeps its footing on classes it never saw: the default of ``learn``.

    Plain LDA keeps only the ``classes - 1`` directions that separate the *fitted* classes,
    so on other classes it throws away what tells them apart (flowers17, fitted on 9
    classes and scored on the other 8: mAP@10 .868 raw -> .391). This stage keeps every
    discriminant direction, i.e. whitens the within-class scatter (lighting, pose, framing:
    nuisances that other classes share), stretches the discriminant directions by
    (1 + λ) ** ``stretch`` (0 by default: stretching them favours the fitted classes),
    and blends the result with the raw space: the output
    is [√(1 - ``blend``) · x̂, √``blend`` · ẑ] for unit x̂ (raw) and ẑ (projected), so
    cosine there is (1 - blend) · raw cosine + blend · learned cosine. The defaults were
    chosen by class-disjoint validation inside the training classes (BENCHMARKS.md)."""

    kind: ClassVar[str] = "rlda"
    supervised: ClassVar[bool] = True
    pca_dim: int | None = None
    shrinkage: float = 0.03
    stretch: float = 0.0
    blend: float = 0.75

    def fit(self, vectors: np.ndarray, labels: np.ndarray | None = None) -> RegularisedLDA:
        if labels is None:
            raise ValueError("regularised LDA needs labels")
        if not 0 <= self.blend <= 1:
            raise ValueError(f"blend must be between 0 and 1, not {self.blend}")
        mean, directions, values = _discriminants(vectors, labels, self.pca_dim,
                                                  self.shrinkage)
        self.mean = mean.astype(np.float32)
        self.matrix = (directions * (1 + values) ** self.stretch).astype(np.float32)
        return self

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        learned = super().transform(vectors) * np.float32(np.sqrt(self.blend))
        raw = np.empty((len(vectors), vectors.shape[1]), dtype=np.float32)
        for start in range(0, len(vectors), _BLOCK_ROWS):
            block = np.asarray(vectors[start:start + _BLOCK_ROWS], dtype=np.float32)
            raw[start:start + len(block)] = l2_normalize(block)
        return np.hstack([raw * np.float32(np.sqrt(1 - self.blend)), learned])

    def params(self) -> dict[str, Any]:
        return {"pca_dim": self.pca_dim, "shrinkage": self.shrinkage,
                "stretch": self.stretch, "blend": self.blend}


@dataclass
class MetricHead(Stage):
    """A small head, linear (``hidden=0``) or one hidden layer MLP, trained with PyTorch on
    labelled embeddings with a normalised-softmax proxy loss (cosine to one learned proxy
    per class, temperature ``scale``; Zhai & Wu 2019): it pulls each class towards its proxy
    and away from the others, which is what cosine retrieval needs. Inputs are standardised
    per feature first. The fitted weights are stored as numpy arrays, so applying it needs
    no torch."""

    kind: ClassVar[str] = "linear"
    supervised: ClassVar[bool] = True
    dim: int = 128
    hidden: int = 0
    epochs: int = 300
    scale: float = 16.0
    weight_decay: float = 1e-4
    learning_rate: float = 1e-2
    seed: int = 0
    weights: list[np.ndarray] = field(default_factory=list)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def fit(self, vectors: np.ndarray, labels: np.ndarray | None = None) -> MetricHead:
        if labels is None:
            raise ValueError("the metric head needs labels")
        import torch

        torch.manual_seed(self.seed)
        raw = np.asarray(vectors, dtype=np.float32)
        # Standardise features first: class signal often sits in low-variance directions
        # that plain SGD from a small initialisation would take many epochs to amplify.
        self.mean = raw.mean(axis=0)
        self.std = np.maximum(raw.std(axis=0), 1e-6)
        data = torch.as_tensor((raw - self.mean) / self.std)
        _, codes = np.unique(np.asarray(labels), return_inverse=True)
        target = torch.as_tensor(codes, dtype=torch.long)
        n_classes = int(codes.max()) + 1
        width = data.shape[1]
        dim = min(self.dim, width)
        layers: list[torch.nn.Module] = []
        if self.hidden:
            layers += [torch.nn.Linear(width, self.hidden), torch.nn.ReLU()]
            width = self.hidden
        layers.append(torch.nn.Linear(width, dim))
        head = torch.nn.Sequential(*layers)
        proxies = torch.nn.Parameter(torch.randn(n_classes, dim) * 0.1)
        optimiser = torch.optim.AdamW([*head.parameters(), proxies], lr=self.learning_rate,
                                      weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, self.epochs)
        for _ in range(self.epochs):  # full batch: labelled sets here are small
            optimiser.zero_grad()
            out = torch.nn.functional.normalize(head(data), dim=1)
            logits = self.scale * out @ torch.nn.functional.normalize(proxies, dim=1).T
            loss = torch.nn.functional.cross_entropy(logits, target)
            loss.backward()
            optimiser.step()
            schedule.step()
        self.weights = []
        for layer in head:
            if isinstance(layer, torch.nn.Linear):
                self.weights += [layer.weight.detach().numpy().T.copy(),
                                 layer.bias.detach().numpy().copy()]
        return self

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        if not self.weights or self.mean is None or self.std is None:
            raise RuntimeError("MetricHead is not fitted")
        out = (np.asarray(vectors, dtype=np.float32) - self.mean) / self.std
        pairs = list(zip(self.weights[::2], self.weights[1::2]))
        for i, (matrix, bias) in enumerate(pairs):
            out = out @ matrix + bias
            if i < len(pairs) - 1:
                out = np.maximum(out, 0)
        return l2_normalize(out)

    def params(self) -> dict[str, Any]:
        return {"dim": self.dim, "hidden": self.hidden, "epochs": self.epochs,
                "scale": self.scale, "weight_decay": self.weight_decay,
                "learning_rate": self.learning_rate, "seed": self.seed}

    def arrays(self) -> dict[str, np.ndarray]:
        assert self.mean is not None and self.std is not None
        return {"mean": self.mean, "std": self.std,
                **{f"w{i}": w for i, w in enumerate(self.weights)}}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.mean, self.std = arrays["mean"], arrays["std"]
        self.weights = [arrays[f"w{i}"] for i in range(len(arrays) - 2)]


STAGES: dict[str, type[Stage]] = {"pca": PCA, "kissme": KISSME, "lda": LDA,
                                  "rlda": RegularisedLDA, "linear": MetricHead}


def make_stage(kind: str, **params: Any) -> Stage:
    """A new, unfitted stage by name (``pca``, ``kissme``, ``lda``, ``rlda``, ``linear``,
    ``mlp``)."""
    if kind == "mlp":
        kind, params = "linear", {"hidden": 512, **params}
    if kind not in STAGES:
        raise ValueError(f"unknown transform {kind!r}; choose one of "
                         f"{', '.join([*STAGES, 'mlp'])}")
    return STAGES[kind](**params)


@dataclass
class TransformChain:
    """Stages applied in order; ``info`` records what they were fitted on (JSON-able)."""

    stages: list[Stage] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def fit(self, vectors: np.ndarray, labels: np.ndarray | None = None) -> TransformChain:
        data = np.asarray(vectors, dtype=np.float32)
        for stage in self.stages:
            data = stage.fit_transform(data, labels)
        return self

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        data = np.asarray(vectors, dtype=np.float32)
        for stage in self.stages:
            data = stage.transform(data)
        return data

    @property
    def description(self) -> str:
        return " -> ".join(stage.kind for stage in self.stages) or "identity"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path.npz`` (arrays) and ``path.json`` (kinds, parameters, info), each
        atomically."""
        base = Path(path).with_suffix("")
        arrays = {f"{i}.{name}": value for i, stage in enumerate(self.stages)
                  for name, value in stage.arrays().items()}
        # np.savez adds ".npz" to a name without it: give it an open file instead
        atomic_write(base.with_suffix(".npz"),
                     lambda temporary: _savez(temporary, arrays))
        meta = {"stages": [{"kind": s.kind, "params": s.params()} for s in self.stages],
                "info": self.info}
        atomic_write(base.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
        return base.with_suffix(".npz")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TransformChain:
        base = Path(path).with_suffix("")
        meta = json.loads(base.with_suffix(".json").read_text())
        stages: list[Stage] = []
        with np.load(base.with_suffix(".npz")) as saved:
            for i, entry in enumerate(meta["stages"]):
                stage = STAGES[entry["kind"]](**entry["params"])
                prefix = f"{i}."
                stage.load_arrays({name[len(prefix):]: saved[name] for name in saved.files
                                   if name.startswith(prefix)})
                stages.append(stage)
        return cls(stages, meta.get("info", {}))


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as stream:
        np.savez(stream, **arrays)  # type: ignore[arg-type]  # numpy's stub: kwds: ArrayLike


def chain_for(method: str | None, *, dim: int | None = None, whiten: float = 0.0,
              **params: Any) -> TransformChain:
    """The stages ``learn --method M [--dim N]`` fits: a PCA stage for ``--dim`` alone, the
    method's own stage otherwise (KISSME and LDA do their own PCA first; for ``rlda``,
    ``--dim`` is that PCA's, since it keeps every discriminant direction)."""
    stages: list[Stage] = []
    if method in (None, "pca"):
        if dim is None and not whiten:
            raise ValueError("nothing to fit: give a method or --dim")
        stages.append(PCA(dim=dim, whiten=whiten))
    elif method in ("kissme", "lda"):
        stages.append(make_stage(method, dim=dim, **params))
    elif method == "rlda":
        stages.append(make_stage(method, pca_dim=dim, **params))
    elif method in ("linear", "mlp"):
        stages.append(make_stage(method, **({"dim": dim} if dim else {}), **params))
    else:
        raise ValueError(f"unknown method {method!r}: rlda, lda, kissme, linear, mlp or pca")
    return TransformChain(stages)


def supervised(chain: TransformChain) -> bool:
    return any(stage.supervised for stage in chain.stages)


def fit_chain(chain: TransformChain, vectors: np.ndarray,
              labels: Sequence[str] | np.ndarray | None) -> TransformChain:
    if supervised(chain) and labels is None:
        raise ValueError(f"{chain.description} needs labels")
    return chain.fit(vectors, None if labels is None else np.asarray(labels))
