"""What :meth:`lookalike.Collection.index` decides and runs before the vector index:
the collection directory of a folder (opened or created), which model embeds it (the
recorded one, a new one on ``--rebuild``, or a refusal to mix models), starting a new
model, and the embedding run (in this process, with JPEGs decoded on the GPU, or on Ray).

Functions of plain inputs: the store, the model record, the backbone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .discover import Root, is_remote
from .embed import Backbone, Preprocess, resolve_auto
from .pipeline import EmbedReport, Progress, embed_pending
from .pipeline_gpu import embed_pending_on_device, gpu_decode_available
from .records import ModelMismatch
from .store import CatalogueDamaged, ModelRecord, Store, StoreError

if TYPE_CHECKING:
    from .embed.torch_hub import TorchBackbone

DEFAULT_DIRNAME = ".lookalike"  # the collection directory inside an image folder
_AUGMENTATIONS = (("border crop", "border-crop", "border_crop"), ("flip TTA", "flip", "flip"))


def locate(path: str | os.PathLike[str]) -> Path:
    """A collection directory, given it or the image folder that holds ``.lookalike``."""
    path = Path(path).expanduser().absolute()
    if (path / Store.CATALOGUE).is_file():
        return path
    if (path / DEFAULT_DIRNAME / Store.CATALOGUE).is_file():
        return path / DEFAULT_DIRNAME
    raise StoreError(f"no collection at {path} (create one with: lookalike index FOLDER)")


def store_for_folder(root: Root, db: str | os.PathLike[str] | None, rebuild: bool) -> Store:
    """The writable store of the collection that indexes ``root``: ``db``, or the
    ``.lookalike`` inside a local ``root``; opened, or created when there is none.
    ``rebuild`` starts again from whatever is left, a damaged catalogue too."""
    if is_remote(root) and db is None:
        raise StoreError(f"{root} is on object storage: pass --db DIR for the collection "
                         "(its catalogue and embeddings are local files)")
    if not _is_folder(root):
        raise StoreError(f"{root} is not a folder")
    # a remote root has its db given (above): without one, root is a local Path
    directory = Path(db).expanduser().absolute() if db else cast(Path, root) / DEFAULT_DIRNAME
    if (directory / Store.CATALOGUE).is_file() and rebuild:
        try:
            Store.open(directory).close()
        except CatalogueDamaged:
            Store.set_aside_damaged(directory)
    if not (directory / Store.CATALOGUE).is_file():
        return Store.create(directory, root)
    store = Store.open(directory, writable=True)
    if str(store.root) != str(root if is_remote(root) else root.resolve()):
        store.close()
        raise StoreError(f"the collection at {directory} indexes {store.root}, not {root}")
    return store


def _is_folder(root: Root) -> bool:
    """``root.is_dir()``, with a remote store's own errors (no such bucket, no credentials)
    turned into a :class:`StoreError` that says which."""
    try:
        return root.is_dir()
    except OSError:
        return False
    except ImportError as error:  # the fsspec backend of this protocol is not installed
        raise StoreError(f"{root}: {error} (the fsspec backends: pip install s3fs, gcsfs "
                         "or adlfs)") from None
    except Exception as error:  # botocore, gcsfs... errors are not OSErrors
        raise StoreError(f"cannot reach {root}: {error}") from None


def model_key(identity: dict[str, Any]) -> str:
    """A short, file-name-safe key for the model that produced a set of embeddings."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(identity.get("name", "model")).lower()).strip("-")
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{slug[-40:]}-{digest}"


def load_options(
    weights: str | os.PathLike[str] | None,
    preprocess: Preprocess | dict[str, Any] | None,
    output: str | None,
    pretrained: bool,
    border_crop: bool = False,
    flip: bool = False,
    member_preprocess: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The backbone options worth recording so that queries reload the same model."""
    options: dict[str, Any] = {}
    if weights is not None:
        options["weights"] = str(Path(weights).expanduser().absolute())
    if preprocess is not None:
        options["preprocess"] = (
            preprocess.to_dict() if isinstance(preprocess, Preprocess) else dict(preprocess)
        )
    if output is not None:
        options["output"] = output
    if not pretrained:
        options["pretrained"] = False
    if border_crop:
        options["border_crop"] = True
    if flip:
        options["flip"] = True
    if member_preprocess:  # --preprocess SPEC=JSON: per ensemble member, as eval does
        options["member_preprocess"] = {spec: dict(value)
                                        for spec, value in member_preprocess.items()}
    return options


def augment_text(options: dict[str, Any]) -> str:
    """The test-time augmentations recorded in a model's options, in words."""
    chosen = [text for text, _, key in _AUGMENTATIONS if options.get(key)]
    return ", ".join(chosen) or "no augmentation"


def model_to_start(record: ModelRecord | None, model: str | None, *, rebuild: bool,
                   border_crop: bool, flip: bool) -> str | None:
    """The model spec to embed the collection with from scratch, or None to keep the
    recorded ``record``. Models never change silently: indexing with another model (or
    other augmentations) than the recorded one raises :class:`ModelMismatch` unless
    ``rebuild``, and a rebuild keeps the recorded model unless one is named."""
    wanted = {"border_crop": border_crop, "flip": flip}
    augment_changed = record is not None and (border_crop or flip) and any(
        on != record.options.get(key, False) for key, on in wanted.items())
    if not (record is None or rebuild or augment_changed
            or model not in (None, "auto", record.spec)):
        return None
    if record is not None and not rebuild:
        named = record.spec if model in (None, "auto") else model
        named += "".join(f" +{flag}" for _, flag, key in _AUGMENTATIONS if wanted[key])
        raise ModelMismatch(
            f"this collection holds embeddings from {record.spec!r} "
            f"({augment_text(record.options)}); indexing it with {named!r} would "
            f"mix models. Use --rebuild to re-embed everything with {named!r}, or "
            "--db DIR for a separate collection."
        )
    if model not in (None, "auto"):
        return model
    return record.spec if record is not None else resolve_auto()


def start_model(store: Store, backbone: Backbone, spec: str,
                options: dict[str, Any]) -> ModelRecord:
    """Record ``backbone`` as the collection's one model, with no embeddings yet: every
    other model and its embeddings file are dropped."""
    identity = backbone.identity()
    for old in store.models():
        store.drop_model(old.key)
        store.delete_embeddings_file(old.file)
    key = model_key(identity)
    record = store.add_model(key, spec, options, identity, backbone.dim)
    store.set_embeds_text(key, backbone.embeds_text)
    store.set_current_model(key)
    return record


def embed_files(
    store: Store, key: str, backbone: Backbone, *, ray: str | None = None,
    device_decode: bool | None = None, workers: int | None = None,
    batch_size: int | None = None, progress: Progress | None = None,
) -> EmbedReport:
    """Embed every catalogue file model ``key`` has no embedding of: on a Ray cluster
    (``ray``: its address), with JPEGs decoded on the model's device (``device_decode``;
    by default whenever the model runs on CUDA), or in this process."""
    if ray is not None:
        from .pipeline_ray import embed_pending_ray

        return embed_pending_ray(store, key, address=ray, workers=workers, progress=progress)
    if device_decode or (device_decode is None and gpu_decode_available(backbone)):
        return embed_pending_on_device(store, key, cast("TorchBackbone", backbone),
                                       workers=workers, batch_size=batch_size,
                                       progress=progress)
    return embed_pending(store, key, backbone, workers=workers, batch_size=batch_size,
                         progress=progress)


def check_identity(record: ModelRecord, backbone: Backbone) -> None:
    """Refuse a reloaded model that no longer matches the one that built the collection."""
    if json.loads(json.dumps(backbone.identity())) != record.identity:
        raise ModelMismatch(
            f"model {record.spec!r} no longer matches the one that built this "
            "collection (weights or preprocessing changed); re-index with --rebuild"
        )
