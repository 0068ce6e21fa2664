"""Optional parts that are not installed give one line naming the pip extra, exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lookalike import Collection
from lookalike.cli import app
from lookalike.extras import MissingExtra
from lookalike.index import build_index


def uninstall(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for name in modules:  # import and find_spec then see the module as absent
        monkeypatch.setitem(sys.modules, name, None)


def one_error_line(output: str, extra: str) -> None:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in output, output
    assert lines[0].startswith("error:") and f"pip install 'lookalike[{extra}]'" in lines[0]


def test_serve_without_the_web_stack(photo_folder: Path, monkeypatch) -> None:
    Collection.index_folder(photo_folder, model="classic")
    uninstall(monkeypatch, "fastapi")
    result = CliRunner().invoke(app, ["serve", str(photo_folder)])
    assert result.exit_code == 2
    one_error_line(result.output, "serve")
    assert "fastapi" in result.output


def test_annoy_index_without_annoy(photo_folder: Path, monkeypatch) -> None:
    uninstall(monkeypatch, "annoy")
    vectors = np.eye(4, dtype=np.float32)
    with pytest.raises(MissingExtra, match=r"lookalike\[annoy\]"):
        build_index("annoy", vectors, np.arange(4))
    assert build_index("auto", vectors, np.arange(4)).kind == "flat"  # auto never needs it
    result = CliRunner().invoke(app, ["index", str(photo_folder), "--model", "classic",
                                      "--index", "annoy"])
    assert result.exit_code == 2
    one_error_line(result.output, "annoy")


def test_plots_without_matplotlib(monkeypatch, tmp_path: Path) -> None:
    from lookalike.eval.plots import write_figures

    uninstall(monkeypatch, "matplotlib")
    with pytest.raises(MissingExtra, match=r"lookalike eval --plots needs matplotlib: "
                                           r"pip install 'lookalike\[plots\]'"):
        write_figures([], tmp_path)


def test_ray_without_ray(photo_folder: Path, monkeypatch) -> None:
    from lookalike.pipeline_ray import connect

    uninstall(monkeypatch, "ray")
    with pytest.raises(MissingExtra, match=r"--ray needs ray: pip install 'lookalike\[ray\]'"):
        connect("local")
    result = CliRunner().invoke(app, ["index", str(photo_folder), "--ray", "auto"])
    assert result.exit_code == 2
    one_error_line(result.output, "ray")
