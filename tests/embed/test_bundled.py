"""The bundled mobilenetv2: the offline default, usable with onnxruntime alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lookalike.cli import app
from lookalike.collection import Collection
from lookalike.embed import (
    DEFAULT_MODEL,
    ModelUnavailable,
    list_backbones,
    load_backbone,
    resolve_auto,
)
from lookalike.embed.bundled import bundled_path
from tests.conftest import REPO, SHARED, crop, flip, scene

SHARED_MODEL = SHARED / "models" / "mobilenetv2-int8" / "model.onnx"


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No hub weights cached: what a fresh machine looks like."""
    home = tmp_path / "home"
    monkeypatch.setenv("LOOKALIKE_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def backbone():
    return load_backbone("mobilenetv2")


def _python(code: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOOKALIKE_HOME": str(home)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)


def test_bundled_model_works_with_onnxruntime_alone(empty_cache: Path) -> None:
    """torch, timm and open_clip made unimportable: the default still loads and embeds."""
    code = """
import sys
for name in ("torch", "torchvision", "timm", "open_clip"):
    sys.modules[name] = None  # import raises ImportError, as when not installed
from lookalike.embed import load_backbone, resolve_auto
from tests.conftest import scene
assert resolve_auto() == "mobilenetv2", resolve_auto()
backbone = load_backbone("auto")
print(backbone.name, backbone.embed_images([scene(0)]).shape)
"""
    result = _python(code, empty_cache)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mobilenetv2", "(1,", "1280)"]


def test_without_torch_auto_never_tries_the_hub(empty_cache: Path) -> None:
    """Downloads allowed (no LOOKALIKE_NO_DOWNLOAD), but no torch: no probe, no warning."""
    code = """
import socket, sys
for name in ("torch", "torchvision", "timm", "open_clip"):
    sys.modules[name] = None
def refuse(*args, **kwargs):
    raise AssertionError("the network was touched")
socket.create_connection = socket.getaddrinfo = refuse
from lookalike.embed import resolve_auto
print(resolve_auto())
"""
    env = {name: value for name, value in os.environ.items()
           if name not in ("LOOKALIKE_NO_DOWNLOAD", "HF_HUB_OFFLINE")}
    env.update(PYTHONPATH=str(REPO), LOOKALIKE_HOME=str(empty_cache))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mobilenetv2"] and "unreachable" not in result.stderr


def test_embeds_float32_unit_rows_of_1280(backbone) -> None:
    images = [scene(0), crop(scene(0)), flip(scene(1)), scene(2, (200, 320))]
    vectors = backbone.embed(np.stack([backbone.preprocess(image) for image in images]))
    assert vectors.dtype == np.float32 and vectors.shape == (4, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert backbone.dim == 1280 and backbone.fixed_batch is None  # whole batches at once
    alone = backbone.embed(backbone.preprocess(images[2])[None])
    np.testing.assert_allclose(alone[0], vectors[2], atol=1e-5)
    assert backbone.embed(np.zeros((0, 3, 224, 224), np.float32)).shape == (0, 1280)


def test_identity_names_the_model_not_the_install_path(backbone) -> None:
    identity = backbone.identity()
    assert identity["name"] == "mobilenetv2" and identity["output"] == "pool_features"
    assert identity["preprocess"]["resize"] == 256 and identity["preprocess"]["size"] == 224
    assert "path" not in identity and str(bundled_path("mobilenetv2")) not in json.dumps(identity)
    assert len(identity["sha256"]) == 64


def test_ranks_a_crop_above_other_pictures(backbone) -> None:
    gallery = backbone.embed_images([scene(seed) for seed in range(8)])
    for seed in (0, 3, 6):
        query = backbone.embed_images([crop(scene(seed))])[0]
        scores = gallery @ query
        assert int(np.argmax(scores)) == seed
        assert scores[seed] > np.delete(scores, seed).max() + 0.05


def test_auto_is_the_bundled_model_when_no_hub_weights_are_cached() -> None:
    assert DEFAULT_MODEL == "mobilenetv2" and resolve_auto() == "mobilenetv2"
    infos = {info.name: info for info in list_backbones()}
    assert infos["mobilenetv2"].available and infos["mobilenetv2"].auto
    assert infos["classic"].available and not infos["classic"].auto


def test_auto_prefers_cached_strong_weights(empty_cache: Path) -> None:
    pytest.importorskip("timm")
    repo = empty_cache / "timm" / "models--timm--vit_small_patch14_dinov2.lvd142m"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "snapshots" / revision / "model.safetensors").write_bytes(b"stand-in")
    assert resolve_auto() == "dinov2-small"  # found, not loaded: nothing reads the file
    infos = {info.name: info for info in list_backbones()}
    assert infos["dinov2-small"].auto and not infos["mobilenetv2"].auto


@pytest.mark.slow
def test_models_lists_it_available_offline_without_importing_torch(empty_cache: Path) -> None:
    code = """
import json, sys
from typer.testing import CliRunner
from lookalike.cli import app
result = CliRunner().invoke(app, ["models", "--json"])
assert result.exit_code == 0, result.output
models = {m["name"]: m for m in json.loads(result.stdout)}
print(json.dumps({"torch": "torch" in sys.modules, "timm": "timm" in sys.modules,
                  "mobilenetv2": models["mobilenetv2"]}))
"""
    result = _python(code, empty_cache)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["torch"] is False and seen["timm"] is False
    assert seen["mobilenetv2"]["available"] is True and seen["mobilenetv2"]["auto"] is True
    assert "offline" in seen["mobilenetv2"]["note"]

    table = CliRunner().invoke(app, ["models"])
    assert table.exit_code == 0 and "mobilenetv2 (auto)" in table.stdout


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"lookalike {version('lookalike')}"


def test_index_defaults_to_the_bundled_model_and_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(6):
        scene(seed).save(folder / f"scene{seed}.jpg", quality=90)
    runner = CliRunner()
    first = runner.invoke(app, ["index", str(folder)])
    assert first.exit_code == 0, first.output
    assert "model: mobilenetv2 (bundled, offline); for better results" in first.stdout
    collection = Collection.open(folder)
    assert collection.model.spec == "mobilenetv2" and collection.model.dim == 1280
    query = tmp_path / "query.jpg"
    crop(scene(4)).save(query, quality=90)
    assert collection.search(query, k=1)[0].path == "scene4.jpg"

    scene(9).save(folder / "late.jpg", quality=90)
    again = runner.invoke(app, ["index", str(folder)])
    assert again.exit_code == 0, again.output
    assert "model:" not in again.stdout  # nothing new to announce: same model, one more image


def test_existing_collections_keep_their_model_under_auto(photo_folder: Path) -> None:
    Collection.index_folder(photo_folder, model="classic")
    runner = CliRunner()
    result = runner.invoke(app, ["index", str(photo_folder), "--rebuild"])
    assert result.exit_code == 0, result.output
    assert "model: classic" in result.stdout  # a rebuild announces, and keeps the model
    assert Collection.open(photo_folder).model.spec == "classic"
    switched = runner.invoke(app, ["index", str(photo_folder), "--model", "mobilenetv2",
                                   "--rebuild"])
    assert switched.exit_code == 0, switched.output
    assert Collection.open(photo_folder).model.spec == "mobilenetv2"


def test_bundled_model_refuses_other_settings() -> None:
    with pytest.raises(ModelUnavailable, match="bundled"):
        load_backbone("mobilenetv2", output="output")


@pytest.mark.skipif(not SHARED_MODEL.is_file(), reason="../shared (the model's source) absent")
def test_bundled_file_is_the_shared_model_byte_for_byte() -> None:
    assert bundled_path("mobilenetv2").read_bytes() == SHARED_MODEL.read_bytes()
