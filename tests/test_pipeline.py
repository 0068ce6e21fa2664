"""The indexing pipeline: concurrent model calls commit in order and change nothing."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np

from lookalike.embed.classic import ClassicBackbone
from lookalike.pipeline import embed_pending
from lookalike.store import Store
from tests import bad_files
from tests.conftest import scene


@dataclasses.dataclass(eq=False)
class SlowFirstBatch(ClassicBackbone):
    """Classic, with ``concurrency`` calls allowed and the first call finishing last."""

    calls: int = 0
    overlapped: bool = False
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    _running: int = 0

    def embed(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
            self._running += 1
            self.overlapped |= self._running > 1
        time.sleep(0.3 if first else 0.01)
        try:
            return super().embed(batch)
        finally:
            with self._lock:
                self._running -= 1


def index(folder: Path, backbone: ClassicBackbone, name: str) -> tuple[Store, list[str]]:
    store = Store.create(folder.parent / name, folder)
    from lookalike.discover import discover

    store.sync_files(discover(folder))
    key = "classic-test"
    store.add_model(key, "classic", {}, backbone.identity(), backbone.dim)
    report = embed_pending(store, key, backbone, batch_size=4, workers=2)
    return store, [path for path, _ in report.skipped]


def test_concurrent_batches_commit_in_order_with_identical_results(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(22):
        scene(seed, (120, 90)).save(folder / f"img{seed:02d}.jpg")
    bad_files.truncated_jpeg(folder)
    plain, plain_skipped = index(folder, ClassicBackbone(), "plain")
    slow = SlowFirstBatch(concurrency=3)
    busy, busy_skipped = index(folder, slow, "busy")
    assert slow.overlapped and slow.calls == 6  # 22 images in batches of 4
    assert plain_skipped == busy_skipped == ["truncated.jpg"]
    ids_a, rows_a = plain.live_rows("classic-test")
    ids_b, rows_b = busy.live_rows("classic-test")
    assert np.array_equal(ids_a, ids_b) and np.array_equal(rows_a, rows_b)
    np.testing.assert_array_equal(plain.embeddings("classic-test")[rows_a],
                                  busy.embeddings("classic-test")[rows_b])
    assert np.array_equal(rows_b, np.arange(22))  # store rows follow file order


def test_embed_batches_yields_in_order_with_several_batches_in_flight() -> None:
    """Batches finish out of order on three model threads; the loop still hands back
    every batch in item order, and every failure once, with its reason."""
    from lookalike.decode import DecodeError
    from lookalike.pipeline import embed_batches

    def prepare(item: int) -> int:
        if item % 7 == 3:
            raise DecodeError(f"bad {item}")
        return item

    def embed(batch: list[int]) -> list[int]:
        time.sleep(0.02 * (batch[0] % 3 == 0))  # some batches take longer
        return [10 * item for item in batch]

    embedded_items: list[int] = []
    failed_items: list[int] = []
    for failed, batch, embedded in embed_batches(range(60), prepare, embed, batch_size=4,
                                                 concurrency=3, workers=4):
        assert [reason for _, reason in failed] == [f"bad {item}" for item, _ in failed]
        failed_items += [item for item, _ in failed]
        if embedded is not None:
            assert embedded == [10 * item for item in batch] and 0 < len(batch) <= 4
            embedded_items += batch
    assert embedded_items == [i for i in range(60) if i % 7 != 3]
    assert failed_items == [i for i in range(60) if i % 7 == 3]


def test_files_that_turned_hostile_after_discovery_are_skipped_and_the_rest_embedded(
        tmp_path: Path) -> None:
    """Between discover and decode a file became a FIFO, another junk behind a JPEG
    signature: each is skipped with its reason (no wait, no crawl), the others embedded."""
    import os

    from lookalike.discover import discover

    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(5):
        scene(seed, (120, 90)).save(folder / f"img{seed}.jpg")
    store = Store.create(tmp_path / "db", folder)
    store.sync_files(discover(folder))
    backbone = ClassicBackbone()
    store.add_model("classic-test", "classic", {}, backbone.identity(), backbone.dim)
    (folder / "img1.jpg").unlink()
    os.mkfifo(folder / "img1.jpg")
    (folder / "img3.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(3 << 20))
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(embed_pending(
        store, "classic-test", backbone, batch_size=2, workers=2)), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "embedding waits on the FIFO"
    report = outcome[0]
    assert report.embedded == 3
    assert dict(report.skipped) == {
        "img1.jpg": "a named pipe (FIFO), not a file: not read",
        "img3.jpg": "corrupt JPEG: over 1,048,576 bytes of junk before its image data (not an "
                    "image, or damaged): not decoded"}
    assert store.status_counts() == {"ok": 3, "skipped": 2}
