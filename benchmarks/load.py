"""Many people at once: N concurrent /generate streams against the app.

    python benchmarks/load.py                                  # starts app.py with its defaults
    python benchmarks/load.py --threads 2 --concurrency 1      # ... with other settings
    python benchmarks/load.py --url http://127.0.0.1:7860 --pid 1234   # an app already running

For each N (default 1, 4, 8, 16; 300 characters each) prints: streams completed/failed, time to
first character (median, p95), total time, aggregate characters/s; then the server's peak memory
(VmHWM). Goal at N=16: all complete, p95 time to first character under 10 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from gradio_client import Client  # noqa: E402

from live_app import running_app  # noqa: E402

SEED_LINE = "We were young and the city was ours"


@dataclass
class Stream:
    first_char_s: float | None = None
    new_chars: int = 0
    error: str | None = None


def one_stream(client: Client, chars: int, seed: int, result: Stream, start: float) -> None:
    try:
        job = client.submit(SEED_LINE, 0.8, chars, 0, 1.0, str(seed), True, api_name="/generate")
        for lyric, _, _ in job:
            if result.first_char_s is None:
                result.first_char_s = time.perf_counter() - start
            result.new_chars = len(lyric) - len(SEED_LINE)
        if result.new_chars != chars:
            result.error = f"{result.new_chars} of {chars} characters"
    except Exception as e:  # a failed stream is a result to count, not a reason to stop
        result.error = f"{type(e).__name__}: {e}"


def run_load(client: Client, n: int, chars: int) -> None:
    streams = [Stream() for _ in range(n)]
    start = time.perf_counter()
    threads = [threading.Thread(target=one_stream, args=(client, chars, i, s, start)) for i, s in enumerate(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.perf_counter() - start
    done = [s for s in streams if s.error is None]
    firsts = sorted(s.first_char_s for s in streams if s.first_char_s is not None)
    p95 = firsts[min(len(firsts) - 1, round(0.95 * (len(firsts) - 1)))] if firsts else float("nan")
    print(f"N={n:3d}  completed {len(done):3d}  failed {n - len(done):3d}  "
          f"first char median {statistics.median(firsts) if firsts else float('nan'):6.2f} s  p95 {p95:6.2f} s  "
          f"total {total:6.1f} s  aggregate {sum(s.new_chars for s in streams) / total:6.0f} chars/s", flush=True)
    for s in streams:
        if s.error:
            print(f"        failed: {s.error[:200]}")


def peak_memory(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="an app already running (default: start app.py)")
    parser.add_argument("--pid", type=int, help="its process id, for the peak memory")
    parser.add_argument("--model", help="LYRICGPT_MODEL for the app started here (default: bundled)")
    parser.add_argument("--threads", type=int, help="LYRICGPT_THREADS for the app started here")
    parser.add_argument("--concurrency", type=int, help="LYRICGPT_CONCURRENCY for the app started here")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--chars", type=int, default=300)
    args = parser.parse_args()

    settings = {name: str(value) for name, value in [("LYRICGPT_MODEL", args.model), ("LYRICGPT_THREADS", args.threads),
                                                     ("LYRICGPT_CONCURRENCY", args.concurrency)] if value}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with nullcontext() if args.url else running_app(env, **settings) as app:
        url, pid = (args.url, args.pid) if args.url else (app.url, app.process.pid)
        print(f"app at {url}, {settings or 'defaults'}; {args.chars} characters per stream")
        client = Client(url, verbose=False, max_workers=max(40, max(args.streams)))
        client.predict(SEED_LINE, 0.8, 20, api_name="/generate")  # warm-up
        for n in args.streams:
            run_load(client, n, args.chars)
        if pid:
            print(f"server peak memory (VmHWM): {peak_memory(pid)}")


if __name__ == "__main__":
    main()
