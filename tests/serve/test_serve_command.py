"""``lookalike serve``: argument handling and the warning for a non-loopback bind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import lookalike.serve
from lookalike.cli import app
from lookalike.serve import is_loopback


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(lookalike.serve, "run",
                        lambda directory, **options: seen.append({"dir": directory, **options}))
    return seen


def test_defaults_bind_loopback(served_folder: Path, calls: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["serve", str(served_folder)])
    assert result.exit_code == 0, result.output
    assert calls[0]["host"] == "127.0.0.1" and calls[0]["port"] == 8765
    assert calls[0]["token"] is None
    assert calls[0]["dir"] == served_folder / ".lookalike"
    assert "warning" not in result.output


def test_warns_on_open_bind_without_token(served_folder: Path,
                                          calls: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["serve", str(served_folder), "--host", "0.0.0.0"])
    assert result.exit_code == 0 and "without --token" in result.output
    quiet = CliRunner().invoke(app, ["serve", str(served_folder), "--host", "0.0.0.0",
                                     "--token", "t"])
    assert "without --token" not in quiet.output and calls[-1]["token"] == "t"


def test_no_collection_is_a_clear_error(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 1 and not calls


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
