"""A song to keep, in app.py served for real: songs end where the model ends them (the switch on and
off, through /generate); the seed in any status writes the same song again; and in Chromium, at a
desktop's and a phone's width, the share link opened in a fresh browser writes the same song, the
download holds it with what wrote it, "Write another" draws a new seed, and a malformed link gets a
message. The model is a bigram whose songs end soon after the shortest a song may be (``ending_lm``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gradio_client import Client

from browser import CHROMIUM, DESKTOP, PHONE, chromium, open_page, set_number, share_link, song_text
from live_app import running_app
from lyricgpt.data import SONG_BREAK
from lyricgpt.sampler import MIN_SONG_CHARS

DONE = r" · (the model ended the song|reached the length)$"


@pytest.fixture(scope="module")
def app(subprocess_env, ending_model_dir):
    with running_app(subprocess_env, LYRICGPT_MODEL=str(ending_model_dir)) as app:
        yield app


@pytest.fixture(scope="module")
def client(app) -> Client:
    return Client(app.url, verbose=False)


def test_the_end_switch_on_and_off_through_the_api(client, ending_lm):
    lyric, _, status = client.predict("Hello", 1.0, 2000, seed="3", api_name="/generate")
    written = "".join(ending_lm.stream("Hello", 2000, 1.0, seed=3, end_with_song=True))
    assert written.endswith(SONG_BREAK) and lyric == "Hello" + written[:-len(SONG_BREAK)]
    assert MIN_SONG_CHARS < len(lyric) - len("Hello") < 2000 and status.endswith(" · the model ended the song")
    lyric, _, status = client.predict("Hello", 1.0, 600, seed="3", end_with_song=False, api_name="/generate")
    assert lyric == "Hello" + "".join(ending_lm.stream("Hello", 600, 1.0, seed=3))
    assert status.startswith("600 of 600 characters") and status.endswith(" · reached the length")


def test_the_seed_in_the_status_writes_the_same_song_again(client):
    lyric, _, status = client.predict("Hello", 1.0, 2000, seed="randomize", api_name="/generate")
    seed = re.search(r" · seed (\d+)", status).group(1)
    assert client.predict("Hello", 1.0, 2000, seed=seed, api_name="/generate")[0] == lyric


def shown_status(page) -> str:
    page.wait_for_function(f"/{DONE}/.test(document.querySelector('#song-status').innerText)")
    return page.inner_text("#song-status")


def without_speed(status: str) -> str:
    """The status but how fast the song came: what wrote it, and how it ended."""
    return re.sub(r"(characters).*? · ", r"\1 · ", status, count=1)


@pytest.fixture(scope="module")
def browser(app):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with chromium() as browser:
        yield browser


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_share_download_and_write_another(app, browser, viewport):
    page = open_page(browser, app.url, viewport)
    page.fill("#seed-line textarea", "Hello")
    set_number(page, "length", 600)
    page.click("#generate")
    status = shown_status(page)
    seed = re.search(r" · seed (\d+)", status).group(1)
    song, link = song_text(page), share_link(page)
    assert song.startswith("Hello") and not song.endswith("\n")
    assert f"seed={seed}" in link and "line=Hello" in link and link.startswith(app.url)

    with page.expect_download() as download:
        page.click("#download")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    header, kept = text.split("\n\n", 1)
    assert kept == song + "\n"
    fields = dict(line.split(": ", 1) for line in header.splitlines()[1:])
    assert (fields["line"], fields["seed"], fields["length"], fields["end"], fields["link"]) == ("Hello", seed, "600",
                                                                                                "on", link)
    assert download.value.suggested_filename == f"hello-seed-{seed}.txt"

    fresh = open_page(browser, link, viewport)  # a new browser context: nothing shared but the link
    try:
        assert without_speed(shown_status(fresh)) == without_speed(status)
        assert song_text(fresh) == song
    finally:
        fresh.context.close()

    # How fast the song came is counted from this click, not from Generate's, seconds ago.
    page.evaluate("document.querySelector('#write-another').addEventListener("
                  "'click', () => { window.anotherAt = performance.now(); }, {capture: true, once: true})")
    page.click("#write-another")
    page.wait_for_function(f"(seed) => !document.querySelector('#song-status').innerText.includes(' · seed ' + seed + ' ')"
                           f" && /{DONE}/.test(document.querySelector('#song-status').innerText)", arg=seed)
    assert song_text(page).startswith("Hello") and song_text(page) != song
    assert share_link(page) != link
    said = float(re.search(r" at ([\d,]+) chars/s", page.inner_text("#song-status")).group(1).replace(",", ""))
    seen = page.evaluate("(chars) => chars / ((performance.now() - window.anotherAt) / 1000)",
                         len(song_text(page)) - len("Hello"))
    assert said >= 0.5 * seen, f"the status says {said:.0f} chars/s; the song came at {seen:.0f} chars/s or more"
    page.context.close()


def test_at_temperature_0_neither_the_link_nor_the_file_names_a_seed(app, browser):
    page = open_page(browser, app.url, DESKTOP)
    try:
        page.fill("#seed-line textarea", "Hello")
        set_number(page, "temperature", 0)
        page.click("#generate")
        assert " · seed " not in shown_status(page)  # every seed writes the same song
        link = share_link(page)
        assert "temperature=0.0" in link and "seed=" not in link
        with page.expect_download() as download:
            page.click("#download")
        header = Path(download.value.path()).read_text(encoding="utf-8").split("\n\n", 1)[0]
        assert "seed" not in header and download.value.suggested_filename == "hello.txt"
    finally:
        page.context.close()


def test_a_malformed_link_gets_a_message_and_writes_nothing(app, browser):
    page = open_page(browser, f"{app.url}/?line=Hi&temperature=hot&seed=4", PHONE)
    try:
        page.wait_for_selector("text=This link cannot write a song: temperature must be a number written with the digits 0-9, got 'hot'")
        page.wait_for_timeout(500)
        assert song_text(page) == "" and page.inner_text("#song-status") == ""
    finally:
        page.context.close()
