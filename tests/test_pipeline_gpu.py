"""The device-decode pipeline (nvJPEG on CUDA), run on the CPU: it must index a folder
like the standard pipeline, falling back to the CPU decoder file by file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.discover import discover
from lookalike.pipeline import embed_pending
from lookalike.store import Store
from tests import bad_files
from tests.conftest import scene

pytest.importorskip("torchvision")
pytest.importorskip("timm")

from lookalike.embed.torch_hub import load_torch_backbone  # noqa: E402
from lookalike.pipeline_gpu import embed_pending_on_device  # noqa: E402


@pytest.fixture(scope="module")
def backbone():
    return load_torch_backbone("timm:resnet10t", pretrained=False, device="cpu")


def mixed_folder(root: Path) -> Path:
    root.mkdir()
    for seed in range(9):
        scene(seed, (200 + 40 * seed, 180)).save(root / f"photo{seed}.jpg", quality=90)
    scene(20, (300, 200)).convert("L").save(root / "grey.jpg")
    scene(21, (240, 160)).save(root / "lossless.png")
    bad_files.truncated_jpeg(root)
    bad_files.cmyk_jpeg(root)
    bad_files.exif_rotated_jpeg(root)
    return root


def index(folder: Path, name: str, run) -> Store:
    store = Store.create(folder.parent / name, folder)
    store.sync_files(discover(folder))
    store.add_model("m", "timm:resnet10t", {}, {"name": "test"}, 512)
    report = run(store)
    store.report = report  # type: ignore[attr-defined]
    return store


def test_device_decoding_matches_the_standard_pipeline(backbone, tmp_path: Path,
                                                       monkeypatch) -> None:
    import lookalike.pipeline_gpu as pipeline_gpu

    on_device: list[int] = []
    decode = pipeline_gpu._decode_jpegs

    def counting(blobs, device):
        on_device.append(len(blobs))
        return decode(blobs, device)

    monkeypatch.setattr(pipeline_gpu, "_decode_jpegs", counting)
    folder = mixed_folder(tmp_path / "photos")
    assert backbone.dim == 512
    plain = index(folder, "plain", lambda s: embed_pending(s, "m", backbone, batch_size=4))
    device = index(folder, "device", lambda s: embed_pending_on_device(
        s, "m", backbone, batch_size=4))
    assert plain.report.skipped == device.report.skipped  # the truncated JPEG, same reason
    assert [p for p, _ in device.report.skipped] == ["truncated.jpg"]
    assert sum(on_device) == 10  # the 9 photos and the grey JPEG; not PNG/CMYK/rotated
    ids_a, rows_a = plain.live_rows("m")
    ids_b, rows_b = device.live_rows("m")
    assert np.array_equal(ids_a, ids_b) and len(ids_a) == 13
    a = np.asarray(plain.embeddings("m")[rows_a], dtype=np.float32)
    b = np.asarray(device.embeddings("m")[rows_b], dtype=np.float32)
    cosine = (a * b).sum(axis=1)
    assert cosine.min() > 0.99  # other JPEG decoder and resampler, same picture
    # each image's nearest other image is the same under both pipelines
    sim_a, sim_b = a @ a.T, b @ b.T
    np.fill_diagonal(sim_a, -1)
    np.fill_diagonal(sim_b, -1)
    assert (sim_a.argmax(1) == sim_b.argmax(1)).mean() >= 0.9
    for file_id in ids_a:  # sizes and formats recorded as the CPU decoder sees them
        left, right = plain.file(int(file_id)), device.file(int(file_id))
        assert (left.width, left.height, left.format, left.content_hash) == (
            right.width, right.height, right.format, right.content_hash)


def test_a_jpeg_the_device_decoder_rejects_falls_back(backbone, tmp_path: Path) -> None:
    from lookalike.pipeline_gpu import _decode_jpegs

    good = tmp_path / "good.jpg"
    scene(1).save(good)
    images = _decode_jpegs([good.read_bytes(), b"not a jpeg", good.read_bytes()], "cpu")
    assert images[1] is None  # the batch call failed; the others were decoded one by one
    assert all(tuple(images[n].shape) == (3, 240, 320) for n in (0, 2))


def test_a_jpeg_the_device_rejects_gets_the_cpu_decoders_verdict(backbone,
                                                                 tmp_path: Path) -> None:
    """A JPEG whose header passes (RGB, end marker present) goes to the device decoder; it
    rejects the file, and the CPU decoder's verdict is what the run reports, as in a
    standard run."""
    import io

    from lookalike.pipeline_gpu import _decode_jpegs, _read_header

    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(3):
        scene(seed).save(folder / f"photo{seed}.jpg", quality=90)
    buffer = io.BytesIO()
    scene(3).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    scan = data.index(b"\xff\xda") + 200  # a reserved marker inside the entropy-coded scan
    broken = data[:scan] + b"\xff\xc8\x00\x04\x00\x00" + data[scan:]
    (folder / "reserved-marker.jpg").write_bytes(broken)
    assert _decode_jpegs([broken], "cpu") == [None]  # the device path refuses it
    record = type("Record", (), {"id": 0, "path": "reserved-marker.jpg"})()
    assert _read_header(record, broken, 10**9).device_decodable  # so it gets that far

    plain = index(folder, "plain", lambda s: embed_pending(s, "m", backbone))
    device = index(folder, "device", lambda s: embed_pending_on_device(s, "m", backbone))
    assert [p for p, _ in device.report.skipped] == ["reserved-marker.jpg"]
    assert device.report.skipped == plain.report.skipped
    assert "corrupt" in device.report.skipped[0][1] and device.report.embedded == 3
    # and the catalogue says so: skipped with that reason, not left pending for next time
    assert device.files_to_embed("m") == []
    saved = device.file_by_path("reserved-marker.jpg")
    assert saved.status == "skipped" and saved.reason == device.report.skipped[0][1]
