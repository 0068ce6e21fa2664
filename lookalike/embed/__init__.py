"""Embed: the backbone registry. A model spec string -> a loaded :class:`Backbone`.

Specs:
  ``classic``                      weight-free colour/layout/edge descriptor
  ``onnx:PATH``                    any ONNX image model (sidecar JSON or explicit options)
  ``dinov2-small`` ``clip-vit-b-32`` ``resnet50`` ``inception-v3`` ``convnext-tiny``
  ``timm:NAME`` ``open_clip:ARCH[/TAG]``  any timm / open_clip model
  ``auto``                         the best model usable offline here, else ``classic``
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import Backbone, ModelUnavailable, Preprocess
from .classic import ClassicBackbone

__all__ = [
    "Backbone", "BackboneInfo", "ModelUnavailable", "Preprocess", "list_backbones",
    "load_backbone", "resolve_auto",
]

# Preference order for "auto": the strongest general-purpose model first.
NAMED_MODELS: dict[str, str] = {
    "dinov2-small": "DINOv2 ViT-S/14 (timm), 384-d, best general-purpose similarity",
    "clip-vit-b-32": "CLIP ViT-B/32 (open_clip), 512-d, also embeds text",
    "convnext-tiny": "ConvNeXt-T (timm), 768-d, seed 004",
    "resnet50": "ResNet-50 (timm), 2048-d, seeds 001/003/004",
    "inception-v3": "Inception-v3 (timm), 2048-d, seed 002",
}


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    description: str
    available: bool
    note: str


def _torch_installed() -> bool:
    return all(importlib.util.find_spec(name) for name in ("torch", "timm"))


def load_backbone(
    spec: str,
    *,
    weights: str | Path | None = None,
    preprocess: Preprocess | dict[str, Any] | None = None,
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
    """
    if "+" in spec and not Path(spec.removeprefix("onnx:")).exists():
        from .ensemble import EnsembleBackbone, parse_ensemble

        members = parse_ensemble(spec)
        if len(members) > 1:
            if weights is not None or preprocess is not None or output is not None:
                raise ModelUnavailable(
                    "--weights, --preprocess and --output apply to one model, not an "
                    "ensemble; give each ONNX member a JSON sidecar instead")
            ensemble = EnsembleBackbone.of([
                (load_backbone(name, pretrained=pretrained, device=device), weight)
                for name, weight in members])
            return _augmented(ensemble, border_crop, flip)
        spec = members[0][0]
    if border_crop or flip:
        inner = load_backbone(spec, weights=weights, preprocess=preprocess, output=output,
                              pretrained=pretrained, device=device)
        return _augmented(inner, border_crop, flip)
    if spec == "auto":
        spec = resolve_auto()
    if spec == "classic":
        return ClassicBackbone()
    if spec.startswith("onnx:"):
        from .onnx import load_onnx

        return load_onnx(spec[len("onnx:"):], preprocess=preprocess, output=output)
    if spec in NAMED_MODELS or spec.startswith(("timm:", "open_clip:")):
        if not _torch_installed():
            raise ModelUnavailable(
                f"model {spec!r} needs PyTorch: pip install 'lookalike[torch]' "
                "(or use onnx:PATH or classic)"
            )
        from .torch_hub import load_torch_backbone

        return load_torch_backbone(spec, weights=weights, pretrained=pretrained, device=device)
    known = ", ".join(["classic", "onnx:PATH", *NAMED_MODELS, "timm:NAME", "open_clip:ARCH"])
    raise ModelUnavailable(f"unknown model {spec!r}; choose one of: {known}")


def _augmented(backbone: Backbone, border_crop: bool, flip: bool) -> Backbone:
    from .augment import AugmentedBackbone

    return AugmentedBackbone.wrap(backbone, border_crop=border_crop, flip=flip)


def resolve_auto() -> str:
    """The first named model whose weights are already cached, else ``classic``."""
    if _torch_installed():
        from .torch_hub import is_cached

        for name in NAMED_MODELS:
            if is_cached(name):
                return name
    return "classic"


def list_backbones() -> list[BackboneInfo]:
    """Every model lookalike knows and whether it works offline on this machine."""
    infos = [BackboneInfo("classic", "weight-free colour + layout + edge descriptor", True,
                          "always available")]
    torch_ok = _torch_installed()
    for name, description in NAMED_MODELS.items():
        if not torch_ok:
            infos.append(BackboneInfo(name, description, False, "needs lookalike[torch]"))
            continue
        from .torch_hub import is_cached

        cached = is_cached(name)
        note = "weights cached" if cached else "weights not cached: needs a download or --weights"
        infos.append(BackboneInfo(name, description, cached, note))
    onnx_ok = importlib.util.find_spec("onnxruntime") is not None
    infos.append(BackboneInfo("onnx:PATH", "any ONNX image model (JSON sidecar for options)",
                              onnx_ok, "onnxruntime installed" if onnx_ok else "needs onnxruntime"))
    return infos
