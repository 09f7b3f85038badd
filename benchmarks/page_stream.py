"""How fast a person sees a song on the page, against /generate for the same song, in one run.

    python benchmarks/page_stream.py                      # the bundled model: 400, 1,000, 2,000 characters
    python benchmarks/page_stream.py --chars 2000 --repeats 3

Starts app.py and opens its page in Chromium (Playwright, /usr/bin/chromium). For each length it
times the same seeded song (seed 15, "Down by the river", temperature 0.7) three ways: through
/generate with gradio_client (submit to last update), and on the page with colours on and off
("End with the song" off, so that every song runs to its length; the click on Generate to the panel showing the whole song and the status saying so, by the page's
clock). Then Stop, clicked --stop-after seconds into a 2,000-character song, colours on and off: the click to the
status saying "stopped". Then a tap on a character at a phone's width, on a touch screen: does the
tip with the alternatives show? Goals: the page within 1.3x /generate's time at 2,000 characters
with colours on; "stopped" within 1.5 s; the tip shows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from gradio_client import Client  # noqa: E402

from browser import (PHONE, SONG, app_in_chromium, click_generate, open_page, set_colour, set_number, set_seed,  # noqa: E402
                     song_done, song_text)

SEED_LINE, TEMPERATURE, SEED = "Down by the river", 0.7, 15


def time_api(client: Client, chars: int) -> tuple[float, str]:
    """(seconds from submit to the last update, the song)"""
    start = time.perf_counter()
    job = client.submit(seed_line=SEED_LINE, temperature=TEMPERATURE, length=chars, seed=str(SEED), colour=True,
                        end_with_song=False, api_name="/generate")
    lyric = ""
    for lyric, *_ in job:
        pass
    return time.perf_counter() - start, lyric


def end_at_the_length(page) -> None:
    """Every song runs to its length, so that all three paths write the same number of characters."""
    if page.locator("#end-with-song input").is_checked():
        page.click("#end-with-song input")


def time_page(page, chars: int, colour: bool, shown: int | None = None) -> tuple[float, str, str]:
    """(seconds from the click to the whole song shown, the song shown, the status line); ``shown``:
    the characters of the whole song, as /generate wrote it (it finishes its line past ``chars``)."""
    set_colour(page, colour)
    end_at_the_length(page)
    set_number(page, "length", chars)
    click_generate(page)
    seconds = song_done(page, shown)
    return seconds, song_text(page), page.inner_text("#song-status")


def time_stop(page, after_s: float, colour: bool) -> tuple[float, str]:
    """(seconds from the click on Stop to the status saying "stopped", the status)"""
    set_colour(page, colour)
    end_at_the_length(page)
    set_number(page, "length", 2000)
    click_generate(page)
    page.wait_for_timeout(after_s * 1000)
    start = time.perf_counter()
    page.click("#stop")
    # A fast machine may finish the song before the click: then it says so rather than "stopped".
    page.wait_for_function("/ · (stopped|reached the length)$/.test(document.querySelector('#song-status').innerText)",
                           polling="raf", timeout=120_000)
    return time.perf_counter() - start, page.inner_text("#song-status")


def tap_shows_alternatives(browser, url: str) -> bool:
    page = open_page(browser, url, PHONE, touch=True)
    page.fill("#seed-line textarea", SEED_LINE)
    set_number(page, "length", 60)
    click_generate(page)
    song_done(page)
    page.locator(f"{SONG} span[data-top]").nth(30).tap()
    try:
        page.wait_for_selector("#alt-tip:not([hidden])", timeout=5000)
        return True
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError: the tip never showed
        return False
    finally:
        page.context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="LYRICGPT_MODEL for the app (default: the bundled voices)")
    parser.add_argument("--chars", type=int, nargs="+", default=[400, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--stop-after", type=float, default=1.0,
                        help="seconds into the song to click Stop (a 2,000-character song took under 3 s here)")
    args = parser.parse_args()

    with app_in_chromium(args.model) as (app, browser, page):
        client = Client(app.url, verbose=False)
        page.fill("#seed-line textarea", SEED_LINE)
        set_number(page, "temperature", TEMPERATURE)
        set_seed(page, SEED)
        time_api(client, 50)  # warm-up: first-request costs are not streaming costs
        time_page(page, 50, True)
        print(f"seed {SEED}, {SEED_LINE!r}, temperature {TEMPERATURE}; seconds until the whole song is shown "
              f"(median of {args.repeats}):")
        print(f"{'chars':>6} {'/generate':>10} {'page, colours on':>17} {'ratio':>6} {'page, colours off':>18} {'ratio':>6}"
              "  the page's status line (colours on)")
        for chars in args.chars:
            runs = []
            for _ in range(args.repeats):  # interleaved, so a busy machine slows all of them alike
                api = time_api(client, chars)
                runs.append((api, time_page(page, chars, True, len(api[1])), time_page(page, chars, False, len(api[1]))))
            for (_, lyric), (_, on_text, _), (_, off_text, _) in runs:
                assert on_text == lyric == off_text, "the page did not show the song /generate wrote"
            api, on, off = (statistics.median(run[i][0] for run in runs) for i in range(3))
            print(f"{chars:>6} {api:>9.2f}s {on:>16.2f}s {on / api:>5.2f}x {off:>17.2f}s {off / api:>5.2f}x  "
                  f"{runs[-1][1][2]}")
        print(f"Stop clicked {args.stop_after:g} s into a 2,000-character song:")
        for colour in (True, False):
            seconds, status = time_stop(page, args.stop_after, colour)
            print(f"  colours {'on' if colour else 'off'}: 'stopped' after {seconds:.2f} s  ({status})")
        print(f"a tap on a character at {PHONE['width']} px on a touch screen shows its alternatives: "
              f"{'yes' if tap_shows_alternatives(browser, app.url) else 'NO'}")


if __name__ == "__main__":
    main()
