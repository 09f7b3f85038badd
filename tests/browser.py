"""The page in Chromium, driven by Playwright: for the browser tests, benchmarks/page_stream.py and
docs/screenshot.py.

    with chromium_page(app.url) as page:          # returns once the song panel is on the page
        write_song(page, "Down by the river", length=400, seed=15)
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SONG = "#song .song"
DESKTOP = {"width": 1280, "height": 960}
PHONE = {"width": 390, "height": 844}


@contextmanager
def chromium() -> Iterator:
    """A headless Chromium (Playwright's own browser download is not needed)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, viewport: dict = DESKTOP, touch: bool = False):
    """A new page on ``url`` in a context of its own; ``touch``: a phone's touch screen."""
    context = browser.new_context(viewport=viewport, has_touch=touch, is_mobile=touch)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_selector("#song")
    return page


@contextmanager
def app_in_chromium(model: str | None = None) -> Iterator:
    """For a benchmark: app.py as it serves (LYRICGPT_MODEL=``model`` if given), Chromium, and a page
    on the app: (app, browser, page)."""
    from live_app import running_app

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
    if model:
        env["LYRICGPT_MODEL"] = model
    with running_app(env) as app, chromium() as browser:
        print(f"app started in {app.startup_s:.1f} s")
        yield app, browser, open_page(browser, app.url)


@contextmanager
def chromium_page(url: str, viewport: dict = DESKTOP, touch: bool = False) -> Iterator:
    with chromium() as browser:
        yield open_page(browser, url, viewport, touch)


def song_text(page) -> str:
    return page.evaluate(f"(document.querySelector('{SONG}') || {{textContent: ''}}).textContent")


def share_link(page) -> str:
    """The song's share link, once the page has written it."""
    box = page.locator("#share-link textarea, #share-link input").first
    page.wait_for_function("(box) => box.value.startsWith('http')", arg=box.element_handle())
    return box.input_value()


def choose(page, elem_id: str, label: str) -> None:
    """Pick a dropdown's choice by its label, as a person does: open the list, click the choice."""
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=label, exact=True).click()


def set_number(page, elem_id: str, value: float) -> None:
    """Type into a slider's number box, as a person who knows the value they want does."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def set_seed(page, seed: int | str) -> None:
    """Open "Advanced" (once) and type the seed."""
    box = page.locator("#seed textarea, #seed input")
    if not box.is_visible():
        page.locator("button:has-text('Advanced'), span:has-text('Advanced')").first.click()
        box.wait_for()
        # Seen here: text typed within ~0.1 s of the accordion's first opening was put back to the
        # seed box's first value ('randomize') as its contents mounted.
        page.wait_for_timeout(1000)
    box.fill(str(seed))


def set_colour(page, on: bool) -> None:
    if page.locator("#colour input").is_checked() != on:
        page.click("#colour input")


def click_generate(page) -> None:
    """Click Generate, with the page noting the time of the click and when the panel starts again."""
    page.evaluate("""() => {
      const song = document.querySelector('#song .song');
      window.generateClickedAt = undefined;
      window.newSong = song.textContent === '';  // or, once its first update replaces the last song
      const watcher = new MutationObserver((changes) => {
        if (changes.some((c) => c.removedNodes.length)) { window.newSong = true; watcher.disconnect(); }
      });
      watcher.observe(song, {childList: true});
      document.querySelector('#generate').addEventListener(
        'click', () => { window.generateClickedAt = performance.now(); }, {capture: true, once: true});
    }""")
    page.click("#generate")


def song_done(page, shown_chars: int | None = None, timeout_s: float = 300.0) -> float:
    """Wait until the status says the new song is over (it reached its length and finished its line, or
    the model ended it) and the panel shows ``shown_chars`` characters of it (if given); return the
    seconds since the click on Generate, by the page's clock."""
    return page.wait_for_function(
        """(shown) => {
          const status = document.querySelector('#song-status').innerText;
          const text = document.querySelector('#song .song').textContent;
          return window.newSong && / · (reached the length|the model ended the song)/.test(status)
            && (shown === null || text.length === shown) && (performance.now() - window.generateClickedAt) / 1000;
        }""", arg=shown_chars, polling="raf", timeout=timeout_s * 1000).json_value()


# -- writing a song together

SONG_TEXT = "#song-text textarea"
CARDS = "#candidates .candidate"


def press(page, selector: str, touch: bool = False) -> None:
    """Click, or on a touch screen tap, what ``selector`` finds."""
    page.locator(selector).first.tap() if touch else page.locator(selector).first.click()


def ask_for_lines(page, button: str, touch: bool = False, count: int = 4) -> list[str]:
    """Press Next line, Four more or Rewrite (``button``: its elem_id) and wait until its ``count``
    candidates are written (the status names other seeds or another line each time); their lines."""
    before = page.inner_text("#together-status")
    press(page, f"#{button}", touch)
    page.wait_for_function(
        """([before, cards, count]) => {
          const status = document.querySelector('#together-status').innerText;
          return status !== before && status.startsWith('Candidates for')
            && document.querySelectorAll(`${cards}:not(:disabled)`).length === count;
        }""", arg=[before, CARDS, count])
    return page.eval_on_selector_all(CARDS, "cards => cards.map((card) => card.textContent)")


def take_line(page, index: int, expected: str, touch: bool = False) -> None:
    """Choose candidate ``index``; wait until the song's text is ``expected``."""
    press(page, f"{CARDS} >> nth={index}", touch)
    page.wait_for_function("([box, text]) => document.querySelector(box).value === text", arg=[SONG_TEXT, expected])
