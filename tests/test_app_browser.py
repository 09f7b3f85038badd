"""The lyrics studio in a real browser (Chromium driven by Playwright): type a seed line, move the
sliders, watch the song grow in its one panel, stop it, and check that it stopped and the app still
writes; a bad setting leaves the song in place; hover, select and switch heads to look inside; and
all of it again at a phone's width.

Run as a script to take the README's screenshot of the page mid-song:
    python tests/test_app_browser.py docs/screenshot.png      # LYRICGPT_MODEL picks another model
"""

from __future__ import annotations

import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_app import ROOT, running_app  # noqa: E402
from lyricgpt.sampler import DEFAULT_TEMPERATURE  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SONG = "#song .song"
PHONE = {"width": 390, "height": 844}


@contextmanager
def chromium_page(url: str, viewport: dict | None = None):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=viewport or {"width": 1280, "height": 960})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.wait_for_selector("#song")
            yield page
        finally:
            browser.close()


def song_text(page) -> str:
    return page.evaluate(f"(document.querySelector('{SONG}') || {{textContent: ''}}).textContent")


def set_number(page, elem_id: str, value: float) -> None:
    """Type into a slider's number box, as a person who knows the value they want does."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def watch_growth(page, distinct: int, timeout: float = 30.0) -> list[str]:
    """Poll the lyrics box until it has shown ``distinct`` different values."""
    seen = [song_text(page)]
    deadline = time.monotonic() + timeout
    while len(seen) < distinct and time.monotonic() < deadline:
        page.wait_for_timeout(30)
        value = song_text(page)
        if value != seen[-1]:
            seen.append(value)
    return seen


@pytest.fixture(scope="module")
def app(subprocess_env, slow_model_dir):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with running_app(subprocess_env, LYRICGPT_MODEL=str(slow_model_dir)) as app:
        yield app


@pytest.fixture(scope="module")
def studio(app):
    """The page in Chromium (not named ``page``: pytest-playwright, where installed, owns that name)."""
    with chromium_page(app.url) as page:
        yield page


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_type_generate_watch_it_grow_and_stop(app, studio):
    page = studio
    seed_line = "Stop me if you can"
    page.fill("#seed-line textarea", seed_line)
    slider = page.locator("#temperature input[type=range]")
    slider.focus()
    for _ in range(4):
        slider.press("ArrowLeft")  # four steps of 0.05 down from the default
    set_number(page, "length", 2000)
    page.click("#generate")

    seen = watch_growth(page, distinct=6)
    assert len(seen) == 6, f"the lyrics box showed only {seen}"
    assert all(later.startswith(earlier) for earlier, later in zip(seen[1:], seen[2:]))
    assert seen[-1].startswith(seed_line)

    page.click("#stop")
    page.wait_for_function("document.querySelector('#song-status').innerText.endsWith(' · stopped')")
    lyric, cpu_before = song_text(page), cpu_seconds(app.process.pid)
    page.wait_for_timeout(1500)  # what must be shown is that nothing happens: there is no event to wait on
    assert song_text(page) == lyric, "the song kept growing after Stop"
    assert cpu_seconds(app.process.pid) - cpu_before < 0.5, "the server kept working after Stop"
    new_chars = len(lyric) - len(seed_line)
    assert 0 < new_chars < 2000

    status = page.inner_text("#song-status")
    lowered = re.escape(f"{DEFAULT_TEMPERATURE - 0.2:g}")
    assert re.fullmatch(rf"{new_chars} of 2000 characters at .* · temperature {lowered} · top-k off · top-p off "
                        rf"· seed \d+ · stopped", status)
    assert page.locator(f"{SONG} span[data-top]").count() == new_chars  # one coloured span each
    assert page.locator("textarea[readonly], #lyrics").count() == 0  # the song is shown once, in one panel


def test_a_bad_setting_leaves_the_song_in_place_with_only_a_message(app, studio):
    from playwright.sync_api import TimeoutError as PageTimeout

    page = studio
    before, status = song_text(page), page.inner_text("#song-status")
    page.locator("button:has-text('Advanced'), span:has-text('Advanced')").first.click()
    seed_box = page.locator("#seed textarea, #seed input")
    seed_box.wait_for()
    # Seen here: text typed within ~0.1 s of the accordion's first opening was put back to the seed
    # box's first value ('randomize') as its contents mounted, so the song started with no message.
    page.wait_for_timeout(1000)
    seed_box.fill("hello")
    assert seed_box.input_value() == "hello"
    page.click("#generate")
    try:
        page.wait_for_selector("text=the seed must be a whole number")
    except PageTimeout as e:  # say what the page and the server showed instead, for a failure seen once in CI
        toasts = page.locator(".toast-body").all_inner_texts()
        raise AssertionError(f"no message for a bad seed; the status read {page.inner_text('#song-status')!r}, "
                             f"the seed box {seed_box.input_value()!r}, toasts {toasts!r}; "
                             f"the server's log ends:\n{app.log_tail()}") from e
    page.wait_for_timeout(500)
    assert song_text(page) == before and page.inner_text("#song-status") == status
    assert page.locator("#song .error, #song-status .error").count() == 0
    seed_box.fill("7")


def test_after_stop_the_app_writes_again_and_colours_can_be_hidden(studio):
    page = studio
    set_number(page, "length", 30)
    page.click("#colour input")  # off: the colours go at once, the song stays
    assert "plain" in page.get_attribute("#song", "class")
    page.click("#generate")
    page.wait_for_function("document.querySelector('#song-status').innerText.startsWith('30 of 30 characters')")
    assert len(song_text(page)) == len("Stop me if you can") + 30
    page.click("#colour input")  # on again, for the tests that follow
    page.click("#generate")
    page.wait_for_function("document.querySelector('#song-status').innerText.startsWith('30 of 30 characters')"
                           " && document.querySelectorAll('#song .song span[data-top]').length == 30")


def look_inside(page) -> None:
    """Hover a generated character: five alternatives. Select it: shading over its window, which
    changes with the head."""
    chars = page.locator(f"{SONG} span[data-top]")
    target = chars.nth(20)
    target.hover()
    page.wait_for_selector("#alt-tip:not([hidden])")
    assert page.locator("#alt-tip tr").count() >= 5
    assert page.locator("#alt-tip tr.drawn").count() == 1
    target.click()
    page.wait_for_selector(f"{SONG} span.attended")
    assert page.locator(f"{SONG} span.selected").count() == 1

    def shading() -> list[str]:
        return page.eval_on_selector_all(f"{SONG} span.attended", "spans => spans.map(s => s.dataset.attention)")

    averaged = shading()
    assert len(averaged) == int(target.get_attribute("data-window"))
    page.select_option("#attention-head", "0")
    page.wait_for_timeout(100)
    first_head = shading()
    page.select_option("#attention-layer", "0")
    page.wait_for_timeout(100)
    assert first_head != averaged and shading() != first_head


def test_hover_select_and_switch_heads(studio):
    look_inside(studio)


def test_at_a_phones_width_one_readable_panel_that_looks_inside_too(app, studio):
    page = studio.context.browser.new_page(viewport=PHONE)  # one Playwright per process
    try:
        page.set_default_timeout(30_000)
        page.goto(app.url)
        page.wait_for_selector("#song")
        page.fill("#seed-line textarea", "Small screen")
        set_number(page, "length", 120)
        page.click("#generate")
        page.wait_for_function("document.querySelector('#song-status').innerText.startsWith('120 of 120')")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing wider than the phone
        box = page.locator("#song").bounding_box()
        assert box["width"] <= PHONE["width"] and box["x"] >= 0
        # A tap on a touch screen arrives as a click, which the page handles; Playwright's emulated
        # tap did not reach the page's handler here, so the click stands in for it.
        look_inside(page)
    finally:
        page.close()


def take_screenshot(path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with running_app(env) as app, chromium_page(app.url) as page:
        page.fill("#seed-line textarea", "Down by the river where the old mill stands")
        set_number(page, "length", 600)
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#song .song span[data-top]').length > 330")
        page.click("#stop")
        page.locator(f"{SONG} span[data-top]").nth(300).click()  # the alternatives and the attention view
        page.wait_for_selector(f"{SONG} span.attended")
        page.screenshot(path=str(path), full_page=True)


if __name__ == "__main__":
    take_screenshot(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot.png")
