"""Downloading weights for ``auto`` and ``lookalike models --download``, against a local
fake Hugging Face hub: the real hub client (``hf_hub_download``) fetches a random-init
timm DINOv2-small saved as safetensors by the test, over HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from typer.testing import CliRunner

from lookalike.cli import app
from lookalike.collection import Collection
from lookalike.embed import _weights_present, load_backbone, resolve_auto
from tests.conftest import crop, flip, scene

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
hub_constants = pytest.importorskip("huggingface_hub.constants")
safetensors_torch = pytest.importorskip("safetensors.torch")

from lookalike.embed.torch_hub import is_cached  # noqa: E402  (after the skips)

REPO = "timm/vit_small_patch14_dinov2.lvd142m"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FALLBACK_LINE = ("hub unreachable: using the bundled mobilenetv2 "
                 "(lookalike models --download dinov2-small when online)")
IMAGES = [scene(0), crop(scene(0)), flip(scene(1)), scene(2, (200, 320))]


@dataclass
class FakeHub:
    """What the fake hub serves and what it was asked."""

    url: str
    files: dict[tuple[str, str], bytes]
    requests: list[tuple[str, str]] = field(default_factory=list)
    connections: int = 0

    @property
    def file_requests(self) -> list[tuple[str, str]]:
        """The requests for files (the hub client also asks ``/api/...`` for itself)."""
        return [(method, path) for method, path in self.requests if "/resolve/" in path]


@contextmanager
def serve_hub(files: dict[tuple[str, str], bytes]) -> Iterator[FakeHub]:
    """Just enough of the hub's file protocol for ``hf_hub_download``: HEAD and GET of
    ``/{repo_id}/resolve/{revision}/{filename}`` with the ``ETag`` (the file's sha256, as
    the hub gives for LFS files), ``X-Repo-Commit`` and ``Content-Length`` headers, and a
    404 with ``X-Error-Code: EntryNotFound`` for a file the repository lacks."""
    hub = FakeHub("", files)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_HEAD(self) -> None:
            self.answer(with_body=False)

        def do_GET(self) -> None:
            self.answer(with_body=True)

        def answer(self, with_body: bool) -> None:
            hub.requests.append((self.command, self.path))
            repo, found, rest = unquote(urlsplit(self.path).path).lstrip("/").partition(
                "/resolve/")
            filename = rest.partition("/")[2]
            data = hub.files.get((repo, filename)) if found else None
            if data is None:
                self.send_response(404)
                known = any(repo == name for name, _ in hub.files)
                self.send_header("X-Error-Code", "EntryNotFound" if known else "RepoNotFound")
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Repo-Commit", COMMIT)
            self.end_headers()
            if with_body:
                self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def verify_request(self, request: Any, client_address: Any) -> bool:
            hub.connections += 1  # every TCP connection, the probe's included
            return True

    server = Server(("127.0.0.1", 0), Handler)
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()


def point_hub_client_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """huggingface_hub and lookalike's probe (``_hf_endpoint``) both read these."""
    monkeypatch.setattr(hub_constants, "ENDPOINT", url)
    monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="module")
def dinov2_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init DINOv2-small as the hub publishes it: timm's keys, 518-px position
    embeddings (the loader resamples them to 224), safetensors."""
    torch.manual_seed(14)
    model = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=False,
                              num_classes=0)
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    safetensors_torch.save_file(model.state_dict(), str(path))
    return path


@pytest.fixture(autouse=True)
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights cache, fp32 on CPU, no proxy, downloads allowed (conftest's
    suite-wide opt-out lifted: every hub here is local)."""
    home = tmp_path / "home"
    monkeypatch.setenv("LOOKALIKE_HOME", str(home))
    monkeypatch.setenv("LOOKALIKE_CPU_BF16", "0")
    for var in ("LOOKALIKE_NO_DOWNLOAD", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "https_proxy",
                "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def hub(dinov2_weights: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with serve_hub({(REPO, "model.safetensors"): dinov2_weights.read_bytes()}) as fake:
        point_hub_client_at(monkeypatch, fake.url)
        yield fake


@pytest.fixture
def closed_port(monkeypatch: pytest.MonkeyPatch) -> str:
    """A hub URL where nothing listens: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    point_hub_client_at(monkeypatch, url)
    return url


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(4):
        scene(seed).save(folder / f"scene{seed}.jpg", quality=90)
    return folder


def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def timm_features(weights: Path, batch: np.ndarray) -> np.ndarray:
    """What timm itself gives for ``weights``, loaded directly at 224 px."""
    model = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=True,
                              pretrained_cfg_overlay={"file": str(weights)}, num_classes=0,
                              img_size=224).eval()
    with torch.no_grad():
        out = model(torch.from_numpy(batch)).numpy()
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.mark.slow
def test_auto_downloads_dinov2_small_from_the_hub_then_works_offline(
    hub: FakeHub, dinov2_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: list[tuple[int, int | None]] = []
    assert not is_cached("dinov2-small")

    assert resolve_auto(progress=lambda done, total: reports.append((done, total))) == (
        "dinov2-small")

    size = dinov2_weights.stat().st_size
    path = f"/{REPO}/resolve/main/model.safetensors"
    assert hub.file_requests == [("HEAD", path), ("GET", path)]
    assert reports[-1] == (size, size) and len(reports) > 2  # a bar that moved to the end
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    assert is_cached("dinov2-small") and _weights_present("dinov2-small")

    no_network(monkeypatch)  # from here on, the cache alone
    assert resolve_auto() == "dinov2-small"
    backbone = load_backbone("auto", device="cpu")
    assert backbone.name == "dinov2-small" and backbone.dim == 384
    assert backbone.identity()["pretrained"] == "lvd142m"
    batch = np.stack([backbone.preprocess(image) for image in IMAGES])
    np.testing.assert_allclose(backbone.embed(batch), timm_features(dinov2_weights, batch),
                               atol=1e-5)
    assert len(hub.file_requests) == 2


@pytest.mark.slow
def test_index_downloads_with_a_progress_bar_and_records_dinov2(
    hub: FakeHub, photos: Path
) -> None:
    result = CliRunner().invoke(app, ["index", str(photos)])
    assert result.exit_code == 0, result.output
    assert "downloading dinov2-small" in result.stderr
    assert "model: dinov2-small" in result.stdout
    assert Collection.open(photos).model.spec == "dinov2-small"
    assert is_cached("dinov2-small")
    assert [method for method, _ in hub.file_requests] == ["HEAD", "GET"]


def test_unreachable_hub_falls_back_to_the_bundled_model_at_once(
    closed_port: str, photos: Path
) -> None:
    start = time.monotonic()
    result = CliRunner().invoke(app, ["index", str(photos)])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - start < 10  # embedding included; the fallback itself: below
    assert f"warning: {FALLBACK_LINE}" in " ".join(result.stderr.split())
    assert Collection.open(photos).model.spec == "mobilenetv2"
    assert not is_cached("dinov2-small")

    start = time.monotonic()
    assert resolve_auto() == "mobilenetv2"
    assert time.monotonic() - start < 1  # a refused connection answers at once


def test_a_hub_that_never_answers_costs_at_most_the_probe(
    monkeypatch: pytest.MonkeyPatch, closed_port: str
) -> None:
    """A black-holed network (or a resolver that hangs): the 2 s probe bounds the wait."""
    def hang(*args: object, **kwargs: object) -> None:
        time.sleep(8)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.monotonic()
    assert resolve_auto() == "mobilenetv2"
    assert time.monotonic() - start < 3


@pytest.mark.slow
def test_models_download_fetches_weights_with_a_progress_bar(
    hub: FakeHub, dinov2_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["models"])
    assert listed.exit_code == 0, listed.output
    assert "lookalike models --download NAME" in " ".join(listed.stdout.split())
    notes = {model["name"]: model["note"]
             for model in json.loads(runner.invoke(app, ["models", "--json"]).stdout)}
    assert "lookalike models --download dinov2-small" in notes["dinov2-small"]
    assert hub.connections == 0  # a listing never downloads

    result = runner.invoke(app, ["models", "--download", "dinov2-small"])
    assert result.exit_code == 0, result.output
    assert "downloading dinov2-small" in result.stderr
    assert "dinov2-small: weights cached at" in result.stdout
    assert is_cached("dinov2-small")
    assert len(hub.file_requests) == 2

    again = runner.invoke(app, ["models", "--download", "dinov2-small", "--json"])
    assert again.exit_code == 0, again.output
    assert len(hub.file_requests) == 2  # cached: nothing asked
    assert "dinov2-small" in again.stdout

    no_network(monkeypatch)
    models = runner.invoke(app, ["models", "--json"])
    assert '"auto": true' in models.stdout.split('"name": "dinov2-small"')[1].split("}")[0]
    backbone = load_backbone("dinov2-small", device="cpu")  # the normal loader, offline
    batch = np.stack([backbone.preprocess(image) for image in IMAGES[:2]])
    np.testing.assert_allclose(backbone.embed(batch), timm_features(dinov2_weights, batch),
                               atol=1e-5)


@pytest.mark.slow
def test_models_download_refuses_what_has_nothing_to_download(hub: FakeHub) -> None:
    runner = CliRunner()
    for name, message in (("mobilenetv2", "needs no download"),
                          ("dinov3-huge", "nothing to download")):
        result = runner.invoke(app, ["models", "--download", name])
        assert result.exit_code == 1 and message in result.stderr
    missing = runner.invoke(app, ["models", "--download", "timm:resnet10t.c3_in1k"])
    assert missing.exit_code == 1  # the fake hub has no such repository
    assert "cannot get the pretrained weights of timm:resnet10t.c3_in1k" in missing.stderr
    assert hub.file_requests


def test_models_download_offline_fails_fast_with_the_ways_out(closed_port: str) -> None:
    start = time.monotonic()
    result = CliRunner().invoke(app, ["models", "--download", "dinov2-small"])
    assert time.monotonic() - start < 5
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "unreachable" in message and "--weights" in message


@pytest.mark.parametrize("setting", ["LOOKALIKE_NO_DOWNLOAD", "HF_HUB_OFFLINE", "constant",
                                     "download=False"])
def test_opting_out_never_touches_the_network(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    download = True
    if setting == "constant":  # HF_HUB_OFFLINE as huggingface_hub read it at import
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    elif setting == "download=False":
        download = False
    else:
        monkeypatch.setenv(setting, "1")
    assert resolve_auto(download=download) == "mobilenetv2"
    assert hub.connections == 0 and hub.requests == []
    assert not is_cached("dinov2-small")
