"""timm and open_clip backbones, with hub weights cached under ``cache_dir()``.

Weights come from, in order: an explicit ``weights`` file; a copy already in the cache
(loaded straight from disk, no network at all); a hub download into the cache. When none
works, one :class:`ModelUnavailable` names the ways out. :func:`download_weights` fetches
a model's weights into that same cache ahead of time, reporting progress. torch, timm and
open_clip are imported only inside functions, so the package imports without them.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from lookalike.embed.base import (
    Backbone,
    ModelUnavailable,
    Preprocess,
    cache_dir,
    error_summary,
    file_digest,
    l2_normalize,
    to_tensor,
)

TIMM_ALIASES: dict[str, str] = {
    "dinov2-small": "vit_small_patch14_dinov2.lvd142m",
    "resnet50": "resnet50.a1_in1k",
    "inception-v3": "inception_v3.tv_in1k",
    "convnext-tiny": "convnext_tiny.fb_in22k_ft_in1k",
}
OPEN_CLIP_ALIASES: dict[str, tuple[str, str]] = {
    "clip-vit-b-32": ("ViT-B-32", "laion2b_s34b_b79k"),
}
# DINOv2 is published at 518 px; 224 keeps it ~5x cheaper (timm resamples the position
# embeddings when loading).
_ALIAS_KWARGS: dict[str, dict[str, Any]] = {"dinov2-small": {"img_size": 224}}

# Hub file name -> the safetensors copy the libraries try first.
_SAFE_ALTERNATIVES = {
    "pytorch_model.bin": "model.safetensors",
    "open_clip_pytorch_model.bin": "open_clip_model.safetensors",
}
_PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
_PROBE_SECONDS = 5.0
# ``auto`` downloads only from a hub that answers at once: offline, it costs no more
_AUTO_PROBE_SECONDS = 2.0

# progress(done_bytes, total_bytes or None), as a download goes
DownloadProgress = Callable[[int, "int | None"], None]


def pick_device() -> str:
    """``cuda``, else ``mps``, else ``cpu``."""
    torch = _require("torch")
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


@dataclass(eq=False)
class TorchBackbone(Backbone):
    """A torch image model returning pooled features (timm with ``num_classes=0``)."""

    model: Any = field(default=None, repr=False)
    spec: Preprocess = field(default_factory=Preprocess)
    device: str = "cpu"
    # bf16 on a CPU with native bf16 units (AMX / AVX512-BF16): ~3x faster, cosine > .999
    # to fp32. Not part of identity(): collections stay portable across machines.
    cpu_bf16: bool = False

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return to_tensor(image, self.spec)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        torch = _require("torch")
        pixels = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        return self.embed_tensor(pixels.to(self.device))

    def embed_tensor(self, pixels: Any) -> np.ndarray:
        """Embed a preprocessed float batch already on the model's device (the GPU
        pipeline prepares its batches there)."""
        torch = _require("torch")
        if self._kind == "cuda":
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast(torch):
            features = self._encode_images(pixels)
        return l2_normalize(features.float().cpu().numpy())

    def _encode_images(self, pixels: Any) -> Any:
        return self.model(pixels)

    @property
    def _kind(self) -> str:
        return self.device.split(":")[0]

    def _autocast(self, torch: Any) -> Any:
        if self._kind == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if self._kind == "mps":
            return torch.autocast("mps", dtype=torch.float16)
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cpu_bf16)


def cpu_bf16_default() -> bool:
    """bf16 on CPU when the CPU computes it natively; ``LOOKALIKE_CPU_BF16=0|1`` overrides.

    Without AMX or AVX512-BF16, bf16 is emulated and slower than fp32, so it stays off.
    """
    cpu = _require("torch").cpu
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    native = any(getattr(cpu, check, lambda: False)() for check in checks)
    return _env_flag("LOOKALIKE_CPU_BF16", default=native)


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in {"0", "false", "no", "off", ""}


def _compiled(torch: Any, model: Any) -> Any:
    """``torch.compile`` of the image tower (``LOOKALIKE_TORCH_COMPILE=1``): worth it for
    long GPU runs; the first batch of each new size waits for compilation (seconds to a
    minute). The vectors match the eager model's; so does the identity."""
    if hasattr(model, "visual"):  # open_clip: encode_image runs model.visual
        model.visual = torch.compile(model.visual)
        return model
    return torch.compile(model)


@dataclass(eq=False)
class OpenClipBackbone(TorchBackbone):
    """A CLIP model: images and texts land in one space."""

    embeds_text: bool = True
    tokenizer: Any = field(default=None, repr=False)

    def _encode_images(self, pixels: Any) -> Any:
        return self.model.encode_image(pixels)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        torch = _require("torch")
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.inference_mode(), self._autocast(torch):
            features = self.model.encode_text(tokens)
        return l2_normalize(features.float().cpu().numpy())


def load_torch_backbone(
    name: str,
    weights: str | Path | None = None,
    pretrained: bool = True,
    device: str | None = None,
) -> TorchBackbone:
    """Load an alias, ``timm:NAME`` or ``open_clip:ARCH[/TAG]`` backbone.

    ``weights`` (a local file) wins over the hub; ``pretrained=False`` gives random weights
    (tests, smoke runs) and never touches the network. ``open_clip:ARCH`` without a tag
    takes the architecture's first published weights.
    """
    library, model_name, tag, kwargs = _parse(name)
    if weights is not None:
        weights = Path(weights).expanduser().resolve()
        if not weights.is_file():
            raise ModelUnavailable(f"weights file not found: {weights}")
    device = device or pick_device()
    if library == "timm":
        model, details = _create_timm(model_name, weights, pretrained, kwargs)
        spec = _timm_preprocess(model, kwargs.get("img_size"))
        cls: type[TorchBackbone] = TorchBackbone
        extra: dict[str, Any] = {}
    else:
        model, details, tokenizer = _create_open_clip(model_name, tag, weights, pretrained)
        spec = _open_clip_preprocess(model)
        cls, extra = OpenClipBackbone, {"tokenizer": tokenizer}

    torch = _require("torch")
    model = model.eval().to(device)
    kind = device.split(":")[0]
    if kind == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if kind == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    if _env_flag("LOOKALIKE_TORCH_COMPILE", default=False):
        model = _compiled(torch, model)
    backbone = cls(
        name=name,
        dim=0,
        decode_size=spec.decode_size,
        model=model,
        spec=spec,
        device=device,
        cpu_bf16=kind == "cpu" and cpu_bf16_default(),
        **extra,
    )
    zeros = np.zeros((1, 3, spec.size, spec.size), dtype=np.float32)
    backbone.dim = int(backbone.embed(zeros).shape[1])
    backbone.details = {**details, "preprocess": spec.to_dict()}
    return backbone


def is_cached(name: str) -> bool:
    """Whether ``name``'s pretrained weights are in the cache, so loading works offline."""
    try:
        return _cached_weights(name) is not None
    except ModelUnavailable:  # library not installed, or no such model
        return False


def _cached_weights(name: str) -> Path | None:
    """The cached file the loader would read for ``name``'s pretrained weights."""
    library, model_name, tag, _ = _parse(name)
    if library == "timm":
        return _timm_cached_file(_timm_cfg(model_name))
    open_clip = _require("open_clip")
    tag = _open_clip_tag(open_clip, model_name, tag)
    cfg = open_clip.get_pretrained_cfg(model_name, tag) if tag else {}
    return _open_clip_cached_file(cfg)


def download_weights(name: str, progress: DownloadProgress | None = None) -> Path:
    """Fetch ``name``'s pretrained weights into the cache the loaders read (so that
    :func:`is_cached` holds and loading then works offline); return the cached file.

    Hub files come through ``huggingface_hub`` exactly as the libraries fetch them, with
    ``progress(done_bytes, total_bytes)`` reported as they arrive (``None``: the hub
    client's own bars). Weights published only at a plain URL are fetched by loading the
    model once. Failures raise one :class:`ModelUnavailable` with the ways out.
    """
    found = _cached_weights(name)
    if found is not None:
        return found
    cache, repo, files, url, label = _hub_source(name)
    if repo is not None:
        with _hub_errors(label, _hf_endpoint()):
            _hf_fetch(repo, files, cache, progress)
    else:
        load_torch_backbone(name, device="cpu")  # the library's own download of ``url``
    found = _cached_weights(name)
    if found is None:
        raise ModelUnavailable(f"downloaded the weights of {label} from {repo or url}, but "
                               f"they are not where the loader looks ({cache})")
    return found


def fetch_for_auto(name: str, progress: DownloadProgress | None = None) -> str | None:
    """Download ``name``'s hub weights for ``auto`` if the hub answers at once: ``None``
    once they are cached, else why not, in a few words. Offline, this costs at most
    :data:`_AUTO_PROBE_SECONDS` (the probe), never the hub client's retries."""
    if _offline_requested():
        return "offline mode is set (HF_HUB_OFFLINE)"
    if not _reachable(_hf_endpoint(), _AUTO_PROBE_SECONDS):
        return "hub unreachable"
    try:
        cache, repo, files, _, _ = _hub_source(name)
        if repo is None:
            return f"{name} has no weights on the hub"
        _hf_fetch(repo, files, cache, progress)
    except Exception as exc:  # hub, HTTP and disk errors alike: auto falls back
        return f"could not download {name} ({error_summary(exc)})"
    return None if is_cached(name) else f"{name} downloaded, but not where the loader looks"


def _hub_source(name: str) -> tuple[Path, str | None, tuple[str, ...], str | None, str]:
    """Where ``name``'s pretrained weights come from: (cache folder, hub repo[@revision],
    hub file names to try in order, plain URL, label for messages)."""
    library, model_name, tag, _ = _parse(name)
    if library == "timm":
        cfg = _timm_cfg(model_name) or {}
        label = f"timm:{cfg.get('architecture', model_name)}" + (
            f".{cfg['tag']}" if cfg.get("tag") else "")
        if not (cfg.get("hf_hub_id") or cfg.get("url")):
            raise ModelUnavailable(f"timm publishes no weights for {model_name}")
        filename = cfg.get("hf_hub_filename") or "pytorch_model.bin"
        return (cache_dir() / "timm", cfg.get("hf_hub_id"), _hub_candidates(filename),
                cfg.get("url"), label)
    open_clip = _require("open_clip")
    tag = _open_clip_tag(open_clip, model_name, tag)
    if tag is None:
        raise ModelUnavailable(f"open_clip has no published weights for {model_name}")
    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    repo, filename = os.path.split(cfg["hf_hub"]) if cfg.get("hf_hub") else (None, "")
    return (cache_dir() / "open_clip", repo,
            _hub_candidates(filename or "open_clip_pytorch_model.bin"), cfg.get("url"),
            f"open_clip:{model_name}/{tag}")


# -- names ---------------------------------------------------------------------------------


def _parse(name: str) -> tuple[str, str, str | None, dict[str, Any]]:
    """``name`` -> (library, model name, open_clip tag, extra create kwargs)."""
    if name in TIMM_ALIASES:
        return "timm", TIMM_ALIASES[name], None, dict(_ALIAS_KWARGS.get(name, {}))
    if name in OPEN_CLIP_ALIASES:
        arch, tag = OPEN_CLIP_ALIASES[name]
        return "open_clip", arch, tag, {}
    library, _, rest = name.partition(":")
    if library == "timm" and rest:
        return "timm", rest, None, {}
    if library == "open_clip" and rest:
        arch, _, tag = rest.partition("/")
        return "open_clip", arch, tag or None, {}
    known = ", ".join([*TIMM_ALIASES, *OPEN_CLIP_ALIASES, "timm:NAME", "open_clip:ARCH[/TAG]"])
    raise ModelUnavailable(f"unknown torch model {name!r}; choose one of: {known}")


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModelUnavailable(
            f"{module} is not installed: pip install 'lookalike[torch]' (or use onnx:PATH "
            "or classic)"
        ) from None


# -- timm ----------------------------------------------------------------------------------


def _timm_cfg(model_name: str) -> dict[str, Any] | None:
    timm = _require("timm")
    if not timm.is_model(model_name):
        raise ModelUnavailable(f"timm has no model {model_name!r}")
    try:
        cfg = timm.models.get_pretrained_cfg(model_name)
    except RuntimeError as exc:  # a known architecture with an unknown tag
        raise ModelUnavailable(f"timm: {exc}") from None
    return cfg.to_dict() if cfg is not None else None


def _timm_cached_file(cfg: dict[str, Any] | None) -> Path | None:
    if not cfg:
        return None
    cache = cache_dir() / "timm"
    if cfg.get("hf_hub_id"):
        found = _hf_cached(
            cfg["hf_hub_id"], cfg.get("hf_hub_filename") or "pytorch_model.bin", cache
        )
        if found:
            return found
    return _url_cached(cfg.get("url"), cache)


def _create_timm(
    model_name: str, weights: Path | None, pretrained: bool, kwargs: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    timm = _require("timm")
    cfg = _timm_cfg(model_name)
    create = {"num_classes": 0, **kwargs}
    details: dict[str, Any] = {"library": "timm", "version": timm.__version__}
    tag = (cfg or {}).get("tag")
    full_name = f"{cfg['architecture']}.{tag}" if cfg and tag else model_name
    if weights is not None:
        model = _timm_from_file(timm, model_name, weights, create)
        details.update(
            model=model_name, pretrained="weights-file", weights_sha256=file_digest(weights)
        )
    elif not pretrained:
        model = timm.create_model(model_name, pretrained=False, **create)
        details.update(model=model_name, pretrained="random-init")
    elif not cfg or not (cfg.get("hf_hub_id") or cfg.get("url")):
        raise ModelUnavailable(f"timm publishes no weights for {model_name}; pass --weights PATH")
    else:
        cached = _timm_cached_file(cfg)
        if cached is not None:
            model = _timm_from_file(timm, model_name, cached, create)
        else:
            source = _hf_endpoint() if cfg.get("hf_hub_id") else cfg["url"]
            with _hub_errors(f"timm:{full_name}", source):
                model = timm.create_model(
                    model_name, pretrained=True, cache_dir=str(cache_dir() / "timm"), **create
                )
        details.update(model=full_name, pretrained=tag or "default")
    return model, details


def _timm_from_file(timm: Any, model_name: str, path: Path, create: dict[str, Any]) -> Any:
    with _missing_keys() as missing:
        try:
            model = timm.create_model(
                model_name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **create
            )
        except Exception as exc:
            raise ModelUnavailable(
                f"cannot load weights {path} into timm model {model_name}: {error_summary(exc)}"
            ) from None
    if missing:
        raise ModelUnavailable(
            f"weights {path} do not fit timm model {model_name}: {missing[0][:300]}"
        )
    return model


def _timm_preprocess(model: Any, img_size: int | None) -> Preprocess:
    timm_data = _require("timm.data")
    # the model's pretrained_cfg still names its published size when img_size overrides it
    args = {"input_size": (3, img_size, img_size)} if img_size else {}
    config = timm_data.resolve_data_config(args, model=model)
    size = int(config["input_size"][-1])
    crop_pct = float(config.get("crop_pct") or 1.0)
    return Preprocess(
        size=size,
        resize=round(size / crop_pct),
        crop="squash" if config.get("crop_mode") == "squash" else "center",
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=_interpolation(config.get("interpolation"), "bilinear"),
    )


@contextmanager
def _missing_keys() -> Iterator[list[str]]:
    """Collect timm's "Missing keys" report, which it only logs.

    With ``num_classes=0`` timm loads non-strictly, so a file whose keys do not match
    would otherwise leave the model silently random.
    """
    logger = logging.getLogger("timm.models._builder")
    found: list[str] = []
    passthrough = logger.getEffectiveLevel()

    class _Catch(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.getMessage().startswith("Missing keys"):
                found.append(record.getMessage())
            return record.levelno >= passthrough

    catch, level = _Catch(), logger.level
    logger.addFilter(catch)
    logger.setLevel(min(passthrough, logging.INFO))
    try:
        yield found
    finally:
        logger.removeFilter(catch)
        logger.setLevel(level)


# -- open_clip -----------------------------------------------------------------------------


def _open_clip_tag(open_clip: Any, arch: str, tag: str | None) -> str | None:
    if arch not in open_clip.list_models():
        raise ModelUnavailable(f"open_clip has no model {arch!r}")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag is not None and tag not in tags:
        raise ModelUnavailable(
            f"open_clip has no weights {tag!r} for {arch}; known: {', '.join(tags) or 'none'}"
        )
    return tag or (tags[0] if tags else None)


def _open_clip_cached_file(cfg: dict[str, Any]) -> Path | None:
    """The cached checkpoint of one pretrained tag (``cfg``: its open_clip config)."""
    cache = cache_dir() / "open_clip"
    if cfg.get("hf_hub"):
        repo_id, filename = os.path.split(cfg["hf_hub"])
        found = _hf_cached(repo_id, filename or "open_clip_pytorch_model.bin", cache)
        if found:
            return found
    return _url_cached(cfg.get("url"), cache)


def _create_open_clip(
    arch: str, tag: str | None, weights: Path | None, pretrained: bool
) -> tuple[Any, dict[str, Any], Any]:
    open_clip = _require("open_clip")
    tag = _open_clip_tag(open_clip, arch, tag)
    tag_cfg = open_clip.get_pretrained_cfg(arch, tag) if tag else {}
    # a checkpoint loaded from a file path must still get its tag's activation and
    # preprocessing, which open_clip only applies when it loads by tag
    from_file: dict[str, Any] = {
        "force_quick_gelu": bool(tag_cfg.get("quick_gelu", False)),
        "force_preprocess_cfg": {
            key: tag_cfg[key]
            for key in ("mean", "std", "interpolation", "resize_mode")
            if key in tag_cfg
        },
    }
    details: dict[str, Any] = {
        "library": "open_clip",
        "version": open_clip.__version__,
        "model": arch,
    }
    # pretrained_hf=False: never fetch separate base text-tower weights
    common = {"pretrained_hf": False}
    if weights is not None:
        model = _open_clip_from_file(open_clip, arch, weights, {**common, **from_file})
        details.update(pretrained="weights-file", weights_sha256=file_digest(weights))
    elif not pretrained:
        model = open_clip.create_model(arch, pretrained=None, **common)
        details.update(pretrained="random-init")
    elif tag is None:
        raise ModelUnavailable(
            f"open_clip has no published weights for {arch}; pass --weights PATH"
        )
    else:
        cached = _open_clip_cached_file(tag_cfg)
        if cached is not None:
            model = _open_clip_from_file(open_clip, arch, cached, {**common, **from_file})
        else:
            source = _hf_endpoint() if tag_cfg.get("hf_hub") else tag_cfg.get("url")
            with _hub_errors(f"open_clip:{arch}/{tag}", source):
                model = open_clip.create_model(
                    arch, pretrained=tag, cache_dir=str(cache_dir() / "open_clip"), **common
                )
        details.update(pretrained=tag)
    try:
        tokenizer = open_clip.get_tokenizer(arch, cache_dir=str(cache_dir() / "open_clip"))
    except Exception as exc:
        raise ModelUnavailable(
            f"cannot load the tokenizer for {arch}: {error_summary(exc)}"
        ) from None
    return model, details, tokenizer


def _open_clip_from_file(open_clip: Any, arch: str, path: Path, kwargs: dict[str, Any]) -> Any:
    try:
        return open_clip.create_model(arch, pretrained=str(path), **kwargs)
    except Exception as exc:
        raise ModelUnavailable(
            f"cannot load weights {path} into open_clip model {arch}: {error_summary(exc)}"
        ) from None


def _open_clip_preprocess(model: Any) -> Preprocess:
    cfg = model.visual.preprocess_cfg
    size = cfg["size"]
    size = int(size if isinstance(size, int) else size[-1])
    return Preprocess(
        size=size,
        resize=size,
        crop="squash" if cfg.get("resize_mode") == "squash" else "center",
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=_interpolation(cfg.get("interpolation"), "bicubic"),
    )


def _interpolation(name: str | None, fallback: str) -> str:
    """Library resampling names that :class:`Preprocess` lacks (e.g. "random") -> fallback."""
    return name if name in ("bilinear", "bicubic", "nearest") else fallback


# -- hub plumbing --------------------------------------------------------------------------


def _hf_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _hub_candidates(filename: str) -> tuple[str, ...]:
    """The hub file names the libraries try for ``filename``: its safetensors copy first."""
    safe = _SAFE_ALTERNATIVES.get(filename)
    if safe is None and filename.endswith((".bin", ".pth")):
        safe = filename[:-4] + ".safetensors"
    return (safe, filename) if safe and safe != filename else (filename,)


def _hf_cached(repo: str, filename: str, cache: Path) -> Path | None:
    """A weights file of ``repo`` already in the Hugging Face cache layout under ``cache``."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo_id, _, revision = repo.partition("@")
    for candidate in _hub_candidates(filename):
        found = try_to_load_from_cache(
            repo_id, candidate, cache_dir=str(cache), revision=revision or None
        )
        if isinstance(found, str):
            return Path(found)
    return None


def _hf_fetch(repo: str, files: tuple[str, ...], cache: Path,
              progress: DownloadProgress | None) -> Path:
    """Download the first of ``files`` that ``repo`` has into the hub cache layout."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    repo_id, _, revision = repo.partition("@")
    missing: Exception | None = None
    for filename in files:
        try:
            return Path(hf_hub_download(
                repo_id, filename, revision=revision or None, cache_dir=str(cache),
                endpoint=_hf_endpoint(),
                tqdm_class=None if progress is None else _reporting_bar(progress)))
        except RemoteEntryNotFoundError as exc:  # no safetensors copy: the next name
            missing = exc
    assert missing is not None
    raise missing


def _reporting_bar(progress: DownloadProgress) -> type:
    """A tqdm class for ``huggingface_hub`` that draws nothing and hands its byte counts
    to ``progress``. (Xet downloads open a second bar for network bytes, whose total is a
    guess: only the bytes-written bar reports.)"""
    from tqdm import tqdm

    class Reporting(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.update(file=io.StringIO(), disable=False)
            super().__init__(*args, **kwargs)
            self._reports = "downloading bytes" not in str(self.desc or "").lower()
            self._report()

        def display(self, *args: Any, **kwargs: Any) -> bool:
            return True

        def update(self, n: float | None = 1) -> bool | None:
            done = super().update(n)
            self._report()
            return done

        def _report(self) -> None:
            if self._reports:
                progress(int(self.n), int(self.total) if self.total else None)

    return Reporting


def _url_cached(url: str | None, cache: Path) -> Path | None:
    """A file downloaded from ``url`` by torch.hub / open_clip (kept under its base name)."""
    if not url:
        return None
    path = cache / os.path.basename(urlsplit(url).path)
    return path if path.is_file() else None


@contextmanager
def _hub_errors(label: str, source: str | None) -> Iterator[None]:
    """Turn every way a download can fail into one message listing the ways out.

    The hub clients retry unreachable hosts for most of a minute; a short connection probe
    first makes an offline machine fail in seconds instead.
    """
    where = cache_dir()

    def unavailable(reason: str) -> ModelUnavailable:
        return ModelUnavailable(
            f"cannot get the pretrained weights of {label}: {reason}. Ways out: connect to "
            f"the internet once so they download into {where}; pass --weights PATH to a "
            "local weights file; use an ONNX export with --model onnx:PATH; or use --model "
            "mobilenetv2 (bundled with lookalike) or --model classic (no weights needed)."
        )

    if _offline_requested():
        raise unavailable("offline mode is set (HF_HUB_OFFLINE) and they are not cached")
    if source and not _reachable(source):
        raise unavailable(f"they are not cached and {urlsplit(source).hostname} is unreachable")
    try:
        yield
    except ModelUnavailable:
        raise
    except Exception as exc:  # urllib, requests/httpx, hub and torch errors alike
        raise unavailable(f"the download failed ({error_summary(exc)})") from None


def _offline_requested() -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def _reachable(url: str, seconds: float = _PROBE_SECONDS) -> bool:
    """Can a TCP connection to ``url``'s host open within ``seconds``? Through a proxy
    (the ``*_proxy`` variables), can a HEAD request to ``url`` get any answer?"""
    parts = urlsplit(url)
    if not parts.hostname:
        return True
    port = parts.port or (80 if parts.scheme == "http" else 443)
    proxied = any(os.environ.get(var) for var in _PROXY_VARS) and not (
        urllib.request.proxy_bypass(parts.hostname))
    opened: list[bool] = []

    def probe() -> None:  # in a thread: name resolution itself has no timeout
        try:
            if proxied:  # only the proxy can tell: ask it for the page
                try:
                    urllib.request.urlopen(
                        urllib.request.Request(url, method="HEAD"), timeout=seconds).close()
                except urllib.error.HTTPError:
                    pass  # an answer all the same
            else:
                socket.create_connection((parts.hostname, port), timeout=seconds).close()
            opened.append(True)
        except (OSError, ValueError):
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(seconds)
    return bool(opened)
