"""onnx:PATH backbones: models exported here from torch, then the real ones in ../shared."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.embed.base import IMAGENET_MEAN, ModelUnavailable, Preprocess
from lookalike.embed.onnx import load_onnx
from tests.conftest import crop, flip, scene

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")  # torch.onnx.export needs it
pytestmark = pytest.mark.slow  # exports ONNX models with torch

SHARED_MODELS = Path(__file__).resolve().parents[2] / ".." / "shared" / "models"
SIZE = 64


class TinyNet(torch.nn.Module):
    """Conv features; ``mode`` picks what forward returns."""

    def __init__(self, mode: str = "pooled") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
            torch.nn.ReLU(),
        )
        self.head = torch.nn.Linear(16, 10)
        self.mode = mode

    def forward(self, x):
        if self.mode == "nhwc":
            x = x.permute(0, 3, 1, 2)
        fmap = self.body(x)
        pooled = fmap.mean(dim=(2, 3), keepdim=True)  # [N, 16, 1, 1]
        if self.mode == "map":
            return fmap
        if self.mode == "two":
            return self.head(pooled.flatten(1)), pooled
        return pooled


BATCH = {0: "batch"}
ANY_SIZE = {0: "batch", 2: "height", 3: "width"}


def export(module: torch.nn.Module, path: Path, outputs: list[str], dynamic: dict) -> Path:
    """Export with ``dynamic`` axes ({}: everything static, batch 1)."""
    shape = (SIZE, SIZE, 3) if module.mode == "nhwc" else (3, SIZE, SIZE)
    example = torch.rand(2 if dynamic else 1, *shape)
    axes = {axis: torch.export.Dim(name) for axis, name in dynamic.items()}
    torch.onnx.export(
        module.eval(),
        (example,),
        str(path),
        input_names=["input"],
        output_names=outputs,
        dynamic_shapes=(axes,) if axes else None,
        dynamo=True,
        external_data=False,  # one self-contained file the tests can copy
        verbose=False,
    )
    return path


def reference(module: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    """The torch module's own features for NCHW ``batch``, L2-normalised."""
    if module.mode == "nhwc":
        batch = batch.transpose(0, 2, 3, 1)
    with torch.no_grad():
        out = module.eval()(torch.from_numpy(np.ascontiguousarray(batch)))
    out = (out[1] if isinstance(out, tuple) else out).numpy()
    out = out.mean(axis=(2, 3))
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def images(count: int = 5) -> list[Image.Image]:
    return [scene(seed, (96 + 16 * seed, 80)) for seed in range(count)]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx")
    paths = {}
    for key, mode, outputs, dynamic in [
        ("dynamic", "pooled", ["features"], BATCH),
        ("fixed", "pooled", ["features"], {}),
        ("two", "two", ["logits", "pool"], ANY_SIZE),
        ("map", "map", ["fmap"], BATCH),
        ("nhwc", "nhwc", ["features"], BATCH),
    ]:
        (root / key).mkdir()
        paths[key] = export(TinyNet(mode), root / key / "model.onnx", outputs, dynamic)
    return paths


def test_dynamic_batch_model_matches_torch(models: dict[str, Path]) -> None:
    backbone = load_onnx(models["dynamic"])
    assert backbone.dim == 16
    assert backbone.fixed_batch is None
    # defaults: size from the model's static input, ImageNet statistics, resize 256/224
    assert backbone.spec.size == SIZE and backbone.spec.resize == round(SIZE * 256 / 224)
    assert backbone.spec.mean == IMAGENET_MEAN and backbone.spec.crop == "center"
    assert backbone.decode_size == backbone.spec.resize

    batch = np.stack([backbone.preprocess(image) for image in images()])
    assert batch.shape == (5, 3, SIZE, SIZE)
    vectors = backbone.embed(batch)
    assert vectors.dtype == np.float32 and vectors.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, reference(TinyNet(), batch), atol=1e-4)
    one_by_one = np.concatenate([backbone.embed(batch[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)


def test_fixed_batch_model_runs_sample_by_sample(models: dict[str, Path]) -> None:
    fixed, dynamic = load_onnx(models["fixed"]), load_onnx(models["dynamic"])
    assert fixed.fixed_batch == 1 and fixed.dim == 16
    batch = np.stack([fixed.preprocess(image) for image in images()])
    vectors = fixed.embed(batch)
    assert vectors.shape == (5, 16)
    np.testing.assert_allclose(vectors, dynamic.embed(batch), atol=1e-5)
    np.testing.assert_allclose(vectors, reference(TinyNet(), batch), atol=1e-4)
    assert fixed.embed_images(images(3)).shape == (3, 16)
    assert fixed.embed(batch[:0]).shape == (0, 16)


def test_identity_records_file_and_settings(models: dict[str, Path]) -> None:
    backbone = load_onnx(models["dynamic"])
    identity = backbone.identity()
    assert identity["name"] == f"onnx:{models['dynamic'].resolve()}"
    assert identity["dim"] == 16 and identity["output"] == "features"
    assert identity["input"] == "input" and len(identity["sha256"]) == 64
    assert identity["preprocess"] == backbone.spec.to_dict()


def test_multi_output_model_picks_pool_output(models: dict[str, Path]) -> None:
    backbone = load_onnx(models["two"])
    assert backbone.output_name == "pool" and backbone.dim == 16
    assert backbone.spec.size == 224  # any input size: the default
    batch = np.stack([backbone.preprocess(image) for image in images(3)])
    np.testing.assert_allclose(backbone.embed(batch), reference(TinyNet("two"), batch), atol=1e-4)
    assert load_onnx(models["two"], output="logits").dim == 10


def test_spatial_output_is_globally_averaged(models: dict[str, Path]) -> None:
    backbone = load_onnx(models["map"])
    assert backbone.dim == 16
    batch = np.stack([backbone.preprocess(image) for image in images(3)])
    np.testing.assert_allclose(backbone.embed(batch), reference(TinyNet("map"), batch), atol=1e-4)


def test_channels_last_input_is_fed_nhwc(models: dict[str, Path]) -> None:
    backbone = load_onnx(models["nhwc"])
    assert backbone.channels_last and backbone.spec.size == SIZE and backbone.dim == 16
    batch = np.stack([backbone.preprocess(image) for image in images(3)])
    np.testing.assert_allclose(backbone.embed(batch), reference(TinyNet("nhwc"), batch), atol=1e-4)


@pytest.mark.parametrize("sidecar_name", ["model.onnx.json", "model.json"])
def test_sidecar_sets_preprocess_and_output(
    models: dict[str, Path], tmp_path: Path, sidecar_name: str
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(models["two"].read_bytes())
    settings = {"size": 48, "resize": 56, "mean": [0.5] * 3, "std": [0.25] * 3, "crop": "squash"}
    (tmp_path / sidecar_name).write_text(json.dumps({"preprocess": settings, "output": "logits"}))
    backbone = load_onnx(path)
    assert backbone.output_name == "logits" and backbone.dim == 10
    assert backbone.spec == Preprocess.from_dict(settings)
    assert backbone.preprocess(scene(0)).shape == (3, 48, 48)

    # explicit arguments win, field by field, over the sidecar
    override = load_onnx(path, preprocess={"size": 32}, output="pool")
    assert override.output_name == "pool" and override.dim == 16
    assert override.spec.size == 32 and override.spec.mean == (0.5, 0.5, 0.5)
    full = Preprocess(size=40, resize=40)
    assert load_onnx(path, preprocess=full).spec == full


def test_bad_sidecar_and_unknown_output_are_clear(models: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(models["dynamic"].read_bytes())
    with pytest.raises(ModelUnavailable, match="no output 'nope'"):
        load_onnx(path, output="nope")
    with pytest.raises(ModelUnavailable, match=f"takes {SIZE}x{SIZE} images"):
        load_onnx(path, preprocess={"size": 48})
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ModelUnavailable, match="sidecar"):
        load_onnx(path)


def test_missing_or_garbage_file_is_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="not found"):
        load_onnx(tmp_path / "absent.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf" * 100)
    with pytest.raises(ModelUnavailable, match="not a valid ONNX model"):
        load_onnx(garbage)


# -- the real pretrained models in ../shared -------------------------------------------------

CORAL_PREPROCESS = {"size": 224, "resize": 224, "mean": [128 / 255] * 3, "std": [128 / 255] * 3}


def shared(name: str) -> Path:
    path = SHARED_MODELS / name / "model.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared exists only on the project's machines)")
    return path


def load_shared(name: str):
    if name == "mobilenetv1-coral":
        return load_onnx(shared(name), preprocess=CORAL_PREPROCESS)
    return load_onnx(shared(name))


@pytest.mark.parametrize(
    ("name", "dim", "output", "fixed_batch"),
    [
        ("mobilenetv2-int8", 1280, "pool_features", None),
        ("mobilenetv1-coral", 1024, None, 1),
    ],
)
def test_shared_model_shapes(name: str, dim: int, output: str | None, fixed_batch: int | None):
    backbone = load_shared(name)
    assert backbone.dim == dim and backbone.fixed_batch == fixed_batch
    if output is not None:
        assert backbone.output_name == output
    batch = np.stack([backbone.preprocess(image) for image in images(3)])
    vectors = backbone.embed(batch)
    assert vectors.shape == (3, dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([backbone.embed(batch[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-4)


@pytest.mark.parametrize("name", ["mobilenetv2-int8", "mobilenetv1-coral"])
def test_shared_model_ranks_edited_copy_above_other_scene(name: str) -> None:
    backbone = load_shared(name)
    for seed in range(3):
        original = scene(seed)
        copy, other = crop(flip(original), 0.9), scene(seed + 10)
        vectors = backbone.embed_images([original, copy, other])
        same, different = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
        assert same > different + 0.05, (seed, same, different)


@pytest.mark.parametrize("name", ["mobilenetv2-int8", "mobilenetv1-coral"])
def test_shared_model_finds_real_photo_copies(name: str) -> None:
    """UKBench photo: its flipped / resized / rotated / grey copies beat 9 other objects."""
    folder = SHARED_MODELS.parent / "data" / "imagededup_testset"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    backbone = load_shared(name)
    copies = sorted((folder / "ukbench00120").glob("*.jpg"))
    others = sorted((folder / "singletons").glob("*.jpg"))
    assert copies[0].name == "ukbench00120.jpg" and len(copies) == 5 and len(others) == 9
    vectors = backbone.embed_images([Image.open(p).convert("RGB") for p in copies + others])
    scores = vectors[1:] @ vectors[0]
    assert scores[:4].min() > scores[4:].max(), scores
