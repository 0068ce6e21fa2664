"""Ensembles ``a:0.6+b:0.4``: parsing, weighted concatenation, and whole collections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lookalike import Collection, load_backbone
from lookalike.embed.base import ModelUnavailable, l2_normalize
from lookalike.embed.ensemble import EnsembleBackbone, parse_ensemble
from tests.conftest import crop, scene

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")
pytestmark = pytest.mark.slow  # exports ONNX models with torch

from tests.embed.test_onnx import BATCH, TinyNet, export  # noqa: E402


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64 x 64 conv net whose sidecar sets its own preprocessing (not the classic's)."""
    path = export(TinyNet(), tmp_path_factory.mktemp("tiny") / "model.onnx", ["features"],
                  BATCH)
    path.with_suffix(".json").write_text(json.dumps(
        {"preprocess": {"size": 64, "resize": 72, "mean": [0.5] * 3, "std": [0.25] * 3}}))
    return path


def test_parse_normalises_weights_and_keeps_onnx_paths() -> None:
    assert parse_ensemble("classic") == [("classic", 1.0)]
    assert parse_ensemble("onnx:/m/a.onnx:3+classic") == [("onnx:/m/a.onnx", 0.75),
                                                           ("classic", 0.25)]
    with pytest.raises(ValueError, match="positive"):
        parse_ensemble("classic:0+classic")


def test_ensemble_is_the_weighted_concatenation_of_its_members(tiny_onnx: Path) -> None:
    spec = f"onnx:{tiny_onnx}:0.25+classic:0.75"
    ensemble = load_backbone(spec)
    assert isinstance(ensemble, EnsembleBackbone)
    onnx, classic = load_backbone(f"onnx:{tiny_onnx}"), load_backbone("classic")
    assert ensemble.dim == onnx.dim + classic.dim
    images = [scene(seed, (90 + 10 * seed, 70)) for seed in range(4)]
    got = ensemble.embed_images(images)
    expected = l2_normalize(np.concatenate([
        onnx.embed_images(images) * np.sqrt(0.25), classic.embed_images(images) * np.sqrt(0.75)
    ], axis=1))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the inner product is the weighted sum of the members' cosines
    a, b = onnx.embed_images(images[:2]), classic.embed_images(images[:2])
    np.testing.assert_allclose(got[0] @ got[1], 0.25 * a[0] @ a[1] + 0.75 * b[0] @ b[1],
                               atol=1e-5)
    assert [w for _, w in ensemble.identity()["members"]] == [0.25, 0.75]
    with pytest.raises(ModelUnavailable, match="sidecar"):
        load_backbone(spec, output="features")


def test_collection_indexed_with_an_ensemble(tiny_onnx: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(6):
        scene(seed).save(folder / f"s{seed}.jpg")
    spec = f"onnx:{tiny_onnx}+classic"
    collection, report = Collection.index_folder(folder, model=spec)
    assert report.embed.embedded == 6 and collection.model.spec == spec
    query = tmp_path / "q.jpg"
    crop(scene(3), 0.9).save(query)
    assert Collection.open(folder).search(query, k=1)[0].path == "s3.jpg"


def test_index_preprocess_per_member_embeds_as_eval_does(tiny_onnx: Path,
                                                          tmp_path: Path) -> None:
    """Issue #16: ``index --preprocess SPEC=JSON`` gives the ensemble member the
    preprocessing eval gives it, records it, and queries reload it."""
    from typer.testing import CliRunner

    from lookalike.cli import app
    from lookalike.cli.common import preprocess_options
    from lookalike.embed.ensemble import concatenate
    from lookalike.eval import parse_configuration
    from lookalike.eval.cache import embed_files

    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(5):
        scene(seed, (90 + 7 * seed, 70)).save(folder / f"s{seed}.png")
    member = f"onnx:{tiny_onnx}"
    spec = f"classic+{member}:0.6"
    own = {"size": 64, "resize": 80, "mean": [0.4] * 3, "std": [0.3] * 3}
    values = [f"{member}={json.dumps(own)}"]
    result = CliRunner().invoke(app, ["index", str(folder), "--model", spec,
                                      "--preprocess", *values], catch_exceptions=False)
    assert result.exit_code == 0, result.output

    collection = Collection.open(folder)
    record = collection.require_model()
    onnx_identity = record.identity["members"][1][0]
    assert onnx_identity["preprocess"]["resize"] == 80
    assert onnx_identity["preprocess"]["mean"] == pytest.approx([0.4] * 3)
    file_ids, stored = collection.vectors(raw=True)
    paths = collection.paths(file_ids)

    configuration = parse_configuration(spec, preprocess_options(values))
    parts = [embed_files(model.load(), folder, paths, None)[0]
             for model, _ in configuration.members]
    expected = concatenate(parts, [weight for _, weight in configuration.members])
    np.testing.assert_allclose(stored, expected, atol=2e-3)  # stored as float16
    # the member's own preprocessing made a difference (the sidecar's gives other vectors)
    sidecar = embed_files(load_backbone(member), folder, paths, None)[0]
    assert np.abs(concatenate([parts[0], sidecar], [0.4, 0.6]) - stored).max() > 1e-2
    reopened = Collection.open(folder)
    assert reopened.backbone.identity()["members"][1][0]["preprocess"]["resize"] == 80
    query = embed_files(reopened.backbone, folder, ["s2.png"], None)[0][0]
    np.testing.assert_allclose(query, stored[paths.index("s2.png")], atol=2e-3)
