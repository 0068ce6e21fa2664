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
    RegularisedLDA,
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


@pytest.mark.slow
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


def class_blobs(names: list[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """30 points per class around a random centre in 32 dimensions, plus a shared nuisance
    in 4 of them: every class differs from every other in many directions."""
    labels = np.repeat(names, 30)
    centres = {name: rng.normal(0, 1.0, 32) for name in names}
    data = np.stack([centres[label] for label in labels])
    data += rng.normal(0, 0.6, data.shape)
    data[:, :4] += rng.normal(0, 2.0, (len(labels), 4))
    return l2_normalize(data + 2.0), labels


def leave_one_out_map(vectors: np.ndarray, labels: np.ndarray) -> float:
    neighbours, _ = rank(vectors, vectors, 10, exclude=np.arange(len(vectors)))
    return retrieval_scores(neighbours, labels, labels, 10,
                            leave_one_out=True).summary()["mAP@10"]


def test_regularised_lda_keeps_unseen_classes_apart_where_lda_collapses_them() -> None:
    """Fitted on 4 classes, LDA keeps 3 directions: enough for those, too few for 5 other
    classes, which then search far worse than raw. The default (regularised LDA) keeps
    every direction and the raw space beside them, so it does not fall below raw."""
    rng = np.random.default_rng(0)
    seen, unseen = class_blobs(list("abcd"), rng), class_blobs(list("vwxyz"), rng)
    raw = leave_one_out_map(*unseen)
    lda = LDA(pca_dim=None).fit(*seen)
    default = chain_for("rlda").fit(*seen)
    assert default.description == "rlda" and isinstance(default.stages[0], RegularisedLDA)
    assert raw == pytest.approx(0.989, abs=0.002)
    assert leave_one_out_map(lda.transform(unseen[0]), unseen[1]) == pytest.approx(
        0.636, abs=0.002)
    assert leave_one_out_map(default.transform(unseen[0]), unseen[1]) >= raw
    assert leave_one_out_map(default.transform(seen[0]), seen[1]) == 1.0
    out = default.transform(unseen[0])
    assert out.shape == (150, 32 + 32) and np.allclose(np.linalg.norm(out, axis=1), 1.0,
                                                       atol=1e-5)


def test_regularised_lda_blend_ends_are_raw_and_learned(tmp_path: Path) -> None:
    x, y = confusable()
    raw_only = RegularisedLDA(pca_dim=None, blend=0.0).fit(x, y)
    assert np.allclose(raw_only.transform(x)[:, :16], x, atol=1e-6)
    chain = fit_chain(chain_for("rlda", dim=8), x, y)
    loaded = TransformChain.load(chain.save(tmp_path / "r"))
    assert loaded.stages[0].params() == {"pca_dim": 8, "shrinkage": 0.03, "stretch": 0.0,
                                         "blend": 0.75}
    assert np.allclose(loaded.transform(x), chain.transform(x), atol=1e-6)
    with pytest.raises(ValueError, match="blend"):
        RegularisedLDA(blend=1.5).fit(x, y)
