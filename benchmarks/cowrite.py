"""Writing a song together, in Chromium: four candidate lines against one, and 16 pages asking at once.

    python benchmarks/cowrite.py                     # the bundled voices, 9 seeds, 16 pages
    python benchmarks/cowrite.py --repeats 5 --pages 32

Starts app.py (as it serves: the compiled step unless LYRICGPT_COMPILE=0 is set) and opens its page
in Chromium (Playwright, /usr/bin/chromium). On a two-line song, at the page's temperature, each
repeat clicks "Next line" with a seed of its own and times, by the page's clock, each of the four
cards' first character and the four all written; then, through /lines, the longest of the four alone
(its seed, count 1: the same line), and the four. Then --pages pages click "Next line" at once, and
each is timed to its four lines, to its "busy", or to the deadline (a page that hangs).

Goals: each card's first character within 0.5 s of the click; the four on the page within 1.5x the
time the longest of them takes alone (through /lines, which has no page to draw); and 16 pages all
answered or told "busy" at once, none hanging.
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

from browser import CARDS, SONG_TEXT, app_in_chromium, open_page, set_seed  # noqa: E402
from lyricgpt.sampler import DEFAULT_TEMPERATURE  # noqa: E402

SONG = "I walked out in the morning rain\nAnd the wind blew cold across the plain"
DEADLINE_S = 60.0  # a page with no answer by then hangs

# Installed before a click on Next line: the page notes, by its own clock from the click, each card's
# first character, the moment all the cards are written (the status then says so), and a "busy".
WATCH = """(cards) => {
  const seen = window.lines = {clicked: null, first: [], done: null, busy: null, cards: 0};
  const before = document.querySelector('#together-status').innerText;
  document.querySelectorAll(cards).forEach((card) => { card.dataset.stale = 'yes'; });  // the last request's
  document.querySelector('#next-line').addEventListener('click', () => { seen.clicked = performance.now(); },
                                                         {capture: true, once: true});
  const look = () => {
    if (seen.clicked === null || seen.done !== null || seen.busy !== null) return;
    const now = (performance.now() - seen.clicked) / 1000;
    const all = document.querySelectorAll(cards + ':not([data-stale])');
    all.forEach((card, i) => { if (seen.first[i] === undefined && card.textContent.length) seen.first[i] = now; });
    const status = document.querySelector('#together-status').innerText;
    if (status !== before && status.startsWith('Candidates for') && all.length
        && !document.querySelector(cards + ':disabled')) {
      seen.done = now;
      seen.cards = all.length;
    }
    const toasts = [...document.querySelectorAll("[data-testid='toast-text']")].map((t) => t.innerText);
    if (toasts.some((t) => t.includes('busy'))) seen.busy = now;
  };
  new MutationObserver(look).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""


def ask(page) -> None:
    page.evaluate(WATCH, CARDS)
    page.click("#next-line")


def result(page) -> dict | None:
    """What the page saw, once it has its lines or a "busy"; None until then."""
    seen = page.evaluate("window.lines")
    return seen if seen["done"] is not None or seen["busy"] is not None else None


def api_seconds(client: Client, count: int, seed: int) -> tuple[float, list[str]]:
    """(seconds from submit to the last update of /lines, the lines)"""
    start = time.perf_counter()
    job = client.submit(SONG, count, DEFAULT_TEMPERATURE, seed=str(seed), api_name="/lines")
    for _ in job:
        pass
    return time.perf_counter() - start, job.result()[0]


def one_page(page, client: Client, seed: int) -> dict:
    set_seed(page, seed)
    ask(page)
    page.wait_for_function("window.lines.done !== null", timeout=DEADLINE_S * 1000)
    seen = page.evaluate("window.lines")
    shown = page.eval_on_selector_all(CARDS, "cards => cards.map((card) => card.textContent)")
    longest = max(range(len(shown)), key=lambda i: len(shown[i]))
    alone, (line,) = api_seconds(client, 1, seed + longest)
    assert line == shown[longest], "the longest line alone is not the line the page showed"
    four, lines = api_seconds(client, 4, seed)
    assert lines == shown, "/lines did not write the lines the page showed"
    return {"first": max(seen["first"]), "done": seen["done"], "alone": alone, "api4": four,
            "chars": len(shown[longest])}


def many_pages(browser, url: str, n: int) -> list[dict | None]:
    """Each of ``n`` pages asks for lines at once (as near as one driver can: a click each, in turn). A
    page each in a browser of its own (a context): in one, the pages would share the browser's six
    connections to the server, which their open streams hold."""
    pages = []
    for _ in range(n):
        page = open_page(browser, url)
        page.fill(SONG_TEXT, SONG)
        pages.append(page)
    for page in pages:
        ask(page)
    outcomes: list[dict | None] = [None] * n
    deadline = time.monotonic() + DEADLINE_S
    while any(o is None for o in outcomes) and time.monotonic() < deadline:
        for i, page in enumerate(pages):
            outcomes[i] = outcomes[i] or result(page)
        time.sleep(0.1)
    for page in pages:
        page.context.close()
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="LYRICGPT_MODEL for the app (default: the bundled voices)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--pages", type=int, default=16)
    args = parser.parse_args()

    with app_in_chromium(args.model) as (app, browser, page):
        client = Client(app.url, verbose=False)
        page.fill(SONG_TEXT, SONG)
        one_page(page, client, 1)  # warm-up: first-request costs are not writing costs
        runs = [one_page(page, client, 100 + 10 * r) for r in range(args.repeats)]
        print(f"four candidate lines on a two-line song, temperature {DEFAULT_TEMPERATURE}, {args.repeats} seeds "
              "(seconds; median, then the worst):")
        for key, what in [("first", "the last card's first character, from the click"),
                          ("done", "all four written, on the page"),
                          ("api4", "all four, through /lines"),
                          ("alone", "the longest of them alone, through /lines")]:
            values = [run[key] for run in runs]
            print(f"  {what:<50} {statistics.median(values):6.2f}  {max(values):6.2f}")
        ratios = [run["done"] / run["alone"] for run in runs]
        print(f"  four on the page / the longest alone: median {statistics.median(ratios):.2f}x, worst "
              f"{max(ratios):.2f}x (goal 1.5x); through /lines: median "
              f"{statistics.median(run['api4'] / run['alone'] for run in runs):.2f}x; the longest lines: "
              f"{sorted(run['chars'] for run in runs)} characters")
        outcomes = many_pages(browser, app.url, args.pages)
        answered = [o for o in outcomes if o and o["done"] is not None]
        busy = [o for o in outcomes if o and o["done"] is None]
        full = [o for o in answered if o["cards"] == 4]
        print(f"{args.pages} pages asking at once: {len(full)} got four lines, {len(answered) - len(full)} fewer "
              f"(the engine had places for only some), {len(busy)} were told 'busy', "
              f"{outcomes.count(None)} hung (no answer in {DEADLINE_S:g} s)")
        if answered:
            firsts = sorted(min(o["first"]) for o in answered if o["first"])
            print(f"  answered: first character median {statistics.median(firsts):.2f} s, worst {firsts[-1]:.2f} s; "
                  f"all written median {statistics.median(o['done'] for o in answered):.2f} s, worst "
                  f"{max(o['done'] for o in answered):.2f} s")
        if busy:
            print(f"  told 'busy' after {statistics.median(o['busy'] for o in busy):.2f} s (median), "
                  f"{max(o['busy'] for o in busy):.2f} s at worst")


if __name__ == "__main__":
    main()
