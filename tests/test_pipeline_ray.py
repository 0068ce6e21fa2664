"""Indexing on a local Ray cluster gives the collection a local run gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lookalike import Collection
from lookalike.cli import app
from tests import bad_files
from tests.conftest import crop, scene

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # starts a local Ray cluster


@pytest.fixture(scope="module")
def cluster():
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 object_store_memory=256 * 2**20)
    except Exception as error:  # noqa: BLE001 - e.g. a sandbox without shared memory
        pytest.skip(f"cannot start a local Ray cluster here: {error}")
    yield
    ray.shutdown()


def make_folder(root: Path, count: int) -> Path:
    root.mkdir(parents=True)
    for seed in range(count):
        scene(seed, (160, 120)).save(root / f"img{seed:03d}.jpg", quality=90)
    bad_files.truncated_jpeg(root)
    return root


def same_collection(a: Collection, b: Collection) -> None:
    ids_a, vectors_a = a.vectors()
    ids_b, vectors_b = b.vectors()
    assert a.paths(ids_a) == b.paths(ids_b)
    np.testing.assert_allclose(vectors_a, vectors_b, atol=1e-6)
    assert a.info().skipped == b.info().skipped
    emb_a = (a.directory / "embeddings" / a.model.file).read_bytes()
    emb_b = (b.directory / "embeddings" / b.model.file).read_bytes()
    assert emb_a == emb_b  # same rows in the same order


def test_ray_index_equals_local_index(cluster, tmp_path: Path, monkeypatch) -> None:
    import lookalike.pipeline_ray as pipeline_ray

    monkeypatch.setattr(pipeline_ray, "BLOCK_FILES", 8)  # several blocks, two actors
    local = make_folder(tmp_path / "local", 30)
    distributed = tmp_path / "ray"
    shutil.copytree(local, distributed)
    Collection.index_folder(local, model="classic")
    _, report = Collection.index_folder(distributed, model="classic", ray="auto", workers=2)
    assert report.embed.embedded == 30
    assert [path for path, _ in report.embed.skipped] == ["truncated.jpg"]
    same_collection(Collection.open(local), Collection.open(distributed))


def test_ray_run_resumes_and_embeds_only_changes(cluster, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "photos", 10)
    Collection.index_folder(folder, model="classic")
    for seed in range(10, 14):
        scene(seed, (160, 120)).save(folder / f"img{seed:03d}.jpg", quality=90)
    (folder / "img000.jpg").unlink()
    result = CliRunner().invoke(app, ["index", str(folder), "--ray", "auto", "--json"])
    assert result.exit_code == 0, result.output
    assert '"embedded": 4' in result.stdout
    collection = Collection.open(folder)
    ids, _ = collection.vectors()
    assert sorted(collection.paths(ids)) == [f"img{s:03d}.jpg" for s in range(1, 14)]
    query = folder.parent / "query.jpg"  # a crop of an image the Ray actors embedded
    crop(scene(12, (160, 120))).save(query, quality=90)
    assert collection.search(query, k=1)[0].path == "img012.jpg"
