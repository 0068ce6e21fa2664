"""The contract every ``Backbone`` kind keeps, checked the same way for each (in the
manner of scikit-learn's ``parametrize_with_checks``): a new kind joins ``KINDS``.

Rows are float32 ``[n, dim]``, L2-normalised, the same on a second call and whatever
batch an image is embedded in; images that are blank, tiny, extremely elongated or
not RGB still give finite rows.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.embed import Backbone, load_backbone
from tests.conftest import scene

ONNX_SIZE = 32


def tiny_onnx(folder: Path) -> str:
    """A random-weight conv net written with the onnx helpers (no torch): conv, relu,
    global average pool over a dynamic batch; its sidecar sets a 32 x 32 input."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).standard_normal((16, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["conv"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["conv"], ["relu"]),
         helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
         helper.make_node("Flatten", ["pool"], ["features"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                       ["batch", 3, ONNX_SIZE, ONNX_SIZE])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 16])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "tiny.onnx"
    onnx.save(model, path)
    path.with_suffix(".json").write_text(json.dumps(
        {"preprocess": {"size": ONNX_SIZE, "resize": ONNX_SIZE + 4}}))
    return f"onnx:{path}"


def timm_random_init(folder: Path) -> Backbone:
    """A small timm network with random weights (nothing downloaded)."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("timm") is None:
        pytest.skip("PyTorch and timm are not installed: pip install 'lookalike[torch]'")
    return load_backbone("timm:resnet10t", pretrained=False, device="cpu")


# kind -> a loader given a scratch folder: every backbone lookalike can build offline
KINDS: dict[str, Callable[[Path], Backbone]] = {
    "bundled-onnx": lambda folder: load_backbone("mobilenetv2"),
    "onnx-path": lambda folder: load_backbone(tiny_onnx(folder)),
    "classic": lambda folder: load_backbone("classic"),
    "timm-random": timm_random_init,
    "ensemble": lambda folder: load_backbone(f"{tiny_onnx(folder)}:0.3+classic:0.7"),
    "augmented": lambda folder: load_backbone("classic", border_crop=True, flip=True),
}


# a random-init timm network runs at 224 px: seconds per check on 2 cores
@pytest.fixture(scope="module", params=[
    pytest.param(name, marks=[pytest.mark.slow] if name == "timm-random" else [])
    for name in KINDS])
def backbone(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Backbone:
    return KINDS[request.param](tmp_path_factory.mktemp(request.param))


IMAGES = [scene(seed, (120 + 20 * seed, 90)) for seed in range(5)]


def embed(backbone: Backbone, images: list[Image.Image]) -> np.ndarray:
    """The indexing path: ``preprocess`` each image, ``embed`` the stack."""
    return backbone.embed(np.stack([backbone.preprocess(image) for image in images]))


def test_rows_are_float32_unit_vectors_of_dim(backbone: Backbone) -> None:
    rows = embed(backbone, IMAGES)
    assert rows.dtype == np.float32 and rows.shape == (len(IMAGES), backbone.dim)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert backbone.embed_images([]).shape == (0, backbone.dim)


def test_same_image_same_row(backbone: Backbone) -> None:
    np.testing.assert_array_equal(embed(backbone, IMAGES), embed(backbone, IMAGES))


def test_a_row_does_not_depend_on_its_batch(backbone: Backbone) -> None:
    together = embed(backbone, IMAGES)
    alone = np.concatenate([embed(backbone, [image]) for image in IMAGES])
    reordered = embed(backbone, IMAGES[::-1])[::-1]
    np.testing.assert_allclose(alone, together, atol=2e-5)
    np.testing.assert_allclose(reordered, together, atol=2e-5)


def test_distinct_images_get_distinct_rows(backbone: Backbone) -> None:
    rows = embed(backbone, IMAGES)
    similarity = rows @ rows.T
    assert (similarity[~np.eye(len(IMAGES), dtype=bool)] < 0.9999).all()


@pytest.mark.parametrize("image", [
    Image.new("RGB", (64, 64)),                      # blank: all zeros
    Image.new("RGB", (1, 1), (200, 10, 10)),          # one pixel
    Image.new("RGB", (2000, 3), (10, 200, 10)),       # a 666:1 strip
    scene(7).convert("L"),                            # greyscale, converted by embed_images
    scene(8).convert("RGBA"),                         # with alpha
], ids=["blank", "one-pixel", "strip", "greyscale", "rgba"])
def test_awkward_images_give_finite_rows(backbone: Backbone, image: Image.Image) -> None:
    row = backbone.embed_images([image])
    assert row.shape == (1, backbone.dim) and np.isfinite(row).all()
    norm = float(np.linalg.norm(row))
    assert norm == pytest.approx(1.0, abs=1e-5) or norm == 0.0  # a featureless image: zero
