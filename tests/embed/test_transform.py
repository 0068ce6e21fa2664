from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from lookalike.embed.augment import AugmentedBackbone, border_box, crop_borders
from lookalike.embed.base import l2_normalize
from lookalike.embed.classic import ClassicBackbone
from lookalike.embed.transform import (
    KISSME,
    LDA,
    PCA,
    MetricHead,
    TransformChain,
    chain_for,
    fit_chain,
)
from lookalike.eval.metrics import rank, retrieval_scores
from tests.conftest import scene


def confusable(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes that differ only along one weak direction, drowned by strong nuisance
    directions: raw cosine cannot tell them apart, a learned metric can."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(["a", "b"], n // 2)
    data = rng.normal(0, 1.0, (n, 16))
    data[:, :4] *= 5.0  # nuisance: large variance, no class information
    data[:, 4] = np.where(labels == "a", 0.6, -0.6) + rng.normal(0, 0.15, n)
    data[:, 5:] *= 0.5
    data += 3.0  # a common offset, as ReLU features have
    return l2_normalize(data), labels


def held_out_map(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                 transform=None) -> float:
    (xtr, ytr), (xte, yte) = train, test
    if transform is not None:
        xtr, xte = transform(xtr), transform(xte)
    neighbours, _ = rank(xte, xtr, 10)
    return retrieval_scores(neighbours, yte, ytr, 10).summary()["mAP@10"]


@pytest.mark.parametrize(
    "stage", [KISSME(pca_dim=None, shrinkage=0.01), LDA(pca_dim=None, shrinkage=0.001)]
)
def test_learned_metric_separates_what_cosine_confuses(stage) -> None:
    train, test = confusable(seed=0), confusable(seed=1)
    raw = held_out_map(train, test)
    stage.fit(*train)
    learned = held_out_map(train, test, stage.transform)
    assert raw < 0.7
    assert learned > 0.95
    out = stage.transform(test[0])
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_kissme_matrix_is_psd_square_root() -> None:
    x, y = confusable()
    stage = KISSME(pca_dim=8).fit(x, y)
    metric = stage.matrix @ stage.matrix.T
    assert np.linalg.eigvalsh(metric.astype(np.float64)).min() > -1e-5


def test_lda_keeps_at_most_classes_minus_one_dims() -> None:
    x, y = confusable()
    assert LDA(pca_dim=None).fit(x, y).transform(x).shape == (len(x), 1)


def test_pca_whitening_gives_unit_variance_components() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (500, 8)) * np.array([10, 5, 2, 1, 1, 1, 1, 0.5])
    stage = PCA(dim=3, whiten=1.0).fit(x)
    projected = (x - stage.mean) @ stage.matrix
    assert projected.shape[1] == 3
    assert np.allclose(projected.var(axis=0, ddof=1), 1.0, atol=1e-3)


def test_metric_head_learns_and_round_trips(tmp_path: Path) -> None:
    train, test = confusable(seed=0), confusable(seed=1)
    chain = fit_chain(TransformChain([MetricHead(dim=4, epochs=150)]), *train)
    assert held_out_map(train, test, chain.transform) > 0.9
    chain.save(tmp_path / "head")
    loaded = TransformChain.load(tmp_path / "head.npz")
    assert np.allclose(loaded.transform(test[0]), chain.transform(test[0]), atol=1e-6)


def test_chain_save_load_round_trip(tmp_path: Path) -> None:
    x, y = confusable()
    chain = fit_chain(chain_for("kissme", pca_dim=8), x, y)
    chain.info = {"model": "test"}
    saved = chain.save(tmp_path / "sub" / "t")
    assert saved.name == "t.npz" and (tmp_path / "sub" / "t.json").is_file()
    loaded = TransformChain.load(saved)
    assert loaded.description == "kissme" and loaded.info == {"model": "test"}
    assert np.allclose(loaded.transform(x), chain.transform(x), atol=1e-6)
    with pytest.raises(ValueError):
        chain_for("nope")
    with pytest.raises(ValueError):
        fit_chain(chain_for("lda"), x, None)


def test_border_crop_finds_uniform_margins() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (80, 120, 3), dtype=np.uint8)
    inner = Image.fromarray(noise)
    framed = ImageOps.expand(inner, border=(30, 10, 20, 30), fill=(255, 255, 255))
    assert border_box(np.asarray(framed)) == (30, 10, 150, 90)
    assert crop_borders(framed).size == inner.size
    assert crop_borders(inner).size == inner.size  # nothing to remove
    blank = Image.new("RGB", (100, 100), (40, 40, 40))
    assert crop_borders(blank).size == (40, 40)  # at most 30 % per side


def test_augmented_backbone_flip_tta_is_flip_invariant() -> None:
    backbone = AugmentedBackbone.wrap(ClassicBackbone(), border_crop=True, flip=True)
    image = scene(5)
    a, b = backbone.embed_images([image, ImageOps.mirror(image)])
    assert np.allclose(a, b, atol=1e-5)
    assert np.isclose(np.linalg.norm(a), 1.0, atol=1e-5)
    identity = backbone.identity()
    assert identity["flip_tta"] and identity["border_crop"]
    assert AugmentedBackbone.wrap(ClassicBackbone()).identity() == ClassicBackbone().identity()
