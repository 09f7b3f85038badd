"""What a person meets who asks the page for a rhymed song: how soon its first line shows, and its end.

    python benchmarks/form_page.py                 # 5 seeds each: free, AABB in 1 take, AABB in 4 (the page's)
    python benchmarks/form_page.py --seeds 9 --phone

Starts app.py and opens its page in Chromium (Playwright, /usr/bin/chromium), at a desktop's width or
(--phone) a phone's. At the page's defaults (length 400, "End with the song" on, temperature 0.7),
"Down by the river" and seeds 0, 1, ..., it writes each song three ways, interleaved: free (the page's
default form), couplets AABB with real words in 1 take (a character at a time), and the same in the
page's 4 takes (a line at a time). For each, by the page's clock from the click on Generate: the first
character shown after the person's first line (in takes, it comes with its whole line), and the whole
song shown with its status; medians over the seeds, and the songs' median length.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser import (PHONE, app_in_chromium, choose, click_generate, open_page, set_number, set_seed,  # noqa: E402
                     song_done, song_text)

from lyricgpt.song_request import DEFAULT_TAKES  # noqa: E402

SEED_LINE = "Down by the river"
# (label, the scheme as the page names it, takes)
WAYS = [("free", "free, no rhyme", 1), ("AABB, 1 take", "couplets AABB", 1),
        (f"AABB, {DEFAULT_TAKES} takes", "couplets AABB", DEFAULT_TAKES)]


def seconds_to(page, chars: int) -> float:
    """Seconds from the click on Generate until the new song shows ``chars`` characters, by the page's clock."""
    return page.wait_for_function(
        """(n) => window.newSong && document.querySelector('#song .song').textContent.length >= n
                  && (performance.now() - window.generateClickedAt) / 1000""",
        arg=chars, polling="raf", timeout=300_000).json_value()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--phone", action="store_true", help="a phone's width (390 px) and a touch screen")
    args = parser.parse_args()
    with app_in_chromium() as (app, browser, page):
        if args.phone:
            page.context.close()
            page = open_page(browser, app.url, PHONE, touch=True)
        page.fill("#seed-line textarea", SEED_LINE)
        times: dict[str, list[tuple[float, float, int]]] = {label: [] for label, _, _ in WAYS}
        for seed in range(args.seeds):
            for label, scheme, takes in WAYS:
                choose(page, "rhyme", scheme)
                page.locator("#real-words input").set_checked(scheme != WAYS[0][1])
                set_number(page, "takes", takes)
                set_seed(page, seed)
                click_generate(page)
                first = seconds_to(page, len(SEED_LINE) + 2)
                whole = song_done(page)
                times[label].append((first, whole, len(song_text(page))))
    print(f"page at {'a phone' if args.phone else 'a desktop'}'s width; \"{SEED_LINE}\", length 400, End with the "
          f"song on, temperature 0.7, seeds 0-{args.seeds - 1}; medians, seconds from the click on Generate")
    print("| | first character after the first line | whole song | characters (median) |\n|---|---:|---:|---:|")
    for label, runs in times.items():
        print(f"| {label} | {statistics.median(r[0] for r in runs):.2f} | {statistics.median(r[1] for r in runs):.2f} "
              f"| {statistics.median(r[2] for r in runs):.0f} |")


if __name__ == "__main__":
    main()
