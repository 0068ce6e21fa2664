"""Embed: the backbone registry. A model spec string -> a loaded :class:`Backbone`.

Specs:
  ``mobilenetv2``                  MobileNetV2 int8, bundled: works offline, onnxruntime only
  ``classic``                      weight-free colour/layout/edge descriptor
  ``onnx:PATH``                    any ONNX image model (sidecar JSON or explicit options)
  ``dinov2-small`` ``clip-vit-b-32`` ``resnet50`` ``inception-v3`` ``convnext-tiny``
  ``timm:NAME`` ``open_clip:ARCH[/TAG]``  any timm / open_clip model
  ``auto``                         the first named model whose weights are cached here;
                                   else, with torch installed and the hub answering,
                                   ``dinov2-small`` downloaded now; else the bundled
                                   ``mobilenetv2``

Listing models looks for cached weights by file presence and for libraries with
``importlib.util.find_spec``: it never imports torch and never downloads. Resolving
``auto`` imports torch only when there are weights to use, and downloads only when
allowed (see :func:`resolve_auto`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .base import Backbone, ModelUnavailable, Preprocess, cache_dir
from .bundled import BUNDLED_MODELS, bundled_path, load_bundled
from .classic import ClassicBackbone

__all__ = [
    "BUNDLED_MODELS", "DEFAULT_MODEL", "Backbone", "BackboneInfo", "ModelUnavailable",
    "Preprocess", "describe_model", "download_progress", "download_weights", "list_backbones",
    "load_backbone", "resolve_auto",
]

log = logging.getLogger(__name__)

# What "auto" gives when no stronger model's weights are cached: it ships with the package.
DEFAULT_MODEL = "mobilenetv2"
# What "auto" downloads, when it may, if no named model's weights are cached.
AUTO_DOWNLOAD = "dinov2-small"
# Set to 1 (CI, air-gapped machines): "auto" never touches the network. HF_HUB_OFFLINE=1
# does the same.
NO_DOWNLOAD_ENV = "LOOKALIKE_NO_DOWNLOAD"

# progress(done_bytes, total_bytes or None) while weights download
Progress = Callable[[int, "int | None"], None]
_progress: ContextVar[Progress | None] = ContextVar("lookalike_download_progress",
                                                    default=None)


# Preference order for "auto": the strongest general-purpose model first.
NAMED_MODELS: dict[str, str] = {
    "dinov2-small": "DINOv2 ViT-S/14 (timm), 384-d, best general-purpose similarity",
    "clip-vit-b-32": "CLIP ViT-B/32 (open_clip), 512-d, also embeds text",
    "convnext-tiny": "ConvNeXt-T (timm), 768-d, ImageNet features",
    "resnet50": "ResNet-50 (timm), 2048-d, ImageNet features",
    "inception-v3": "Inception-v3 (timm), 2048-d, ImageNet features",
}


# Where torch_hub's loaders keep each named model's pretrained weights under cache_dir():
# (cache subfolder, Hugging Face repo, file names tried, URL fallback kept under its base
# name). tests/embed/test_torch_hub.py checks this against timm's and open_clip's configs.
_TIMM_FILES = ("model.safetensors", "pytorch_model.bin")
_HUB_FILES: dict[str, tuple[str, str, tuple[str, ...], str | None]] = {
    "dinov2-small": ("timm", "timm/vit_small_patch14_dinov2.lvd142m", _TIMM_FILES,
                     "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/"
                     "dinov2_vits14_pretrain.pth"),
    "clip-vit-b-32": ("open_clip", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
                      ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"), None),
    "convnext-tiny": ("timm", "timm/convnext_tiny.fb_in22k_ft_in1k", _TIMM_FILES,
                      "https://dl.fbaipublicfiles.com/convnext/convnext_tiny_22k_1k_224.pth"),
    "resnet50": ("timm", "timm/resnet50.a1_in1k", _TIMM_FILES,
                 "https://github.com/rwightman/pytorch-image-models/releases/download/"
                 "v0.1-rsb-weights/resnet50_a1_0-14fe96d1.pth"),
    "inception-v3": ("timm", "timm/inception_v3.tv_in1k", _TIMM_FILES,
                     "https://download.pytorch.org/models/inception_v3_google-1a9a5a14.pth"),
}


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    description: str
    available: bool
    note: str
    auto: bool = False  # what ``auto`` picks for a new collection on this machine


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in modules)


def _torch_installed() -> bool:
    return _installed("torch", "timm")


def _libraries(name: str) -> tuple[str, ...]:
    """The packages named model ``name`` needs."""
    library = (_HUB_FILES[name][0] if name in _HUB_FILES else
               "open_clip" if name.startswith("open_clip:") else "timm")
    return ("torch", library)


def _weights_present(name: str) -> bool:
    """Whether named model ``name``'s weights are in the cache, judged by the files alone:
    no torch, timm or open_clip import (``lookalike models`` answers at once)."""
    if name not in _HUB_FILES:
        return False
    folder, repo, files, url = _HUB_FILES[name]
    cache = cache_dir() / folder
    snapshots = cache / ("models--" + repo.replace("/", "--")) / "snapshots"
    if snapshots.is_dir():
        for snapshot in snapshots.iterdir():
            if any((snapshot / file).is_file() for file in files):
                return True
    if not url:
        return False
    return (cache / os.path.basename(urlsplit(url).path)).is_file()


def load_backbone(
    spec: str,
    *,
    weights: str | Path | None = None,
    preprocess: Preprocess | dict[str, Any] | None = None,
    member_preprocess: dict[str, dict[str, Any]] | None = None,
    output: str | None = None,
    pretrained: bool = True,
    device: str | None = None,
    border_crop: bool = False,
    flip: bool = False,
) -> Backbone:
    """Load the backbone named by ``spec``; raise :class:`ModelUnavailable` with the way out.

    ``spec`` may be an ensemble ``a:0.6+b:0.4`` (see :mod:`lookalike.embed.ensemble`).
    ``border_crop`` removes uniform margins before the model sees an image; ``flip``
    averages each embedding with its mirror image's (test-time augmentation).
    ``member_preprocess`` maps a member spec (or ``*`` for every ONNX member) to its
    preprocessing, as ``--preprocess SPEC=JSON`` does; each member is then loaded as
    ``lookalike eval`` loads it.
    """
    from .ensemble import member_preprocess as preprocess_of
    from .ensemble import parse_ensemble

    members = (parse_ensemble(spec) if "+" in spec and not Path(spec.removeprefix("onnx:"))
               .exists() else [(spec, 1.0)])
    if member_preprocess:
        unknown = set(member_preprocess) - {"*"} - {name for name, _ in members}
        if unknown:
            raise ModelUnavailable(f"--preprocess names {', '.join(sorted(unknown))}, which "
                                   f"is not a model of {spec!r}")
    if len(members) > 1:
        from .ensemble import EnsembleBackbone

        if weights is not None or output is not None:
            raise ModelUnavailable(
                "--weights and --output apply to one model, not an ensemble; give each "
                "ONNX member a JSON sidecar instead")
        chosen = dict(member_preprocess or {})
        if preprocess is not None:
            chosen.setdefault("*", preprocess.to_dict() if isinstance(preprocess, Preprocess)
                              else dict(preprocess))
        ensemble = EnsembleBackbone.of([
            (load_backbone(name, preprocess=preprocess_of(name, chosen), pretrained=pretrained,
                           device=device), weight)
            for name, weight in members])
        return _augmented(ensemble, border_crop, flip)
    spec = members[0][0]
    if member_preprocess and preprocess is None:
        preprocess = preprocess_of(spec, member_preprocess)
    if border_crop or flip:
        inner = load_backbone(spec, weights=weights, preprocess=preprocess, output=output,
                              pretrained=pretrained, device=device)
        return _augmented(inner, border_crop, flip)
    if spec == "auto":
        spec = resolve_auto()
    if spec == "classic":
        return ClassicBackbone()
    if spec in BUNDLED_MODELS:
        if weights is not None or preprocess is not None or output is not None:
            raise ModelUnavailable(
                f"{spec!r} is a bundled model with fixed weights and settings; for other "
                "settings use --model onnx:PATH")
        return load_bundled(spec)
    if spec.startswith("onnx:"):
        from .onnx import load_onnx

        return load_onnx(spec[len("onnx:"):], preprocess=preprocess, output=output)
    if spec in NAMED_MODELS or spec.startswith(("timm:", "open_clip:")):
        if not _torch_installed():
            raise ModelUnavailable(
                f"model {spec!r} needs PyTorch: pip install 'lookalike[torch]' "
                "(or use mobilenetv2, bundled, or onnx:PATH or classic)"
            )
        from .torch_hub import load_torch_backbone

        return load_torch_backbone(spec, weights=weights, pretrained=pretrained, device=device)
    known = ", ".join([*BUNDLED_MODELS, "classic", "onnx:PATH", *NAMED_MODELS, "timm:NAME",
                       "open_clip:ARCH"])
    raise ModelUnavailable(f"unknown model {spec!r}; choose one of: {known}")


def _augmented(backbone: Backbone, border_crop: bool, flip: bool) -> Backbone:
    from .augment import AugmentedBackbone

    return AugmentedBackbone.wrap(backbone, border_crop=border_crop, flip=flip)


def resolve_auto(download: bool = True, progress: Progress | None = None) -> str:
    """What ``auto`` means for a new collection, in this order:

    1. the first named model (strongest first) whose weights are cached and whose
       libraries are installed;
    2. with ``download``, torch and timm installed, downloads allowed (neither
       ``LOOKALIKE_NO_DOWNLOAD=1`` nor ``HF_HUB_OFFLINE=1``) and the hub answering a
       2-second probe: :data:`AUTO_DOWNLOAD` (``dinov2-small``), downloaded now, with
       ``progress(done_bytes, total_bytes)`` (default: the one set by
       :func:`download_progress`);
    3. the bundled :data:`DEFAULT_MODEL`, with one warning line saying why when a
       download was tried and failed.

    Imports torch only when there are weights to use. (A collection that already has
    embeddings keeps its recorded model: see ``Collection.index``.)
    """
    for name in NAMED_MODELS:
        if _weights_present(name) and _installed(*_libraries(name)):
            from .torch_hub import is_cached  # the loaders' own check, which they will use

            if is_cached(name):
                return name
    if download and _downloads_allowed() and _installed(*_libraries(AUTO_DOWNLOAD),
                                                        "huggingface_hub"):
        from .torch_hub import fetch_for_auto

        why_not = fetch_for_auto(AUTO_DOWNLOAD, progress or _progress.get())
        if why_not is None:
            return AUTO_DOWNLOAD
        log.warning("%s: using the bundled %s (lookalike models --download %s when online)",
                    why_not, DEFAULT_MODEL, AUTO_DOWNLOAD)
    return DEFAULT_MODEL


def _downloads_allowed() -> bool:
    """Neither lookalike's opt-out nor the hub's offline mode is set."""
    def on(variable: str) -> bool:
        return os.environ.get(variable, "").strip().lower() not in {"", "0", "false", "no",
                                                                     "off"}

    return not any(on(variable) for variable in
                   (NO_DOWNLOAD_ENV, "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@contextmanager
def download_progress(progress: Progress | None) -> Iterator[None]:
    """Within this block, a download that ``auto`` starts reports to ``progress``
    (the command line's progress bar), wherever ``auto`` is resolved."""
    token = _progress.set(progress)
    try:
        yield
    finally:
        _progress.reset(token)


def download_weights(name: str, progress: Progress | None = None) -> Path:
    """Fetch named model ``name``'s pretrained weights into the cache (no model is built)
    and return the cached file; after this, ``auto`` and ``--model NAME`` use them
    offline. ``progress(done_bytes, total_bytes)`` follows the download."""
    if name in BUNDLED_MODELS or name == "classic":
        raise ModelUnavailable(f"{name} needs no download: it ships with lookalike")
    if name not in NAMED_MODELS and not name.startswith(("timm:", "open_clip:")):
        known = ", ".join([*NAMED_MODELS, "timm:NAME", "open_clip:ARCH/TAG"])
        raise ModelUnavailable(f"nothing to download for {name!r}; choose one of: {known}")
    missing = [module for module in (*_libraries(name), "huggingface_hub")
               if not _installed(module)]
    if missing:
        raise ModelUnavailable(f"model {name!r} needs PyTorch ({', '.join(missing)} missing): "
                               "pip install 'lookalike[torch]'")
    from .torch_hub import download_weights as fetch

    return fetch(name, progress)


def _auto_choice() -> str:
    """:func:`resolve_auto` by file presence alone (for listings: never imports torch)."""
    for name in NAMED_MODELS:
        if _weights_present(name) and _installed(*_libraries(name)):
            return name
    return DEFAULT_MODEL


def describe_model(spec: str) -> str:
    """One factual line naming the model a collection is being embedded with."""
    if spec in BUNDLED_MODELS:
        better = "use --model dinov2-small (downloads its weights once)" if _installed(
            *_libraries("dinov2-small")) else (
            "install torch (pip install 'lookalike[torch]') and use --model dinov2-small")
        return f"model: {spec} (bundled, offline); for better results {better}"
    if spec == "classic":
        return "model: classic (weight-free colour, layout and edge descriptor)"
    if spec in NAMED_MODELS:
        return f"model: {spec} ({NAMED_MODELS[spec]})"
    return f"model: {spec}"


def list_backbones() -> list[BackboneInfo]:
    """Every model lookalike knows and whether it works offline on this machine.

    Fast: cached weights are found by file presence, libraries with ``find_spec``.
    """
    auto = _auto_choice()
    onnx_ok = _installed("onnxruntime")
    infos = []
    for name, description in BUNDLED_MODELS.items():
        present = bundled_path(name).is_file()
        available = onnx_ok and present
        note = ("bundled, works offline" if available else
                "needs onnxruntime" if present else "model file missing: reinstall lookalike")
        infos.append(BackboneInfo(name, description, available, note, auto=name == auto))
    infos.append(BackboneInfo("classic", "weight-free colour + layout + edge descriptor", True,
                              "always available; only when asked for by name"))
    for name, description in NAMED_MODELS.items():
        missing = [module for module in _libraries(name) if not _installed(module)]
        if missing:
            infos.append(BackboneInfo(name, description, False,
                                      f"needs lookalike[torch] ({', '.join(missing)} missing)"))
            continue
        cached = _weights_present(name)
        note = ("weights cached" if cached else
                f"weights not cached: lookalike models --download {name}, or downloaded "
                "on first use, or --weights PATH")
        infos.append(BackboneInfo(name, description, cached, note, auto=name == auto))
    infos.append(BackboneInfo("onnx:PATH", "any ONNX image model (JSON sidecar for options)",
                              onnx_ok, "onnxruntime installed" if onnx_ok else "needs onnxruntime"))
    return infos
