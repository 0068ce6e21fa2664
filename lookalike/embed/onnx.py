"""``onnx:PATH`` — any ONNX image model through onnxruntime.

Preprocessing and the output tensor come from, in priority order: the explicit arguments,
a JSON sidecar beside the model (``model.onnx.json`` or ``model.json``)::

    {"preprocess": {"size": 224, "resize": 256, "mean": [...], "std": [...]}, "output": "pool"}

and defaults (input size from the model when static, ImageNet statistics, resize 256/224 of
the size, centre crop). Preprocess dicts from different sources merge field by field.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.embed.base import (
    Backbone,
    ModelUnavailable,
    Preprocess,
    error_summary,
    file_digest,
    l2_normalize,
    to_tensor,
)

_FEATURE_HINTS = ("pool", "feat", "embed")


@dataclass(eq=False)
class OnnxBackbone(Backbone):
    """An onnxruntime session with one NCHW (or NHWC) float image input.

    ``fixed_batch`` is the model's static batch size (often 1, e.g. TFLite conversions);
    ``None`` means the batch dimension is dynamic and a whole batch runs at once.
    """

    session: Any = field(default=None, repr=False)
    spec: Preprocess = field(default_factory=Preprocess)
    input_name: str = ""
    output_name: str = ""
    fixed_batch: int | None = None
    channels_last: bool = False
    input_dtype: Any = np.float32

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return to_tensor(image, self.spec)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, dtype=self.input_dtype)
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.channels_last:
            batch = np.ascontiguousarray(batch.transpose(0, 2, 3, 1))
        if self.fixed_batch is None:
            return l2_normalize(self._run(batch))
        step, count = self.fixed_batch, len(batch)
        outputs = []
        for start in range(0, count, step):
            chunk = batch[start : start + step]
            if len(chunk) < step:  # pad the tail chunk to the static batch size
                padding = np.zeros((step - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, padding])
            outputs.append(self._run(chunk))
        return l2_normalize(np.concatenate(outputs)[:count])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([self.output_name], {self.input_name: batch})
        return _pool(np.asarray(out, dtype=np.float32), self.channels_last)


def _pool(out: np.ndarray, channels_last: bool) -> np.ndarray:
    """Any feature output -> ``[N, D]``: singleton axes dropped, tokens / maps averaged."""
    if sum(size != 1 for size in out.shape[1:]) <= 1:  # [N, D], [N, D, 1, 1], [N, 1, 1, D]
        return out.reshape(len(out), -1)
    if out.ndim == 3:  # [N, tokens, D]
        return out.mean(axis=1)
    spatial = tuple(range(1, out.ndim - 1)) if channels_last else tuple(range(2, out.ndim))
    return out.mean(axis=spatial)


def load_onnx(
    path: str | Path,
    preprocess: Preprocess | dict[str, Any] | None = None,
    output: str | None = None,
    threads: int | None = None,
) -> OnnxBackbone:
    """Open an ONNX image model; see the module docstring for where settings come from."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ModelUnavailable(f"ONNX model not found: {path}")
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelUnavailable("onnxruntime is not installed: pip install onnxruntime") from None
    on_cpu = "CUDAExecutionProvider" not in ort.get_available_providers()
    if threads is None and on_cpu:
        # One thread per call and one call per core: independent calls never wait on each
        # other, while a multi-threaded call stalls whenever decoding preempts one of its
        # threads (flowers17 index, 2 cores: 355 images/s against 320).
        threads = 1
    session = _open_session(ort, path, threads)
    sidecar = _read_sidecar(path)

    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        shapes = ", ".join(f"{i.name}{list(i.shape)}" for i in inputs)
        raise ModelUnavailable(f"{path}: expected one 4-d image input, found {shapes}")
    image_input = inputs[0]
    shape = image_input.shape
    channels_last = shape[3] == 3 and shape[1] != 3
    spatial = shape[1] if channels_last else shape[2]

    spec = _resolve_preprocess(preprocess, sidecar.get("preprocess"), spatial)
    if isinstance(spatial, int) and spec.size != spatial:
        raise ModelUnavailable(
            f"{path} takes {spatial}x{spatial} images but the preprocessing makes "
            f"{spec.size}x{spec.size}; set size {spatial}"
        )
    output_name = _choose_output(session, output or sidecar.get("output"), path)
    fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    backbone = OnnxBackbone(
        name=f"onnx:{path}",
        dim=0,
        decode_size=spec.decode_size,
        session=session,
        spec=spec,
        input_name=image_input.name,
        output_name=output_name,
        fixed_batch=fixed_batch,
        channels_last=channels_last,
        input_dtype=np.float16 if image_input.type == "tensor(float16)" else np.float32,
        concurrency=max(1, (os.cpu_count() or 1) // threads) if on_cpu and threads else 1,
    )
    backbone.dim = _dry_run_dim(backbone)
    backbone.details = {
        "path": str(path),
        "sha256": file_digest(path),
        "preprocess": spec.to_dict(),
        "output": output_name,
        "input": image_input.name,
    }
    return backbone


def _open_session(ort: Any, path: Path, threads: int | None) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime's own exception types
        raise ModelUnavailable(f"{path} is not a valid ONNX model: {error_summary(exc)}") from None


def _read_sidecar(path: Path) -> dict[str, Any]:
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate.is_file():
            try:
                values = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ModelUnavailable(f"cannot read sidecar {candidate}: {exc}") from None
            if not isinstance(values, dict):
                raise ModelUnavailable(f"sidecar {candidate} must hold a JSON object")
            return values
    return {}


def _resolve_preprocess(
    explicit: Preprocess | dict[str, Any] | None,
    from_sidecar: dict[str, Any] | None,
    model_size: Any,
) -> Preprocess:
    if isinstance(explicit, Preprocess):
        return explicit
    values: dict[str, Any] = {}
    values.update(from_sidecar or {})
    values.update(explicit or {})
    size = values.setdefault("size", model_size if isinstance(model_size, int) else 224)
    values.setdefault("resize", round(size * 256 / 224))
    try:
        return Preprocess.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise ModelUnavailable(f"bad preprocessing settings {values}: {exc}") from None


def _choose_output(session: Any, wanted: str | None, path: Path) -> str:
    names = [o.name for o in session.get_outputs()]
    if wanted is not None:
        if wanted not in names:
            raise ModelUnavailable(f"{path} has no output {wanted!r}; outputs: {', '.join(names)}")
        return wanted
    if len(names) == 1:
        return names[0]
    hinted = [n for n in names if any(hint in n.lower() for hint in _FEATURE_HINTS)]
    return (hinted or names)[0]


def _dry_run_dim(backbone: OnnxBackbone) -> int:
    """The embedding width, from one run on zeros: declared output shapes are often
    symbolic, and this also proves the model runs with the chosen settings."""
    size = backbone.spec.size
    zeros = np.zeros((1, 3, size, size), dtype=np.float32)
    try:
        return int(backbone.embed(zeros).shape[1])
    except Exception as exc:  # onnxruntime's own exception types
        message = f"{backbone.name}: a trial run failed: {error_summary(exc)}"
        raise ModelUnavailable(message) from None
