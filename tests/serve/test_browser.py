"""End to end in a real browser: Debian's chromium driven by Playwright, against uvicorn
serving a real collection on 127.0.0.1. Skipped when chromium or playwright is missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import crop, scene
from tests.serve.browser import ARGS, CHROMIUM, serving, watch_errors

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium executable on PATH (apt-get install chromium)")]


@pytest.fixture(scope="module")
def base_url(served_folder: Path) -> Iterator[str]:
    with serving(served_folder) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    page = context.new_page()
    page.problems = watch_errors(page)  # type: ignore[attr-defined]
    yield page
    context.close()


def test_upload_ranks_its_duplicate_first(page: object, base_url: str, tmp_path: Path) -> None:
    page.goto(base_url)  # type: ignore[attr-defined]
    page.wait_for_selector("#gallery .tile img")
    page.click("nav a[data-view=search]")
    query = tmp_path / "query.jpg"
    crop(scene(5), 0.9).save(query, quality=85)
    page.set_input_files("#file-input", str(query))
    first = page.wait_for_selector("#results .tile[data-rank='1']")
    assert first.get_attribute("title") == "scene5.jpg"
    assert page.title().startswith("Search · lookalike")
    # Open the hit: its neighbours are listed with scores; Back shows the results again.
    first.click()
    page.wait_for_selector("#neighbours .tile[data-rank='1']")
    assert "·" in page.inner_text("#neighbours .tile[data-rank='1'] .caption")
    page.go_back()
    assert page.wait_for_selector("#results .tile[data-rank='1']").get_attribute(
        "title") == "scene5.jpg"
    assert page.problems == []  # type: ignore[attr-defined]


def test_back_returns_to_the_place_in_the_gallery(page: object, base_url: str) -> None:
    page.set_viewport_size({"width": 500, "height": 400})  # type: ignore[attr-defined]
    page.goto(f"{base_url}/#gallery/path")  # type: ignore[attr-defined]
    page.wait_for_selector("#gallery .tile img")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_timeout(400)  # the place is remembered once scrolling settles
    place = page.evaluate("scrollY")
    assert place > 100
    last = page.query_selector_all("#gallery .tile")[-1]
    name = last.get_attribute("title")
    last.click()
    page.wait_for_selector("#neighbours .tile")
    page.go_back()
    page.wait_for_selector(f"#gallery .tile[title='{name}']")
    page.wait_for_function(f"Math.abs(scrollY - {place}) < 5")
    assert page.eval_on_selector("#sort", "s => s.value") == "path"


def test_a_slow_view_left_behind_does_not_paste_into_the_next(page: object,
                                                             base_url: str) -> None:
    """The map's answer arrives after the user has moved on to Outliers: it is dropped."""
    layout = httpx.get(f"{base_url}/api/map", timeout=120).text
    held: list[object] = []
    page.route("**/api/map*", lambda route: held.append(route))  # type: ignore[attr-defined]
    page.goto(f"{base_url}/#map")  # type: ignore[attr-defined]
    page.wait_for_selector(".progress .stage")
    assert "laying out" in page.inner_text(".progress .stage")
    page.wait_for_function("document.querySelector('.progress .elapsed').textContent !== '0 s'")
    page.click("nav a[data-view=outliers]")
    page.wait_for_selector("#outliers .tile")
    outliers = page.inner_html("#view")
    assert len(held) == 1
    try:  # the page has aborted the request; where it has not, the answer comes now
        held[0].fulfill(status=200, content_type="application/json", body=layout)  # type: ignore[attr-defined]
    except sync_api.Error:
        pass
    page.wait_for_timeout(500)
    assert page.query_selector("#map") is None
    assert page.inner_html("#view") == outliers
    assert page.title().startswith("Outliers")
    assert page.problems == []  # type: ignore[attr-defined]


def test_review_keys_pick_the_keeper_and_save_it(page: object, base_url: str) -> None:
    page.goto(f"{base_url}/#duplicates")  # type: ignore[attr-defined]
    group = page.wait_for_selector(".dup-group.current")
    members = group.query_selector_all(".member")
    suggested = group.query_selector(".member.suggested")
    assert "suggested keeper" in suggested.inner_text()
    assert "keep" in suggested.get_attribute("class").split()
    # Keeping the second file: the green frame moves to it, the suggestion is discarded.
    page.keyboard.press("2")
    second = int(members[1].get_attribute("data-id"))
    first = int(members[0].get_attribute("data-id"))
    assert "keep" in members[1].get_attribute("class").split()
    assert "discard" in members[0].get_attribute("class").split()
    # Discarding the last kept file (the one just picked) is refused with a warning.
    page.keyboard.press("d")
    assert page.is_visible(".dup-group.current .warn")
    assert "keep" in members[1].get_attribute("class").split()
    page.wait_for_function("document.querySelector('.dup-group.current .saved')"
                           ".textContent === 'saved'")
    saved = httpx.get(f"{base_url}/api/marks").json()["marks"]
    marks = {m["file_id"]: m["decision"] for m in saved}
    assert marks[second] == "keep" and marks[first] == "discard"
    # Reload: the choice is the server's now.
    page.reload()
    page.wait_for_selector(".dup-group.current")
    assert "keep" in page.get_attribute(f".member[data-id='{second}']", "class").split()
    assert page.problems == []  # type: ignore[attr-defined]


def test_compare_zooms_both_sides_together(page: object, base_url: str) -> None:
    page.goto(f"{base_url}/#duplicates")  # type: ignore[attr-defined]
    page.wait_for_selector(".dup-group.current")
    page.keyboard.press("c")
    # the facts come from the server, which may be busy with its background analyses
    page.wait_for_selector("#compare-facts", timeout=120_000)
    assert page.title().startswith("Compare")
    transforms = page.eval_on_selector_all(".pane img", "imgs => imgs.map(i => i.style.transform)")
    assert len(transforms) == 2 and transforms[0] == transforms[1] and "scale(1)" in transforms[0]
    page.click("button[aria-label='zoom in']")
    zoomed = page.eval_on_selector_all(".pane img", "imgs => imgs.map(i => i.style.transform)")
    assert zoomed[0] == zoomed[1] and "scale(1.5)" in zoomed[0]
    assert page.inner_text("#zoom-level") == "150 %"
    assert "dimensions" in page.inner_text("#compare-facts")
    page.click("#flicker")
    assert page.get_attribute("#flicker", "aria-pressed") == "true"
    assert len(page.query_selector_all(".pane[data-side=left] img")) == 2
    page.go_back()
    page.wait_for_selector(".dup-group.current")
    assert page.problems == []  # type: ignore[attr-defined]


def test_a_similar_shot_is_never_preselected_for_discarding(page: object,
                                                          base_url: str) -> None:
    """A group the finder calls a similar shot (here: the server's first group, told so)
    starts with every file kept, and says so."""
    answer = httpx.get(f"{base_url}/api/duplicates", params={"limit": 50}, timeout=120).json()
    first = answer["groups"][0]
    first["tier"] = "similar"
    for member in first["members"]:  # as the finder tells a similar shot's members
        member["mark"] = None
        member["tier"] = None if member["keeper"] else "similar"
    page.route("**/api/duplicates?*", lambda route: route.fulfill(json=answer))  # type: ignore[attr-defined]
    page.goto(f"{base_url}/#duplicates")  # type: ignore[attr-defined]
    group = page.wait_for_selector(".dup-group[data-index='0']")
    assert "similar shot" in group.query_selector("h2").inner_text()
    members = group.query_selector_all(".member")
    assert all("keep" in m.get_attribute("class").split() for m in members)


def test_choices_made_offline_are_kept_sent_later_and_guard_leaving(browser: object,
                                                                    base_url: str) -> None:
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{base_url}/#duplicates")
    page.wait_for_selector(".dup-group.current[data-index='0']")
    members = page.query_selector_all(".dup-group.current .member")
    ids = [int(m.get_attribute("data-id")) for m in members]
    context.set_offline(True)
    page.keyboard.press(str(len(ids)))  # keep the last file, discard the others
    page.wait_for_selector("#review-notice .error")
    assert "not saved yet" in page.inner_text(".dup-group.current .saved")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.dismiss()))
    page.evaluate("location.hash = '#gallery'")  # leaving the view keeps them queued
    page.wait_for_selector("#gallery", state="attached")
    context.set_offline(False)
    page.wait_for_function("!document.querySelector('#review-notice .error')", timeout=20000)
    marks = {m["file_id"]: m["decision"]
             for m in httpx.get(f"{base_url}/api/marks").json()["marks"]}
    assert marks[ids[-1]] == "keep" and all(marks[i] == "discard" for i in ids[:-1])
    # with a choice unsent, closing the page asks first
    page.goto(f"{base_url}/#duplicates")
    page.wait_for_selector(".dup-group.current[data-index='0']")
    context.set_offline(True)
    page.keyboard.press("1")
    page.close(run_before_unload=True)
    page.wait_for_timeout(300)
    context.close()
    assert dialogs == ["beforeunload"]


def test_dark_mode_text_has_contrast(browser: object, base_url: str) -> None:
    context = browser.new_context(color_scheme="dark")  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{base_url}/#duplicates")
    page.wait_for_selector(".dup-group.current")
    ratios = page.evaluate("""() => {
      const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
      const lum = (c) => { const [r, g, b] = rgb(c).map((v) => { v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
      const background = (n) => { for (; n; n = n.parentElement) {
        const c = getComputedStyle(n).backgroundColor;
        if (!c.endsWith(", 0)") && c !== "transparent") return c; } return "rgb(255,255,255)"; };
      const out = {};
      for (const sel of ["body", "a", ".note", "h2", ".member .path", "button",
                         ".choice[aria-pressed=true]", "header nav a.active"]) {
        const n = document.querySelector(sel);
        if (!n) continue;
        const [a, b] = [lum(getComputedStyle(n).color), lum(background(n))];
        out[sel] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      }
      return out; }""")
    context.close()
    assert len(ratios) >= 7
    assert {sel: r for sel, r in ratios.items() if r < 4.5} == {}


@pytest.mark.parametrize("view", ["gallery", "groups", "clusters", "outliers", "map"])
def test_views_load_without_console_errors(page: object, base_url: str, view: str) -> None:
    page.goto(f"{base_url}/#{view}")  # type: ignore[attr-defined]
    page.wait_for_selector("#view .tile, #view canvas")
    page.wait_for_load_state("networkidle")
    assert page.query_selector("main[aria-live]") is None
    assert page.title().lower().startswith(view)
    assert page.problems == []  # type: ignore[attr-defined]


def test_map_zooms_pans_and_follows_resize(page: object, base_url: str) -> None:
    page.goto(f"{base_url}/#map")  # type: ignore[attr-defined]
    canvas = page.wait_for_selector("#map", timeout=60000)
    assert len(page.query_selector_all(".legend li a")) >= 1
    picture = "document.querySelector('#map').toDataURL()"
    before = page.evaluate(picture)
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    zoomed = page.evaluate(picture)
    assert zoomed != before
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 80, box["y"] + box["height"] / 2 + 40)
    page.mouse.up()
    assert page.evaluate(picture) != zoomed
    page.dblclick("#map")
    assert page.evaluate(picture) == before
    page.set_viewport_size({"width": 700, "height": 700})
    page.wait_for_function("document.querySelector('#map').width === "
                           "Math.round(document.querySelector('#map').clientWidth"
                           " * devicePixelRatio)")
    assert canvas.bounding_box()["width"] < box["width"]
    assert page.problems == []  # type: ignore[attr-defined]


def test_docs_are_listed_offline(page: object, base_url: str) -> None:
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url)  # type: ignore[attr-defined]
            if not r.url.startswith(base_url) else None)
    page.goto(f"{base_url}/docs")  # type: ignore[attr-defined]
    page.wait_for_selector("section.endpoint")
    assert "/api/duplicates" in page.inner_text("#docs")
    assert external == []
    assert page.problems == []  # type: ignore[attr-defined]


def test_phone_viewport(browser: object, base_url: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844},  # type: ignore[attr-defined]
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{base_url}/#duplicates")
    page.wait_for_selector(".dup-group.current")
    width = page.evaluate("document.documentElement.scrollWidth")
    header = page.eval_on_selector("header", "h => h.getBoundingClientRect().height")
    assert page.is_hidden("#undo")  # nothing was moved: nothing to undo
    targets = page.eval_on_selector_all(
        ".dup-group button, .dup-group .bar a.button, .pager button, .review-bar button, "
        "header nav a",
        "nodes => nodes.filter(n => n.offsetParent).map(n => {"
        " const r = n.getBoundingClientRect(); return [n.textContent, r.width, r.height]; })")
    unlabelled = []
    for view, ready in [("gallery", "#sort"), ("groups", "#threshold"), ("search", "#file-input"),
                        ("image/1", "#k")]:
        page.goto(f"{base_url}/#{view}")
        page.wait_for_selector(ready, state="attached")
        unlabelled += page.eval_on_selector_all(
            "input, select", "nodes => nodes.filter(n => !n.labels?.length"
            " && !n.getAttribute('aria-label')).map(n => n.outerHTML)")
    context.close()
    assert width <= 390  # nothing forces sideways scrolling of the whole page
    assert header <= 60
    assert len(targets) > 10
    small = [t for t in targets if t[1] < 44 or t[2] < 44]
    assert small == []
    assert unlabelled == []
