"""The lyrics studio in a real browser (Chromium driven by Playwright): the empty page; a seed line
with digits, noticed before the song starts; the sliders; the song growing in its one panel by
appending (earlier characters keep their nodes, colours and hover), followed to its end unless the
reader scrolls up; Stop during a long song, and
the app writing again; Copy; a bad setting leaves the song in place; hover, select and switch heads
to look inside; and a tap on a touch screen at a phone's width. A song's form: a rhymed song shows
each line's letter, marks where the form steered, and its link sets the form (and the takes of each
line) again; a bad form or takes, in a link or typed, gets a message.

Run as a script to take the README's screenshot of the page mid-song:
    python tests/test_app_browser.py docs/screenshot.png      # LYRICGPT_MODEL picks another model
"""

from __future__ import annotations

import os
import re
import signal
import socketserver
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]  # run as a script too
from browser import (CARDS, CHROMIUM, PHONE, SONG, SONG_TEXT, ask_for_lines, choose, chromium_page,  # noqa: E402
                     click_generate, open_page, press, set_number, set_seed, share_link, song_text, take_line)
from live_app import ROOT, running_app  # noqa: E402
from lyricgpt.sampler import DEFAULT_TEMPERATURE  # noqa: E402
from lyricgpt.song_request import DEFAULT_TAKES, MAX_SONG_TEXT, MAX_TEXT  # noqa: E402


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
def app(subprocess_env, slow_model_dir, second_voice_dir):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with running_app(subprocess_env, LYRICGPT_MODEL=f"{slow_model_dir},{second_voice_dir}") as app:
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


def test_the_empty_page_has_no_attention_bar_and_digits_are_noticed_before_the_song(studio):
    page = studio
    assert not page.is_visible("#inspect-bar") and not page.is_visible(f"{SONG} >> xpath=..//div[@class='legend']")
    page.fill("#seed-line textarea", "Route 66 at 3")
    page.wait_for_selector("#seed-notice :text('numbers written as words')")
    assert "66 as 'sixty-six', 3 as 'three'" in page.inner_text("#seed-notice")
    page.fill("#seed-line textarea", "")
    page.wait_for_function("document.querySelector('#seed-notice').innerText.trim() === ''")


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
    early = page.locator(f"{SONG} span[data-top]").first.element_handle()  # a node that must stay as it is
    colour = early.get_attribute("class")

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
    # Appended, never re-drawn: the first character is the same node, with its colour and its hover.
    assert early.evaluate("(span) => span.isConnected") and early.get_attribute("class") == colour
    assert page.evaluate("window.songGaps") == 0  # every update followed on from the one before
    early.hover()
    page.wait_for_selector("#alt-tip:not([hidden])")


def test_the_panel_follows_the_song_until_the_reader_scrolls_up(studio):
    page = studio
    seed_line = page.input_value("#seed-line textarea")
    page.fill("#seed-line textarea", "la\n" * 40)  # more lines than the panel holds, from the first update
    set_number(page, "length", 2000)
    page.click("#generate")
    scroller = "document.querySelector('#song .song').closest('.html-container')"
    page.wait_for_function(f"(() => {{ const box = {scroller}; return box.scrollHeight > box.clientHeight + 200"
                           " && box.scrollTop + box.clientHeight >= box.scrollHeight - 30; })()")  # it follows
    page.evaluate(f"{scroller}.scrollTop = 0")  # the reader goes back to the top to read
    shown = len(song_text(page))
    page.wait_for_timeout(700)
    assert len(song_text(page)) > shown, "the song did not grow, so this test showed nothing"
    assert page.evaluate(f"{scroller}.scrollTop") == 0, "the panel took the reader back down"
    page.click("#stop")
    page.wait_for_function("document.querySelector('#song-status').innerText.endsWith(' · stopped')")
    page.fill("#seed-line textarea", seed_line)


def write_a_song(page) -> None:
    """Click Generate and wait until the status says the new song was written to its end."""
    click_generate(page)
    page.wait_for_function("window.newSong && / · (reached the length|the model ended the song)/.test("
                           "document.querySelector('#song-status').innerText)")


def last_char_box(page) -> dict:
    """Where the song's last character is on the screen, and the screen's height."""
    return page.evaluate("""() => { const spans = document.querySelectorAll('#song .song span[data-top]');
      const box = spans[spans.length - 1].getBoundingClientRect();
      return {top: box.top, bottom: box.bottom, screen: innerHeight}; }""")


def test_enter_writes_the_song_stop_is_live_only_meanwhile_and_long_lines_go_on_indented(studio):
    page = studio  # 1280 px wide
    seed_line = page.input_value("#seed-line textarea")
    stop, box = page.locator("#stop"), page.locator("#seed-line textarea")
    # Nothing is being written: Stop greys out a moment after the last test's song says "stopped".
    page.wait_for_function("document.querySelector('#stop').disabled")
    long_line = "Over the hills and far away where the river runs and the swallows play " * 2
    box.fill(long_line)
    box.press("Shift+Enter")  # a new line, not a song
    box.press_sequentially("and back")
    status = page.inner_text("#song-status")
    page.wait_for_timeout(300)
    assert box.input_value() == long_line + "\nand back" and page.inner_text("#song-status") == status
    set_number(page, "length", 2000)
    scrolled = page.evaluate("scrollY")
    box.press("Enter")
    page.wait_for_function("(seed) => document.querySelector('#song .song').textContent.startsWith(seed)"
                           " && document.querySelectorAll('#song .song span[data-top]').length > 20",
                           arg=long_line + "\nand back")
    assert box.input_value() == long_line + "\nand back"  # Enter wrote the song: no line break added
    assert stop.is_enabled() and page.evaluate("scrollY") == scrolled  # on a desktop the page stays where it was
    # The first line is wider than the panel: what wraps goes on indented, so one line never looks like two.
    indent = page.evaluate("""() => { const spans = [...document.querySelector('#song .song .line').children];
      const first = spans[0].getBoundingClientRect();
      const next = spans.find((s) => s.getBoundingClientRect().top > first.bottom - 2);
      return next.getBoundingClientRect().left - first.left; }""")
    assert indent > 8
    layer, head = page.locator("#attention-layer").bounding_box(), page.locator("#attention-head").bounding_box()
    assert abs(layer["y"] - head["y"]) < 2  # the two menus side by side
    stop.click()
    page.wait_for_function("document.querySelector('#song-status').innerText.endsWith(' · stopped')")
    page.wait_for_function("document.querySelector('#stop').disabled")
    page.fill("#seed-line textarea", seed_line)


def test_at_a_phones_width_the_song_comes_into_view_and_stays_there(app, studio):
    page = open_page(studio.context.browser, app.url, PHONE, touch=True)
    try:
        assert page.locator("#stop").is_disabled()
        page.fill("#seed-line textarea", "la\n" * 40)  # more lines than the panel holds, from the first update
        set_number(page, "length", 2000)
        assert page.locator("#song").bounding_box()["y"] > PHONE["height"]  # under the controls, out of sight
        page.locator("#seed-line textarea").press("Enter")
        page.wait_for_function("Math.abs(document.querySelector('#gpt-label').getBoundingClientRect().top) < 20")
        written = page.locator(f"{SONG} span[data-top]").count()
        page.wait_for_function(f"document.querySelectorAll('#song .song span[data-top]').length > {written + 150}")
        last = last_char_box(page)
        assert 0 <= last["top"] and last["bottom"] <= last["screen"], f"the newest character is off the screen: {last}"
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # the menus too
        heading = page.inner_text("#gpt-label")
        page.click("#stop")
        page.wait_for_function("document.querySelector('#stop').disabled")
        link = share_link(page)
        page.locator("#voice label", has_text="songs of songs.txt").tap()  # the song on show is still the first voice's
        page.wait_for_function("document.querySelector('#model-status').innerText.includes('0.01 M parameters')")
        assert page.inner_text("#gpt-label") == heading and share_link(page) == link
    finally:
        page.context.close()


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
    write_a_song(page)
    assert len(song_text(page)) >= len("Stop me if you can") + 30  # 30, then to the end of the line or verse
    page.click("#colour input")  # on again, for the tests that follow
    write_a_song(page)
    assert page.locator("#song .song span[data-top]").count() == len(song_text(page)) - len("Stop me if you can")


def test_copy_puts_the_song_on_the_clipboard(app, studio):
    page = studio
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url)
    page.click("#copy")
    page.wait_for_selector("#copy:text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == song_text(page)


def look_inside(page, tap: bool = False) -> None:
    """Hover a generated character (or tap it on a touch screen): five alternatives. Select it:
    shading over its window, which changes with the head."""
    chars = page.locator(f"{SONG} span[data-top]")
    target = chars.nth(20)
    target.tap() if tap else target.hover()
    page.wait_for_selector("#alt-tip:not([hidden])")
    assert page.locator("#alt-tip tr").count() >= 5
    assert page.locator("#alt-tip tr.drawn").count() == 1
    if not tap:
        target.click()
    page.wait_for_selector(f"{SONG} span.attended")
    assert page.is_visible("#alt-tip"), "the tip went again"
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


def test_at_a_phones_width_one_readable_panel_that_a_tap_looks_inside(app, studio):
    page = open_page(studio.context.browser, app.url, PHONE, touch=True)  # one Playwright per process
    try:
        page.fill("#seed-line textarea", "Small screen")
        set_number(page, "length", 120)
        write_a_song(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing wider than the phone
        box = page.locator("#song").bounding_box()
        assert box["width"] <= PHONE["width"] and box["x"] >= 0
        look_inside(page, tap=True)
    finally:
        page.context.close()


def test_a_second_voice_with_its_own_examples_bigram_and_look_inside(studio):
    page = studio
    set_number(page, "length", 20)
    write_a_song(page)  # a song of the first voice on show
    heading = page.inner_text("#gpt-label")
    page.locator("#voice label", has_text="songs of songs.txt").click()
    page.wait_for_function("document.querySelector('#model-status').innerText.includes('0.01 M parameters')")
    assert page.inner_text("#gpt-label") == heading  # still the voice that wrote the song on show
    page.locator("#examples button", has_text="Blue summer night").click()  # the voice's own first lines
    page.wait_for_function("document.querySelector('#seed-line textarea').value == 'Blue summer night'")
    page.click("#compare input")
    page.wait_for_selector("#bigram-label :text('counted from the same training songs')")
    set_number(page, "length", 40)
    write_a_song(page)
    assert page.locator(f"{SONG} span[data-top]").count() >= 40
    page.wait_for_function("document.querySelector('#bigram-song').innerText.length >= 'Blue summer night'.length + 40")
    assert "songs of songs.txt" in page.inner_text("#gpt-label")  # a song of its own: now the heading names it
    assert page.locator("#attention-layer option").count() == 2  # its one layer, and "all layers"
    target = page.locator(f"{SONG} span[data-top]").nth(30)
    target.hover()
    page.wait_for_selector("#alt-tip:not([hidden])")
    assert page.locator("#alt-tip tr.drawn").count() == 1
    target.click()
    page.wait_for_selector(f"{SONG} span.attended")
    assert page.locator(f"{SONG} span.attended").count() == int(target.get_attribute("data-window"))
    # Choosing another voice leaves what the songs on show say of theirs as it was: headings and link.
    labels = page.inner_text("#gpt-label"), page.inner_text("#bigram-label")
    page.locator("#voice label").first.click()
    page.wait_for_function("!document.querySelector('#model-status').innerText.includes('0.01 M parameters')")
    assert (page.inner_text("#gpt-label"), page.inner_text("#bigram-label")) == labels
    assert "voice=songs+of+songs.txt" in page.input_value("#share-link textarea, #share-link input")
    # The first voice has no songs of its own here: its song comes with no comparison, and the page says why.
    page.click("#generate")
    page.wait_for_selector("#bigram-label :text('would not compare like with like')")
    assert page.inner_text("#gpt-label") == heading
    page.click("#stop")
    page.wait_for_function("document.querySelector('#stop').disabled")
    page.click("#compare input")


# --- issue 33: a song's form ---------------------------------------------------------------------------

def song_done(scheme: str) -> str:
    """A page function: true once the status says a song in ``scheme`` is written."""
    return (f"/ · form: rhyme {scheme}\\b.* · (the model ended the song|reached the length)/"
            f".test(document.querySelector('#song-status').innerText)")


def test_a_rhymed_song_shows_each_lines_letter_and_its_link_sets_the_form_again(studio):
    page = studio
    page.fill("#seed-line textarea", "Over the hills")
    choose(page, "rhyme", "couplets AABB")
    choose(page, "syllables", "6 a line")
    page.click("#real-words input")
    assert page.input_value("#takes input[type=number]") == str(DEFAULT_TAKES)
    set_number(page, "takes", 3)  # not the default: the link must set it
    set_number(page, "length", 100)
    page.click("#generate")
    page.wait_for_function(song_done("AABB"))
    song, link = song_text(page), share_link(page)
    assert "3 takes a line" in page.inner_text("#song-status")
    assert song.startswith("Over the hills") and len(song.split("\n\n")[0].split("\n")) == 4  # a stanza of four lines
    letters = page.eval_on_selector_all(f"{SONG} .rhyme-letter", "spans => spans.map(s => s.dataset.letter)")
    assert len(letters) >= 4 and "".join(letters) == ("AABB" * 10)[:len(letters)]
    # Each line's letter shows at its end, drawn by the page's CSS: no part of the song's text, nor of a copy.
    first = page.locator(f"{SONG} .rhyme-letter").first
    assert first.evaluate("(s) => getComputedStyle(s, '::after').content") == '"A"' and first.bounding_box()["width"] > 0
    assert page.eval_on_selector_all(f"{SONG} .rhyme-letter", "spans => spans.map(s => s.textContent).join('')") == ""
    # Where the form took most of the model's probability, the character is marked and its tip says so.
    steered = page.locator(f"{SONG} span.steered")
    assert steered.count() > 0 and "the song's form steered it" in page.inner_text("#song .legend")
    steered.first.hover()
    page.wait_for_selector("#alt-tip:not([hidden])")
    assert "The song's form steered here: it left the model" in page.inner_text("#alt-tip")
    assert page.locator("#alt-tip tr").count() >= 5  # still what the model itself weighed

    assert "rhyme=AABB" in link and "syllables=6" in link and "words=on" in link and "takes=3" in link
    fresh = open_page(page.context.browser, link)  # a new browser context: nothing shared but the link
    try:
        fresh.wait_for_function(song_done("AABB"))
        assert song_text(fresh) == song
        assert fresh.input_value("#rhyme input") == "couplets AABB" and fresh.input_value("#syllables input") == "6 a line"
        assert fresh.is_checked("#real-words input") and fresh.input_value("#takes input[type=number]") == "3"
    finally:
        fresh.context.close()
    choose(page, "rhyme", "free, no rhyme")  # as the tests after this one expect
    choose(page, "syllables", "free")
    page.click("#real-words input")
    set_number(page, "takes", DEFAULT_TAKES)


def test_a_bad_form_in_a_link_or_the_form_box_gets_a_message_and_the_page_writes_on(app, studio):
    page = open_page(studio.context.browser, app.url)
    try:
        for key, value, setting, shown in [("rhyme", "A1B", "rhyme scheme", "'A1B'"),
                                           ("syllables", "8,x", "syllables", "'8,x'"),
                                           ("words", "maybe", "real words", "'maybe'"),
                                           ("takes", "0", "takes must be between 1 and 8", "0"),
                                           ("takes", "abc", "takes must be a number", "'abc'")]:
            message = open_from_link(page, app, {"line": "Hi", key: value})
            assert message.startswith("This link cannot write a song: ") and setting in message, message
            assert f"got {shown}" in message
        page.fill("#seed-line textarea", "Hi")
        page.fill("#rhyme input", "A" * 40)  # a scheme of one's own, typed into the box
        page.press("#rhyme input", "Enter")
        set_number(page, "length", 30)
        page.click("#generate")
        page.wait_for_selector("[data-testid='toast-text']:has-text('rhyme scheme')")
        assert song_text(page) == ""
        page.fill("#rhyme input", "ABAC")
        page.press("#rhyme input", "Enter")
        page.click("#generate")
        page.wait_for_function(song_done("ABAC"))
        assert song_text(page).startswith("Hi")
    finally:
        page.context.close()


# --- issue 36: hostile links, and a song whose engine dies ----------------------------------------

class Listener(socketserver.ThreadingTCPServer):
    """A local port standing for another host: it counts the connections made to it."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), socketserver.BaseRequestHandler)
        self.heard = 0
        self.host = f"127.0.0.1:{self.server_address[1]}"

    def process_request(self, request, client_address) -> None:
        self.heard += 1
        super().process_request(request, client_address)


@pytest.fixture
def outside():
    with Listener() as listener:
        threading.Thread(target=listener.serve_forever, daemon=True).start()
        yield listener
        listener.shutdown()


def markup(host: str) -> list[str]:
    """What issue 36's links put into the page: an outside image, a link, a form, giant text."""
    return [f"<img src=//{host}/px.png>", f"<a href=//{host}/a>Log in</a>", f"<form action=//{host}/><input",
            "<h1 style=font-size:90px>HACKED</h1>"]


def open_from_link(page, app, query: dict) -> str:
    """Open the page from a link with ``query`` (a list: the key again); the pop-up's text, as read."""
    page.goto(f"{app.url}/?{urllib.parse.urlencode(query, doseq=True)}")
    toast = page.wait_for_selector("[data-testid='toast-text']")
    assert page.locator("[data-testid='toast-text'] :is(img, a, form, input, h1)").count() == 0
    return toast.inner_text()


def test_a_links_markup_shows_as_text_and_the_browser_asks_no_other_host(app, studio, outside):
    page = open_page(studio.context.browser, app.url)
    try:
        page.evaluate(f"new Promise((done) => {{ const img = new Image(); img.onerror = img.onload = done; "
                      f"img.src = 'http://{outside.host}/check.png'; }})")
        assert outside.heard == 1, "the listener did not hear a request made on purpose, so it proves nothing"
        outside.heard = 0
        for value in markup(outside.host):
            assert f"there is no voice '{value[:36]}" in open_from_link(page, app, {"voice": value})  # cut at 40
        value = markup(outside.host)[0]
        for key in ("seed", "temperature", "length", "top_k", "top_p", "end"):
            assert value[:30] in open_from_link(page, app, {"line": "Hi", key: value}), key
        # A first line is text: it goes into the box as written and is sung as far as the voice can read it.
        page.goto(f"{app.url}/?{urllib.parse.urlencode({'line': value, 'length': 5})}")
        page.wait_for_function("document.querySelector('#song-status')?.innerText.includes('characters')")
        assert page.input_value("#seed-line textarea") == value
        page.wait_for_selector("#seed-notice :text('does not know')")
        assert "'<' x1" in page.inner_text("#seed-notice")  # as written, not markdown's or HTML's
        assert page.locator("#song :is(img, a, form, h1), #seed-notice :is(img, a, form, h1)").count() == 0
        page.wait_for_timeout(500)  # what must be shown is that nothing comes: there is no event to wait on
        assert outside.heard == 0, "a link made the page ask another host for something"
    finally:
        page.context.close()


def test_a_link_that_gives_a_setting_twice_says_so_and_the_page_states_the_first_lines_limit(app, studio):
    page = open_page(studio.context.browser, app.url)
    try:
        assert "it gives seed twice ('1' and '2')" in open_from_link(page, app, {"line": "Hi", "seed": ["1", "2"]})
        assert page.get_attribute("#seed-line textarea", "maxlength") == str(MAX_TEXT)
        assert f"up to {MAX_TEXT:,} characters" in page.inner_text("#seed-line")
    finally:
        page.context.close()


def engine_processes(app) -> list[int]:
    """The app's engines: one process per voice, each a child of the app."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # a process that ended meanwhile
        if ppid == app.process.pid and b"lyricgpt.engine" in command:
            children.append(int(stat.parent.name))
    return children


def test_when_the_engine_dies_mid_song_the_song_stays_and_its_status_says_it_failed(app, studio):
    page = studio
    page.fill("#seed-line textarea", "Until the engine stops")
    set_number(page, "length", 2000)
    click_generate(page)
    page.wait_for_function("window.newSong && document.querySelectorAll('#song .song span[data-top]').length >= 20")
    engines = engine_processes(app)
    assert len(engines) == 2, f"expected an engine per voice, found {engines}"
    for pid in engines:
        os.kill(pid, signal.SIGKILL)
    page.wait_for_function("document.querySelector('#song-status').innerText.includes('this song failed')")
    status = page.inner_text("#song-status [data-testid='markdown']").strip()
    assert re.fullmatch(r"\d+ of 2000 characters at .* · seed \d+ · Sorry, this song failed: the engine stopped", status)
    assert "this song failed" in page.inner_text("[data-testid='toast-text']")
    assert len(song_text(page)) > len("Until the engine stops") + 20  # the song so far is kept
    # Gradio keeps its red "Error" labels in the page, unseen (and letting clicks through) where the
    # event hides its progress: none over the song, its toolbar or the status.
    assert page.evaluate("""() => [...document.querySelectorAll('#song .error, #song-status .error')].filter((label) => {
      const tracker = getComputedStyle(label.closest('[data-testid=status-tracker]'));
      return tracker.opacity !== '0' || tracker.pointerEvents !== 'none'; }).length""") == 0
    page.click("#copy")  # the toolbar still answers
    start = time.monotonic()  # each engine starts again; the tests after this one need them
    while True:
        try:
            Client(app.url, verbose=False).predict("Again", 0.0, 5, api_name="/generate")
            break
        except AppError:
            assert time.monotonic() - start < 60, "the engine did not start again"
            time.sleep(0.5)


# --- issue 34: writing a song together -----------------------------------------------------------------

FAST_VOICE = "songs of songs.txt"  # the second voice: it writes a line in a moment, where the first takes seconds
TYPED = "Cold river road"


def together_status(page) -> str:
    return page.inner_text("#together-status")


def write_together(page, touch: bool) -> None:
    """Type a line, choose the next of four, rewrite the first line, undo that, add words of one's own
    and continue: the song's text is exactly what those steps leave, in its box and in the panel, with
    the person's characters plain and the model's coloured."""
    press(page, f"#voice label:has-text('{FAST_VOICE}')", touch)
    set_seed(page, 7)
    page.fill(SONG_TEXT, TYPED)
    offered = ask_for_lines(page, "next-line", touch)
    assert len(offered) == 4 and all(offered) and not any("\n" in line for line in offered)
    assert "seeds 7-10" in together_status(page)
    song = f"{TYPED}\n{offered[2]}"
    take_line(page, 2, song, touch)
    page.wait_for_function("(text) => document.querySelector('#song .song').textContent === text", arg=song)
    assert page.locator(f"{SONG} span.seed").count() == len(TYPED) + 1  # the line break it took is the person's
    assert page.locator(f"{SONG} span[data-top]").count() == len(offered[2])
    assert page.inner_text("#song-status") == "Written together: 2 lines (1 yours, 1 LyricGPT's)"
    assert page.input_value("#share-link textarea, #share-link input").startswith("A song written together has no link")
    assert page.locator(CARDS).count() == 0  # the candidates went with the choice

    page.fill("#line-number input", "1")
    rewritten = ask_for_lines(page, "rewrite", touch)
    assert together_status(page).startswith(f"Candidates for line 1 ('{TYPED}')")
    take_line(page, 0, f"{rewritten[0]}\n{offered[2]}", touch)
    press(page, "#undo", touch)
    page.wait_for_function("([box, text]) => document.querySelector(box).value === text", arg=[SONG_TEXT, song])

    mine = f"{song}\nand I sang"  # words of one's own, after the model's
    page.fill(SONG_TEXT, mine)
    set_number(page, "length", 30)
    if page.locator("#end-with-song input").is_checked():
        press(page, "#end-with-song input", touch)
    press(page, "#continue", touch)
    page.wait_for_function("document.querySelector('#song-status').innerText.startsWith('Continued: ')"
                           " && document.querySelector('#song-status').innerText.endsWith(' · reached the length')")
    text = page.input_value(SONG_TEXT)
    assert text.startswith(mine) and len(text) >= len(mine) + 30 and song_text(page) == text
    assert page.locator(f"{SONG} span.seed").count() == len(TYPED) + 1 + len("\nand I sang")
    assert page.evaluate("window.songGaps") == 0


def test_a_song_the_page_writes_is_the_song_to_write_together_and_undo_brings_back_the_one_before(studio):
    page = studio
    set_number(page, "length", 20)
    songs = []
    for first_line in ("Over the sea", "Under the hill"):
        page.fill("#seed-line textarea", first_line)
        write_a_song(page)
        page.wait_for_function("document.querySelector('#song-text textarea').value"
                               " === document.querySelector('#song .song').textContent")
        songs.append(song_text(page))
    assert songs[1].startswith("Under the hill")
    page.click("#undo")
    page.wait_for_function("([box, text]) => document.querySelector(box).value === text", arg=[SONG_TEXT, songs[0]])
    assert song_text(page) == songs[0]


def test_write_a_song_together_at_a_desktops_width(app, studio):
    page = open_page(studio.context.browser, app.url)
    try:
        write_together(page, touch=False)
        with page.expect_download() as download:
            page.click("#download")
        kept = Path(download.value.path()).read_text(encoding="utf-8")
        text = page.input_value(SONG_TEXT)
        assert kept.startswith(f"You and LyricGPT ({FAST_VOICE}) wrote this song together.") and text in kept
        assert f"  1  you       {TYPED}\n  2  LyricGPT  " in kept and "  3  both      and I sang" in kept
    finally:
        page.context.close()


def test_write_a_song_together_on_a_phone(app, studio):
    page = open_page(studio.context.browser, app.url, PHONE, touch=True)
    try:
        write_together(page, touch=True)
        cards = page.locator("#candidates")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert cards.bounding_box() is None or cards.bounding_box()["width"] <= PHONE["width"]
    finally:
        page.context.close()


def test_bad_input_while_writing_together_gets_a_message_and_leaves_the_song_as_it_was(app, studio):
    page = open_page(studio.context.browser, app.url)

    def refused(button: str, message: str) -> None:
        text, shown = page.input_value(SONG_TEXT), song_text(page)
        page.click(f"#{button}")
        page.wait_for_selector(f"[data-testid='toast-text']:has-text(\"{message}\")")
        assert page.input_value(SONG_TEXT) == text and song_text(page) == shown

    try:
        page.locator(f"#voice label:has-text('{FAST_VOICE}')").click()
        refused("undo", "There is nothing to undo")
        refused("four-more", "Ask for the next line, or for a line rewritten, first")
        page.fill(SONG_TEXT, "One line\n\nand another")
        page.fill("#line-number input", "3")
        refused("rewrite", "the line must be between 1 and 2, got 3: the song has 2 lines, not counting blank ones")
        page.fill(SONG_TEXT, "Route 66 \U0001f3b5")  # odd characters: read as the model can, and said so
        ask_for_lines(page, "next-line")
        assert "numbers written as words" in together_status(page) and "does not know" in together_status(page)
        assert page.get_attribute(SONG_TEXT, "maxlength") == str(MAX_SONG_TEXT)  # no more can be typed
        page.fill(SONG_TEXT, ("la " * MAX_SONG_TEXT)[:MAX_SONG_TEXT])
        refused("continue", "the song is as long as a song may be here")
    finally:
        page.context.close()


def take_screenshot(path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with running_app(env) as app, chromium_page(app.url) as page:
        page.fill("#seed-line textarea", "Down by the river where the old mill stands")
        set_number(page, "length", 600)
        choose(page, "rhyme", "ballad ABCB")  # a rhymed song: each line's letter shows at its end
        page.click("#real-words input")
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#song .song span[data-top]').length > 330 || "
                               "/ · (reached the length|the model ended the song)/.test("
                               "document.querySelector('#song-status').innerText)")
        page.click("#stop")
        page.locator(f"{SONG} span[data-top]").nth(150).click()  # the alternatives and the attention view
        page.wait_for_selector(f"{SONG} span.attended")
        page.screenshot(path=str(path), full_page=True)


if __name__ == "__main__":
    take_screenshot(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot.png")
