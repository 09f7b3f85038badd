"""Many people at once: N concurrent /generate streams against the app, batched engine against a baseline.

    python benchmarks/load.py                           # the app, then the baseline, N = 1 4 16 32 64
    python benchmarks/load.py --streams 16 --batch 16 --threads 2   # other engine settings
    python benchmarks/load.py --baseline none           # the app only
    python benchmarks/load.py --baseline none --compile-off --repeats 3   # against itself with LYRICGPT_COMPILE=0
    python benchmarks/load.py --baseline none --also "LYRICGPT_BATCH=48" --streams 64   # other engine settings

The baseline is the app as it was before the batched engine (git revision --baseline, default
4972c92: two songs at a time, one torch thread each, everyone else queued), checked out in a
temporary worktree and run on the same model in this same run, since this machine's speed drifts:
the apps all start first, then take turns at each N (--repeats times each; the median run).

--compile-off also runs this app with LYRICGPT_COMPILE=0 (the engine steps without the compiled
step of lyricgpt.fast_step), and prints the compiled app's aggregate against it.

For each N (300 characters each) prints: the app's start-up time, then streams completed / refused busy / failed, time to first
character (median, p95), per-stream chars/s after the first character (median, slowest),
aggregate chars/s; then the server's peak memory (VmHWM, its engine process included) after each N.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from gradio_client import Client  # noqa: E402

from live_app import running_app  # noqa: E402

SEED_LINE = "We were young and the city was ours"
BASELINE = "4972c92"  # the last revision with one song per worker (LYRICGPT_CONCURRENCY=2)


@dataclass
class Stream:
    first_char_s: float | None = None
    last_char_s: float | None = None
    new_chars: int = 0
    error: str | None = None

    @property
    def busy(self) -> bool:
        return self.error is not None and "busy" in self.error

    @property
    def rate(self) -> float:
        """Characters per second after the first one arrived."""
        span = (self.last_char_s or 0) - (self.first_char_s or 0)
        return (self.new_chars - 1) / span if span > 0 else float("nan")


def one_stream(client: Client, chars: int, seed: int, result: Stream, start: float) -> None:
    try:
        job = client.submit(seed_line=SEED_LINE, temperature=0.8, length=chars, seed=str(seed), colour=True,
                            end_with_song=False, api_name="/generate")  # every song runs to its length
        for lyric, _, _ in job:
            now = time.perf_counter() - start
            if result.first_char_s is None:
                result.first_char_s = now
            result.last_char_s = now
            result.new_chars = len(lyric) - len(SEED_LINE)
        job.result()  # raises what the server said, if the stream ended in an error (e.g. busy)
        if result.new_chars != chars:
            result.error = f"{result.new_chars} of {chars} characters"
    except Exception as e:  # a failed stream is a result to count, not a reason to stop
        result.error = f"{type(e).__name__}: {e}"


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else float("nan")


def run_load(client: Client, n: int, chars: int) -> dict:
    streams = [Stream() for _ in range(n)]
    start = time.perf_counter()
    threads = [threading.Thread(target=one_stream, args=(client, chars, i, s, start)) for i, s in enumerate(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.perf_counter() - start
    done = [s for s in streams if s.error is None]
    busy = [s for s in streams if s.busy]
    firsts = [s.first_char_s for s in done]
    rates = [s.rate for s in done]
    row = {"n": n, "done": len(done), "busy": len(busy), "failed": n - len(done) - len(busy),
           "first_median": statistics.median(firsts) if firsts else float("nan"),
           "first_p95": percentile(firsts, 0.95),
           "rate_median": statistics.median(rates) if rates else float("nan"),
           "rate_slowest": min(rates) if rates else float("nan"),
           "aggregate": sum(s.new_chars for s in done) / total}
    print(f"N={n:3d}  completed {row['done']:3d}  busy {row['busy']:3d}  failed {row['failed']:3d}  "
          f"first char median {row['first_median']:6.2f} s  p95 {row['first_p95']:6.2f} s  "
          f"per stream median {row['rate_median']:5.0f}  slowest {row['rate_slowest']:5.0f} chars/s  "
          f"aggregate {row['aggregate']:6.0f} chars/s", flush=True)
    for s in streams:
        if s.error and not s.busy:
            print(f"        failed: {s.error[:200]}")
    return row


def peak_memory_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of the server, plus that of its children (the engine's process)."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            total += int(line.split()[1]) / 1024
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += peak_memory_mb(int(child))
    return total


@contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """The repository at ``revision``, in a temporary git worktree."""
    with tempfile.TemporaryDirectory(prefix="lyricgpt-baseline-") as tmp:
        folder = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(folder), revision], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            yield folder
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, capture_output=True)


def readable_by(tree: Path, model: Path, copy: Path) -> Path:
    """The model folder as the code in ``tree`` can read it. Code older than the ``activation``
    setting refuses a config that has one: it gets a copy without it, and computes GPT-2's tanh
    GELU with the same weights (one character's GELU costs microseconds either way)."""
    config = json.loads((model / "config.json").read_text())
    if "activation" not in config or "activation" in (tree / "lyricgpt" / "model.py").read_text():
        return model
    shutil.copytree(model, copy)
    del config["activation"]
    (copy / "config.json").write_text(json.dumps(config, indent=2))
    return copy


@dataclass
class App:
    name: str
    env: dict
    settings: dict
    app_py: Path


def measure(apps: list[App], streams: list[int], chars: int, repeats: int) -> dict[str, list[dict]]:
    """Every app runs at once (an idle one costs no CPU) and takes its turn at each N, ``repeats``
    times, interleaved, so that this machine's drift hits them alike; per app and N, the run with
    the median aggregate."""
    with ExitStack() as stack:
        clients = {}
        for app in apps:
            live = stack.enter_context(running_app(app.env, timeout=600, app_py=app.app_py, **app.settings))
            print(f"{app.name}: {app.settings}; started in {live.startup_s:.1f} s", flush=True)
            clients[app.name] = (Client(live.url, verbose=False, max_workers=max(40, max(streams))), live.process.pid)
            clients[app.name][0].predict(SEED_LINE, 0.8, 20, api_name="/generate")  # warm-up
        print(f"{chars} characters per stream; median of {repeats}", flush=True)
        results: dict[str, list[dict]] = {app.name: [] for app in apps}
        for n in streams:
            runs: dict[str, list[dict]] = {app.name: [] for app in apps}
            for _ in range(repeats):
                for app in apps:
                    client, pid = clients[app.name]
                    print(f"{app.name:>20}: ", end="")
                    runs[app.name].append(run_load(client, n, chars))
                    runs[app.name][-1]["peak_mb"] = peak_memory_mb(pid)
            for name, rows in runs.items():
                results[name].append(sorted(rows, key=lambda r: r["aggregate"])[len(rows) // 2])
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "model"), help="LYRICGPT_MODEL for both apps")
    parser.add_argument("--threads", type=int, help="LYRICGPT_THREADS of the engine")
    parser.add_argument("--batch", type=int, help="LYRICGPT_BATCH: songs the engine writes at once")
    parser.add_argument("--waiting", type=int, help="LYRICGPT_WAITING: songs that may wait for a place")
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the baseline app, or none")
    parser.add_argument("--compile-off", action="store_true", help="also run this app with LYRICGPT_COMPILE=0")
    parser.add_argument("--also", action="append", default=[], metavar="SETTINGS",
                        help='also run this app with other settings, e.g. "LYRICGPT_BATCH=48 LYRICGPT_THREADS=2"')
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16, 32, 64])
    parser.add_argument("--chars", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each N per app, interleaved (the median)")
    args = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    settings = {"LYRICGPT_MODEL": str(Path(args.model).resolve())}
    settings.update({name: str(value) for name, value in [
        ("LYRICGPT_THREADS", args.threads), ("LYRICGPT_BATCH", args.batch), ("LYRICGPT_WAITING", args.waiting)] if value})
    apps = [App("batched engine", env, settings, ROOT / "app.py")]
    if args.compile_off:
        apps.append(App("LYRICGPT_COMPILE=0", {**env, "LYRICGPT_COMPILE": "0"}, settings, ROOT / "app.py"))
    for other in args.also:  # e.g. "LYRICGPT_BATCH=48 LYRICGPT_THREADS=2"
        apps.append(App(other, env, {**settings, **dict(kv.split("=", 1) for kv in other.split())}, ROOT / "app.py"))
    with ExitStack() as stack:
        if args.baseline != "none":
            tree = stack.enter_context(checkout(args.baseline))
            base = {"LYRICGPT_MODEL": str(readable_by(tree, Path(settings["LYRICGPT_MODEL"]), tree / "model-for-baseline"))}
            apps.append(App(f"baseline {args.baseline}", {**env, "PYTHONPATH": str(tree)}, base, tree / "app.py"))
        results = measure(apps, args.streams, args.chars, args.repeats)

    print("\n| app | N | completed | busy | failed | first char median | p95 | per-stream chars/s median | slowest "
          "| aggregate chars/s | server peak memory |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, rows in results.items():
        for r in rows:
            print(f"| {name} | {r['n']} | {r['done']} | {r['busy']} | {r['failed']} | {r['first_median']:.2f} s | "
                  f"{r['first_p95']:.2f} s | {r['rate_median']:.0f} | {r['rate_slowest']:.0f} | {r['aggregate']:.0f} | "
                  f"{r['peak_mb']:.0f} MB |")
    engine = results["batched engine"]
    for name, base in list(results.items())[1:]:
        ratios = ", ".join(f"N={a['n']}: {a['aggregate'] / b['aggregate']:.2f}x" for a, b in zip(engine, base))
        print(f"\naggregate chars/s, this app against {name}: {ratios}")


if __name__ == "__main__":
    main()
