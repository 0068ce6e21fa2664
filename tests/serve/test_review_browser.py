"""The whole duplicate clean-up in a real browser, as a photographer does it: every group
of a 300+-group collection reviewed with the keyboard, the discarded copies moved to
quarantine from the page, then the move undone from the page; the disk checked after
each step by content hashes. Skipped when chromium or playwright is missing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lookalike import Collection
from tests.conftest import scene
from tests.serve.browser import ARGS, CHROMIUM, serving, watch_errors

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium executable on PATH (apt-get install chromium)")]
PICTURES = 320  # each with a JPEG copy: 300+ duplicate groups
REVIEW_PAGE = 50  # groups the review page shows at a time (PAGE in static/review.js)


@pytest.fixture(scope="module")
def pairs_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PICTURES small distinct pictures, each as a PNG and a JPEG re-encode of it."""
    folder = tmp_path_factory.mktemp("pairs") / "photos"
    folder.mkdir()
    for seed in range(PICTURES):
        picture = scene(1000 + seed, (96, 72))
        picture.save(folder / f"p{seed:03d}.png")
        picture.save(folder / f"p{seed:03d}-copy.jpg", quality=80)
    collection, _ = Collection.index_folder(folder, model="classic")
    collection.close()
    return folder


@pytest.fixture(scope="module")
def base_url(pairs_folder: Path) -> Iterator[str]:
    with serving(pairs_folder) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield launched
        launched.close()


def hashes(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in folder.rglob("*") if path.is_file() and ".lookalike" not in path.parts}


def all_groups(base_url: str) -> list[dict]:
    groups: list[dict] = []
    while True:
        page = httpx.get(f"{base_url}/api/duplicates",
                         params={"offset": len(groups), "limit": 500}, timeout=300).json()
        groups += page["groups"]
        if len(groups) >= page["total"]:
            return groups


def test_every_group_is_reachable_and_back_returns_to_it(browser: object,
                                                        base_url: str) -> None:
    """A link into the review, two groups reviewed across a page boundary, back, on to
    the next unreviewed one, an image opened and Back: the same group is current again;
    the last group is reachable by paging."""
    page = browser.new_page()  # type: ignore[attr-defined]
    problems = watch_errors(page)
    # the finder, started with the server, is still at work: its progress shows, and
    # Cancel stops it and the page's request
    page.goto(f"{base_url}/#duplicates/{REVIEW_PAGE - 1}")
    page.click(".progress button:text('Cancel')", timeout=60000)
    page.click("button:text('Start again')")
    total = httpx.get(f"{base_url}/api/duplicates", params={"limit": 1}, timeout=300
                      ).json()["total"]
    page.wait_for_selector(f".dup-group.current[data-index='{REVIEW_PAGE - 1}']")
    page.keyboard.press("r")  # reviewed, on to the next page's first group
    page.wait_for_selector(f".dup-group.current[data-index='{REVIEW_PAGE}']")
    page.keyboard.press("r")
    page.keyboard.press("k")
    page.keyboard.press("k")
    page.wait_for_selector(f".dup-group.current[data-index='{REVIEW_PAGE - 1}']")
    page.keyboard.press("n")  # the next group not reviewed: past the two just done
    page.wait_for_selector(f".dup-group.current[data-index='{REVIEW_PAGE + 1}']")
    key = page.get_attribute(".dup-group.current", "data-key")
    page.wait_for_function(f"location.hash === '#duplicates/{REVIEW_PAGE + 1}'")
    page.click(".dup-group.current .member a")
    page.wait_for_selector("#neighbours .tile")
    page.go_back()
    assert page.wait_for_selector(".dup-group.current").get_attribute("data-key") == key
    assert page.get_attribute(".dup-group.current", "data-index") == str(REVIEW_PAGE + 1)
    page.click("button[aria-label='previous page']")
    page.wait_for_function("document.querySelector('#page-range').textContent"
                           ".startsWith('groups 1–')")
    for start in range(REVIEW_PAGE, total, REVIEW_PAGE):
        page.click("button[aria-label='next page']")
        page.wait_for_function("document.querySelector('#page-range').textContent"
                               f".startsWith('groups {start + 1}–')")
    assert page.is_disabled("button[aria-label='next page']")
    page.wait_for_selector(f".dup-group[data-index='{total - 1}']")
    assert page.inner_text("#page-range").endswith(f"of {total}")
    page.close()
    assert problems == []


def test_review_every_group_by_keyboard_then_move_and_undo(browser: object, base_url: str,
                                                           pairs_folder: Path) -> None:
    before = hashes(pairs_folder)
    groups = all_groups(base_url)  # also waits for the finder, started with the server
    assert len(groups) >= 300
    # the first member of each group stays, the others go
    keepers = {g["members"][0]["image"]["path"] for g in groups}
    discards = {m["image"]["path"] for g in groups for m in g["members"][1:]}
    page = browser.new_page(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    problems = watch_errors(page)
    page.goto(f"{base_url}/#duplicates")
    for index in range(len(groups)):
        if index % REVIEW_PAGE == 0:  # the page loads the next groups
            page.wait_for_selector(f".dup-group.current[data-index='{index}']")
        page.keyboard.press("1")
        page.keyboard.press("r")
    page.wait_for_function(
        "document.querySelector('#review-progress').textContent.startsWith("
        f"'{len(groups)} of {len(groups)} reviewed')", timeout=30000)
    page.wait_for_function(f"location.hash === '#duplicates/{len(groups) - 1}'")
    marks = {m["path"]: m["decision"]
             for m in httpx.get(f"{base_url}/api/marks").json()["marks"]}
    assert {p for p, d in marks.items() if d == "keep"} == keepers
    assert {p for p, d in marks.items() if d == "discard"} == discards

    page.click("#apply")
    confirm = page.wait_for_selector("#confirm-move", timeout=60000)
    assert confirm.inner_text().startswith(f"Move {len(discards)} files")
    assert len(page.query_selector_all("#move-dialog ul.plan li")) == len(discards)
    confirm.click()
    page.wait_for_selector("#move-dialog .done", timeout=60000)
    assert page.inner_text("#move-dialog .done").startswith(f"Moved {len(discards)} files")
    quarantine = pairs_folder.parent / f"{pairs_folder.name}-duplicates"
    after = hashes(pairs_folder)
    assert set(after) == set(before) - discards
    assert all(after[path] == before[path] for path in keepers)
    moved = hashes(quarantine)
    assert {path: moved.get(path) for path in discards} == {p: before[p] for p in discards}

    page.click("#undo-move")
    page.wait_for_function("document.querySelector('#move-dialog .done')?.textContent"
                           ".includes('back where they were')", timeout=60000)
    assert hashes(pairs_folder) == before
    assert not any(path in hashes(quarantine) for path in discards)
    page.click("#close-move")
    page.wait_for_selector(".dup-group.current")
    assert problems == []


def test_accepting_the_suggestions_marks_the_copy_groups_left(browser: object,
                                                               base_url: str) -> None:
    """One click: each exact or edited group not reviewed nor marked yet keeps its
    suggested keeper, discards the rest and counts as reviewed. (The groups of the first
    page and a few more are reset for it; the review above did all the others.)"""
    groups = all_groups(base_url)
    reset = [g for g in groups[:REVIEW_PAGE + 10] if g["tier"] in ("exact", "edited")]
    assert len(reset) >= REVIEW_PAGE
    for group in reset:
        httpx.post(f"{base_url}/api/review/groups/{group['key']}", json={"reviewed": False})
        for member in group["members"]:
            httpx.delete(f"{base_url}/api/marks/{member['image']['id']}")
    page = browser.new_page()  # type: ignore[attr-defined]
    problems = watch_errors(page)
    page.goto(f"{base_url}/#duplicates")
    page.wait_for_selector(".dup-group.current")
    page.click("#accept")
    page.wait_for_selector("#review-notice .note")
    assert f"for {len(reset)} groups" in page.inner_text("#review-notice")
    page.wait_for_function("document.querySelector('#review-progress').textContent"
                           f".startsWith('{len(groups)} of {len(groups)} reviewed')")
    marks = {m["file_id"]: m["decision"]
             for m in httpx.get(f"{base_url}/api/marks").json()["marks"]}
    assert {m["image"]["id"]: marks[m["image"]["id"]] for g in reset for m in g["members"]
            } == {m["image"]["id"]: "keep" if m["keeper"] else "discard"
                  for g in reset for m in g["members"]}
    assert "Reviewed ✓" in page.inner_text(".dup-group.current .reviewed-toggle")
    page.close()
    assert problems == []
