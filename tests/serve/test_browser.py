"""End to end in a real browser: Debian's chromium driven by Playwright, against uvicorn
serving a real collection on 127.0.0.1. Skipped when chromium or playwright is missing."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from lookalike.serve import create_app
from tests.conftest import crop, scene

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium executable on PATH "
                                "(apt-get install chromium)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(served_folder: Path) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(served_folder), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not server.started:
        time.sleep(0.05)
    assert httpx.get(f"{url}/api/stats").status_code == 200
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object, tmp_path: Path) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    context.close()


def test_upload_ranks_its_duplicate_first(page: object, base_url: str, tmp_path: Path) -> None:
    page.goto(base_url)  # type: ignore[attr-defined]
    page.wait_for_selector("#gallery .tile img")
    page.screenshot(path=str(tmp_path / "gallery.png"))
    page.click("nav a[data-view=search]")
    query = tmp_path / "query.jpg"
    crop(scene(5), 0.9).save(query, quality=85)
    page.set_input_files("#file-input", str(query))
    first = page.wait_for_selector("#results .tile[data-rank='1']")
    assert first.get_attribute("title") == "scene5.jpg"
    page.screenshot(path=str(tmp_path / "search.png"), full_page=True)
    page.screenshot(path="/tmp/serve-shot-search.png", full_page=True)
    # Open the hit: its neighbours are listed with scores.
    first.click()
    page.wait_for_selector("#neighbours .tile[data-rank='1']")
    assert "·" in page.inner_text("#neighbours .tile[data-rank='1'] .caption")
    assert page.problems == []  # type: ignore[attr-defined]


def test_duplicates_review_saves_a_mark(page: object, base_url: str, tmp_path: Path) -> None:
    page.goto(f"{base_url}/#duplicates")  # type: ignore[attr-defined]
    group = page.wait_for_selector(".dup-group")
    keeper = group.query_selector(".member.keeper")
    assert keeper is not None and "suggested keeper" in keeper.inner_text()
    assert keeper.query_selector("input[value=keep]").is_checked()
    other = group.query_selector(".member:not(.keeper)")
    other_id = int(other.get_attribute("data-id"))
    other.query_selector("input[value='not-duplicate']").check()
    group.query_selector("button.save").click()
    page.wait_for_function("document.querySelector('.dup-group .saved').textContent === 'saved'")
    page.screenshot(path=str(tmp_path / "duplicates.png"), full_page=True)
    page.screenshot(path="/tmp/serve-shot.png", full_page=True)
    marks = httpx.get(f"{base_url}/api/marks").json()["marks"]
    assert {m["file_id"]: m["decision"] for m in marks}[other_id] == "not-duplicate"
    assert page.problems == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("view", ["gallery", "groups", "clusters", "outliers", "map"])
def test_views_load_without_console_errors(page: object, base_url: str, tmp_path: Path,
                                           view: str) -> None:
    page.goto(f"{base_url}/#{view}")  # type: ignore[attr-defined]
    page.wait_for_selector("#view .tile, #view canvas")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(tmp_path / f"{view}.png"), full_page=True)
    if view == "map":
        page.screenshot(path="/tmp/serve-shot-map.png")
    assert page.problems == []  # type: ignore[attr-defined]


def test_phone_viewport(browser: object, base_url: str, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844},  # type: ignore[attr-defined]
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{base_url}/#duplicates")
    page.wait_for_selector(".dup-group")
    width = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    page.screenshot(path="/tmp/serve-shot-phone.png", full_page=True)
    context.close()
    assert width <= 390  # nothing forces sideways scrolling of the whole page
