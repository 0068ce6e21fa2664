"""Models shipped inside the package: real pretrained weights that work offline with
onnxruntime alone, so a fresh install has a useful default without a download.

``mobilenetv2``: MobileNetV2-1.0 int8 from the ONNX Model Zoo (``mobilenetv2-12-int8``,
Apache-2.0; ``models/mobilenetv2/NOTICE``) with its pooled 1280-d features exposed as the
``pool_features`` output. Its preprocessing and output come from the JSON sidecar beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lookalike.embed.base import ModelUnavailable

if TYPE_CHECKING:
    from lookalike.embed.onnx import OnnxBackbone

MODELS_DIR = Path(__file__).resolve().parent / "models"

BUNDLED_MODELS: dict[str, str] = {
    "mobilenetv2": "MobileNetV2-1.0 int8 (ONNX Model Zoo), 1280-d, ships with lookalike",
}
# What identity() records as the model (the file's path differs between installs, so the
# identity names the model and its sha256 instead).
_SOURCES: dict[str, str] = {
    "mobilenetv2": "onnx-model-zoo/mobilenetv2-12-int8 + pool_features output",
}


def bundled_path(name: str) -> Path:
    """The ONNX file of bundled model ``name`` (present in every install of the package)."""
    return MODELS_DIR / name / "model.onnx"


def load_bundled(name: str) -> OnnxBackbone:
    """Load bundled model ``name``: an ONNX backbone named ``name``, whose identity holds
    no install path, so collections stay valid when the package moves or is reinstalled."""
    from lookalike.embed.onnx import load_onnx

    path = bundled_path(name)
    if name not in BUNDLED_MODELS or not path.is_file():
        raise ModelUnavailable(f"no bundled model {name!r} (expected {path}); reinstall lookalike")
    backbone = load_onnx(path)
    details = {key: value for key, value in backbone.details.items() if key != "path"}
    backbone.name = name
    backbone.details = {"model": _SOURCES[name], "bundled": True, **details}
    return backbone
