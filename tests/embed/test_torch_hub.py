"""timm / open_clip backbones with random or locally saved weights: no hub access needed."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

from lookalike.embed import _HUB_FILES, NAMED_MODELS, _weights_present
from lookalike.embed.base import ModelUnavailable, file_digest
from tests.conftest import crop, flip, scene

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
pytest.importorskip("open_clip")

from lookalike.embed.torch_hub import (  # noqa: E402  (after the skips)
    OPEN_CLIP_ALIASES,
    TIMM_ALIASES,
    is_cached,
    load_torch_backbone,
    pick_device,
)

IMAGES = [scene(0), crop(scene(0)), flip(scene(1)), scene(2, (200, 320))]


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("LOOKALIKE_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def fp32_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """fp32, so outputs compare tightly with the torch module's own (bf16 has its test)."""
    monkeypatch.setenv("LOOKALIKE_CPU_BF16", "0")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: name resolution and connections fail at once, as on a machine offline."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def own_features(module: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = module.eval()(torch.from_numpy(batch)).numpy()
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.mark.slow
def test_random_timm_model_embeds_normalised_deterministic_rows() -> None:
    backbone = load_torch_backbone("timm:resnet10t", pretrained=False, device="cpu")
    assert not backbone.cpu_bf16
    assert backbone.dim == 512 and not backbone.embeds_text
    # timm's data config: 176 px, crop_pct 0.875, bicubic
    assert (backbone.spec.size, backbone.spec.resize) == (176, round(176 / 0.875))
    assert backbone.spec.interpolation == "bicubic" and backbone.decode_size == 201

    batch = np.stack([backbone.preprocess(image) for image in IMAGES])
    assert batch.shape == (4, 3, 176, 176) and batch.dtype == np.float32
    vectors = backbone.embed(batch)
    assert vectors.shape == (4, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors, backbone.embed(batch))
    one_by_one = np.concatenate([backbone.embed(batch[i : i + 1]) for i in range(4)])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    np.testing.assert_allclose(vectors, own_features(backbone.model, batch), atol=1e-5)

    identity = backbone.identity()
    assert identity["name"] == "timm:resnet10t" and identity["dim"] == 512
    assert identity["pretrained"] == "random-init" and identity["library"] == "timm"
    assert identity["version"] == timm.__version__
    assert identity["preprocess"] == backbone.spec.to_dict()


@pytest.mark.slow
def test_cpu_bf16_matches_fp32_rankings_and_leaves_identity_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bf16 on CPU (forced here, native or not) changes vectors by rounding, not meaning."""
    monkeypatch.setenv("LOOKALIKE_CPU_BF16", "1")
    fast = load_torch_backbone("timm:vit_tiny_patch16_224", pretrained=False, device="cpu")
    monkeypatch.setenv("LOOKALIKE_CPU_BF16", "0")
    exact = load_torch_backbone("timm:vit_tiny_patch16_224", pretrained=False, device="cpu")
    assert fast.cpu_bf16 and not exact.cpu_bf16
    exact.model.load_state_dict(fast.model.state_dict())
    images = IMAGES + [scene(seed) for seed in range(3, 9)]
    batch = np.stack([exact.preprocess(image) for image in images])
    rounded, reference = fast.embed(batch), exact.embed(batch)
    assert rounded.dtype == np.float32
    assert not np.array_equal(rounded, reference)  # bf16 really ran
    assert np.min(np.sum(rounded * reference, axis=1)) > 0.99
    # the crop of scene 0 finds scene 0 first, whichever precision ran
    assert np.argsort(-(rounded @ rounded[1]))[1] == np.argsort(-(reference @ reference[1]))[1]
    assert fast.identity() == exact.identity()


@pytest.mark.slow
def test_torch_compile_gives_the_eager_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """``LOOKALIKE_TORCH_COMPILE=1`` (inductor; about half a minute here on CPU)."""
    monkeypatch.setenv("LOOKALIKE_TORCH_COMPILE", "1")
    compiled = load_torch_backbone("timm:resnet10t", pretrained=False, device="cpu")
    monkeypatch.setenv("LOOKALIKE_TORCH_COMPILE", "0")
    eager = load_torch_backbone("timm:resnet10t", pretrained=False, device="cpu")
    assert type(compiled.model).__name__ == "OptimizedModule"
    assert type(eager.model).__name__ != "OptimizedModule"
    eager.model.load_state_dict(compiled.model._orig_mod.state_dict())
    batch = np.stack([eager.preprocess(image) for image in IMAGES])
    np.testing.assert_allclose(compiled.embed(batch), eager.embed(batch), atol=1e-4)
    assert compiled.identity() == eager.identity()


@pytest.mark.slow
def test_aliases_name_the_intended_models() -> None:
    assert TIMM_ALIASES == {
        "dinov2-small": "vit_small_patch14_dinov2.lvd142m",
        "resnet50": "resnet50.a1_in1k",
        "inception-v3": "inception_v3.tv_in1k",
        "convnext-tiny": "convnext_tiny.fb_in22k_ft_in1k",
    }
    assert OPEN_CLIP_ALIASES == {"clip-vit-b-32": ("ViT-B-32", "laion2b_s34b_b79k")}
    assert all(timm.is_model(name) for name in TIMM_ALIASES.values())
    assert not any(is_cached(name) for name in [*TIMM_ALIASES, *OPEN_CLIP_ALIASES])

    resnet = load_torch_backbone("resnet50", pretrained=False, device="cpu")
    assert resnet.dim == 2048 and resnet.identity()["model"] == "resnet50.a1_in1k"
    assert (resnet.spec.size, resnet.spec.resize) == (224, round(224 / 0.95))


def test_listing_knows_where_each_named_model_is_cached() -> None:
    """The file-presence table behind ``lookalike models`` and ``auto`` (no torch import)
    names the files the libraries' own configs point at."""
    open_clip = pytest.importorskip("open_clip")
    assert set(_HUB_FILES) == set(NAMED_MODELS) == {*TIMM_ALIASES, *OPEN_CLIP_ALIASES}
    for name, model_name in TIMM_ALIASES.items():
        folder, repo, files, url = _HUB_FILES[name]
        cfg = timm.models.get_pretrained_cfg(model_name).to_dict()
        assert (folder, repo, url) == ("timm", cfg["hf_hub_id"], cfg["url"])
        assert (cfg.get("hf_hub_filename") or "pytorch_model.bin") in files
    for name, (arch, tag) in OPEN_CLIP_ALIASES.items():
        folder, repo, files, url = _HUB_FILES[name]
        cfg = open_clip.get_pretrained_cfg(arch, tag)
        assert folder == "open_clip" and cfg["hf_hub"].rstrip("/") == repo
        assert "open_clip_pytorch_model.bin" in files and not cfg.get("url")


@pytest.mark.parametrize("name", ["resnet50", "clip-vit-b-32"])
def test_file_presence_agrees_with_the_loaders_cache_check(empty_cache: Path, name: str) -> None:
    folder, repo, files, _ = _HUB_FILES[name]
    assert not _weights_present(name) and not is_cached(name)
    revision = "0123456789abcdef0123456789abcdef01234567"
    cached = empty_cache / folder / ("models--" + repo.replace("/", "--"))
    (cached / "refs").mkdir(parents=True)
    (cached / "refs" / "main").write_text(revision)
    (cached / "snapshots" / revision).mkdir(parents=True)
    (cached / "snapshots" / revision / files[-1]).write_bytes(b"stand-in")
    assert _weights_present(name) and is_cached(name)


@pytest.mark.slow
def test_dinov2_alias_runs_at_224() -> None:
    backbone = load_torch_backbone("dinov2-small", pretrained=False, device="cpu")
    assert backbone.dim == 384
    assert (backbone.spec.size, backbone.spec.resize) == (224, 224)  # not the published 518
    assert backbone.embed_images(IMAGES[:2]).shape == (2, 384)


def test_unknown_names_are_model_unavailable() -> None:
    for name in ("timm:no_such_net", "open_clip:No-Such-Arch", "resnet5O", "timm:"):
        with pytest.raises(ModelUnavailable):
            load_torch_backbone(name, pretrained=False)


@pytest.mark.parametrize("name", ["timm:resnet10t", "clip-vit-b-32"])
def test_offline_without_cache_fails_fast_with_the_ways_out(
    name: str, offline: None, empty_cache: Path
) -> None:
    start = time.monotonic()
    with pytest.raises(ModelUnavailable) as caught:
        load_torch_backbone(name, pretrained=True, device="cpu")
    assert time.monotonic() - start < 15
    message = str(caught.value)
    for way_out in ("--weights", "onnx:", "classic", str(empty_cache)):
        assert way_out in message
    assert caught.value.__cause__ is None and "Traceback" not in message


@pytest.mark.parametrize("with_classifier", [False, True])
@pytest.mark.slow
def test_weights_file_gives_the_source_model(tmp_path: Path, with_classifier: bool) -> None:
    torch.manual_seed(1)
    source = timm.create_model(
        "resnet10t", pretrained=False, num_classes=1000 if with_classifier else 0
    )
    weights = tmp_path / "resnet10t.pth"
    torch.save(source.state_dict(), weights)
    source.reset_classifier(0)

    backbone = load_torch_backbone("timm:resnet10t", weights=weights, device="cpu")
    batch = np.stack([backbone.preprocess(image) for image in IMAGES])
    np.testing.assert_allclose(backbone.embed(batch), own_features(source, batch), atol=1e-5)
    identity = backbone.identity()
    assert identity["weights_sha256"] == file_digest(weights)
    assert identity["pretrained"] == "weights-file"


def test_weights_file_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    source = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    renamed = tmp_path / "renamed.pth"
    torch.save({f"backbone.{k}": v for k, v in source.state_dict().items()}, renamed)
    with pytest.raises(ModelUnavailable, match="do not fit"):
        load_torch_backbone("timm:resnet10t", weights=renamed, device="cpu")
    with pytest.raises(ModelUnavailable, match="not found"):
        load_torch_backbone("timm:resnet10t", weights=tmp_path / "absent.pth")


@pytest.mark.slow
def test_cached_hub_weights_load_offline(offline: None, empty_cache: Path) -> None:
    """Weights in the Hugging Face cache layout under LOOKALIKE_HOME need no network."""
    torch.manual_seed(2)
    source = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    repo = empty_cache / "timm" / "models--timm--resnet10t.c3_in1k"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    torch.save(source.state_dict(), repo / "snapshots" / revision / "pytorch_model.bin")

    assert is_cached("timm:resnet10t") and not is_cached("resnet50")
    backbone = load_torch_backbone("timm:resnet10t", pretrained=True, device="cpu")
    batch = np.stack([backbone.preprocess(image) for image in IMAGES])
    np.testing.assert_allclose(backbone.embed(batch), own_features(source, batch), atol=1e-5)
    assert backbone.identity()["model"] == "resnet10t.c3_in1k"
    assert backbone.identity()["pretrained"] == "c3_in1k"


@pytest.mark.slow
def test_random_open_clip_embeds_text_and_images_together(tmp_path: Path) -> None:
    torch.manual_seed(3)
    backbone = load_torch_backbone("open_clip:ViT-S-32", pretrained=False, device="cpu")
    assert backbone.embeds_text
    images = backbone.embed_images(IMAGES[:2])
    texts = backbone.embed_text(["a red square", "a blue circle", "a dog"])
    assert images.shape == (2, backbone.dim) and texts.shape == (3, backbone.dim)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    # batch size changes the matmul kernels, hence a tolerance rather than equality
    np.testing.assert_allclose(texts[:1], backbone.embed_text(["a red square"]), atol=1e-5)
    assert backbone.embed_text([]).shape == (0, backbone.dim)
    assert backbone.identity()["library"] == "open_clip"
    assert backbone.identity()["pretrained"] == "random-init"

    weights = tmp_path / "clip.pt"
    torch.save(backbone.model.state_dict(), weights)
    reloaded = load_torch_backbone("open_clip:ViT-S-32", weights=weights, device="cpu")
    np.testing.assert_allclose(reloaded.embed_images(IMAGES[:2]), images, atol=1e-5)
    np.testing.assert_allclose(reloaded.embed_text(["a dog"]), texts[2:], atol=1e-5)


def test_pick_device_is_a_torch_device() -> None:
    device = pick_device()
    assert device in ("cuda", "mps", "cpu")
    torch.empty(1, device=device)
