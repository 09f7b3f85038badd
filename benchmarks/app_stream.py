"""How much of the sampler's speed survives the trip through the web app.

    python benchmarks/app_stream.py                      # the bundled model, 500 characters, 5 repeats
    python benchmarks/app_stream.py --model DIR --chars 1000 --repeats 7

Starts app.py and streams songs through it two ways, each with the colour view on (every character
carrying its alternatives, for the page's "look inside" view) and off: with gradio_client,
and as a plain HTTP event stream, the route a browser or curl reads (gradio_client polls for
messages every 50 ms, which adds to its first-character time). In the same run it times
LyricModel.stream directly with the same settings and thread count. Prints medians: chars/s of
each, the app/sampler ratio (goal: >= 70%), time to first character, updates received, and the
rate the server's own loop reports (what is lost in sampling vs. in transport).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import httpx  # noqa: E402
import torch  # noqa: E402
from gradio_client import Client  # noqa: E402

from live_app import running_app  # noqa: E402
from lyricgpt import load_model  # noqa: E402

SEED_LINE = "I walked out in the morning rain"


def time_sampler(lm, chars: int, seed: int) -> float:
    start = time.perf_counter()
    n = sum(1 for _ in lm.stream(SEED_LINE, chars, 0.8, seed=seed))
    return n / (time.perf_counter() - start)


def time_app(client: Client, chars: int, seed: int, colour: bool) -> tuple[float, float, int, float]:
    """(chars/s from submit to the last update, seconds to the first character, updates received,
    chars/s the server measured for its own sampling loop)"""
    start = time.perf_counter()
    job = client.submit(seed_line=SEED_LINE, temperature=0.8, length=chars, seed=str(seed), colour=colour,
                        end_with_song=False, api_name="/generate")  # every song runs to its length
    first, updates, lyric, status = None, 0, "", ""
    for lyric, _, status in job:
        updates += 1
        first = first or time.perf_counter() - start
    return _result(chars, time.perf_counter() - start, first, updates, lyric, status)


def time_http(http: httpx.Client, url: str, chars: int, seed: int, colour: bool) -> tuple[float, float, int, float]:
    """As time_app, through gradio's plain HTTP route: POST the call, then read its event stream."""
    start = time.perf_counter()
    call = http.post(f"{url}/gradio_api/call/generate",
                     json={"data": [SEED_LINE, 0.8, chars, 0, 1.0, str(seed), colour]})
    first, updates, lyric, status = None, 0, "", ""
    with http.stream("GET", f"{url}/gradio_api/call/generate/{call.json()['event_id']}") as events:
        for line in events.iter_lines():
            if line.startswith("data:") and line != "data: null":
                lyric, _, status = json.loads(line[5:])
                updates += 1
                first = first or time.perf_counter() - start
    return _result(chars, time.perf_counter() - start, first, updates, lyric, status)


def _result(chars: int, total: float, first: float, updates: int, lyric: str, status: str):
    new_chars = len(lyric) - len(SEED_LINE)
    assert new_chars == chars, f"expected {chars} new characters, got {new_chars}"
    server_rate = float(re.search(r"at ([\d,]+) chars/s", status).group(1).replace(",", ""))
    return chars / total, first, updates, server_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "model"))
    parser.add_argument("--chars", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    threads = int(os.environ.get("LYRICGPT_THREADS", "1"))  # the app's default, so both sides match
    torch.set_num_threads(threads)
    lm = load_model(args.model)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "LYRICGPT_THREADS": str(threads)}
    results: dict[str, list] = {"sampler": [], "gradio_client, colours on": [],
                                "gradio_client, colours off": [], "HTTP stream, colours on": [],
                                "HTTP stream, colours off": []}
    with running_app(env, LYRICGPT_MODEL=args.model) as app:
        print(f"app started in {app.startup_s:.1f} s; model {args.model}; {threads} torch thread(s)")
        client, http = Client(app.url, verbose=False), httpx.Client(timeout=60)
        time_app(client, 50, 0, True)  # warm-up: first-request costs are not streaming costs
        time_http(http, app.url, 50, 0, True)
        for seed in range(1, args.repeats + 1):  # interleaved, so a busy machine slows all of them alike
            results["sampler"].append((time_sampler(lm, args.chars, seed),))
            results["gradio_client, colours on"].append(time_app(client, args.chars, seed, True))
            results["gradio_client, colours off"].append(time_app(client, args.chars, seed, False))
            results["HTTP stream, colours on"].append(time_http(http, app.url, args.chars, seed, True))
            results["HTTP stream, colours off"].append(time_http(http, app.url, args.chars, seed, False))

    sampler_rate = statistics.median(r[0] for r in results["sampler"])
    print(f"{args.chars} characters, median of {args.repeats}:")
    for name, runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        line = f"  {name:27s} {rate:6.0f} chars/s  ({rate / sampler_rate:4.0%} of the sampler)"
        if name != "sampler":
            line += (f"  first character after {statistics.median(r[1] for r in runs) * 1000:.0f} ms,"
                     f" {statistics.median(r[2] for r in runs):.0f} updates; the server's loop itself:"
                     f" {statistics.median(r[3] for r in runs):.0f} chars/s")
        print(line)
    for way in ("gradio_client", "HTTP stream"):
        on, off = (statistics.median(r[0] for r in results[f"{way}, colours {state}"]) for state in ("on", "off"))
        print(f"  {way}: with the alternatives on, {on / off:.0%} of the chars/s with them off (goal: >= 90%)")


if __name__ == "__main__":
    main()
