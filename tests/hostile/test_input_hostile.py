"""Hostile input (issue #13): bad input gets a clear message and the run goes on; never a
crash, never a silent drop, and nothing a user owns is lost.

Each test builds its own hostile tree, runs the real command and checks what a user
would: the other images are indexed, the message names the file and says what to do, no
file of theirs changed, and the run ends.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lookalike.cli import app
from tests.conftest import scene
from tests.hostile.trees import fingerprint

REPO = Path(__file__).resolve().parents[2]
OWN = (".lookalike",)  # lookalike's own output inside the tree
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def photos(folder: Path, count: int = 3, sub: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        scene(seed).save(folder / f"scene{seed}.jpg", quality=90)
    if sub:
        (folder / "sub").mkdir()
        for seed in range(count, count + sub):
            scene(seed).save(folder / "sub" / f"scene{seed}.jpg", quality=90)
    return folder


def info(folder: Path) -> dict:
    result = invoke("info", "--db", folder / ".lookalike", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def lookalike(*args: object, timeout: float = 120, **options) -> subprocess.CompletedProcess:
    """The installed command in a child process; a hang fails the test instead of the suite."""
    return subprocess.run([sys.executable, "-m", "lookalike.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, "COLUMNS": "200"}, **options)


def run_script(script: str, *args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, "COLUMNS": "200"})


# -- 1. a file name that is not UTF-8 ----------------------------------------------------------
def _bytes_name(folder: Path, name: bytes, content: bytes) -> None:
    try:
        descriptor = os.open(os.fsencode(folder) + b"/" + name, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as error:  # macOS and some filesystems refuse such names outright
        pytest.skip(f"this filesystem refuses a non-UTF-8 name: {error}")
    os.write(descriptor, content)
    os.close(descriptor)


def test_non_utf8_name_is_skipped_once_with_a_reason_and_the_rest_indexed(tmp_path: Path
                                                                          ) -> None:
    folder = photos(tmp_path / "photos", 3)
    image = (folder / "scene0.jpg").read_bytes()
    _bytes_name(folder, b"caf\xe9.jpg", image)
    os.mkdir(os.fsencode(folder) + b"/dossi\xe9r")
    _bytes_name(folder, b"dossi\xe9r/inside.jpg", (folder / "scene1.jpg").read_bytes())
    before = fingerprint(folder, skip=OWN)

    result = invoke("index", folder, "--model", "classic")
    assert result.exit_code == 0, result.output
    assert "3 new" not in result.output  # the two skipped files are catalogued too
    assert "caf\\xe9.jpg" in result.output and "rename it" in result.output
    assert "dossi\\xe9r/inside.jpg" in result.output

    details = info(folder)
    assert details["counts"] == {"ok": 3, "skipped": 2}
    assert dict(details["skipped"]) == {
        "caf\\xe9.jpg": "file name is not valid UTF-8: rename it",
        "dossi\\xe9r/inside.jpg": "a folder name in its path is not valid UTF-8: rename the folder",
    }
    text = invoke("info", "--db", folder / ".lookalike")
    assert text.exit_code == 0 and "caf\\xe9.jpg" in text.output

    again = invoke("index", folder, "--model", "classic")  # unchanged: not reported again
    assert again.exit_code == 0, again.output
    assert "0 new, 0 changed, 0 removed, 5 unchanged" in again.output
    assert "caf\\xe9.jpg" not in again.output
    assert fingerprint(folder, skip=OWN) == before


# -- 3. a FIFO named like an image -------------------------------------------------------------
def test_fifo_named_like_an_image_is_reported_and_never_opened(tmp_path: Path) -> None:
    folder = photos(tmp_path / "photos", 3)
    (folder / "pipes").mkdir()
    os.mkfifo(folder / "pipes" / "x.jpg")
    before = fingerprint(folder, skip=(*OWN, "pipes"))  # reading a FIFO would wait forever
    result = lookalike("index", folder, "--model", "classic", "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["embed"]["embedded"] == 3
    assert report["skipped"] == [["pipes/x.jpg", "a named pipe (FIFO), not a file: not read"]]
    assert stat.S_ISFIFO((folder / "pipes" / "x.jpg").stat().st_mode)
    assert fingerprint(folder, skip=(*OWN, "pipes")) == before


def test_file_swapped_for_a_fifo_mid_run_does_not_hang_the_index(tmp_path: Path) -> None:
    folder = photos(tmp_path / "photos", 3)
    (folder / "pipes").mkdir()
    scene(7).save(folder / "pipes" / "swap.jpg")
    before = fingerprint(folder, skip=(*OWN, "pipes"))
    # between discover (it is a file) and decode (a FIFO now): another process swapped it
    script = """
        import os, sys
        from pathlib import Path
        import lookalike.collection as collection
        found = collection.discover

        def then_swap(root, *args, **kwargs):
            yield from found(root, *args, **kwargs)
            swapped = Path(root) / "pipes" / "swap.jpg"
            swapped.unlink()
            os.mkfifo(swapped)

        collection.discover = then_swap
        from lookalike.cli import app
        app(["index", sys.argv[1], "--model", "classic", "--json"])
    """
    result = run_script(script, folder, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["embed"]["embedded"] == 3
    assert report["skipped"] == [["pipes/swap.jpg", "a named pipe (FIFO), not a file: not read"]]
    assert fingerprint(folder, skip=(*OWN, "pipes")) == before


# -- 4. a huge junk file behind a JPEG signature ------------------------------------------------
def test_huge_junk_jpeg_is_rejected_cheaply(tmp_path: Path) -> None:
    folder = photos(tmp_path / "photos", 3)
    (folder / "big").mkdir()
    junk = folder / "big" / "junk.jpg"
    with open(junk, "wb") as handle:  # a JPEG signature, then 1 GiB of zeros (sparse)
        handle.write(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        handle.truncate(1 << 30)
    before = fingerprint(folder, skip=(*OWN, "big")), junk.stat()
    script = """
        import resource, sys
        from lookalike.cli import app
        try:
            app(["index", sys.argv[1], "--model", "classic", "--json"])
        finally:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
            sys.stderr.write(f"peak-rss-kib {peak}\\n")
    """
    result = run_script(script, folder, timeout=120)  # before the fix: 65 s and 1.1 GB
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["embed"]["embedded"] == 3
    assert [path for path, _ in report["skipped"]] == ["big/junk.jpg"]
    assert "junk before its image data" in report["skipped"][0][1]
    peak_kib = int(result.stderr.rsplit("peak-rss-kib", 1)[1])
    if sys.platform.startswith("linux"):  # never read whole (the run itself takes ~0.2 GB)
        assert peak_kib < 768 << 10
    after = fingerprint(folder, skip=(*OWN, "big")), junk.stat()
    assert after[0] == before[0]
    assert (after[1].st_size, after[1].st_mtime_ns) == (before[1].st_size, before[1].st_mtime_ns)
