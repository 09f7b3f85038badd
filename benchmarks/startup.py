"""How long the app takes to start: compiling the decoding step (cold and warm) against none.

    python benchmarks/startup.py                    # the bundled voices, the engine's batch cap
    python benchmarks/startup.py --model assets/model --repeats 3

From starting `python app.py` to the page answering, with every engine ready (each compiles its
step's buckets before it is: lyricgpt.fast_step). Three ways, in this one run: inductor's on-disk
cache empty (a first start), the same cache again (a restart), and LYRICGPT_COMPILE=0.
Goal: within 2 minutes (issue 27).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from live_app import running_app  # noqa: E402


def start_seconds(env: dict) -> float:
    with running_app(env, timeout=600) as app:
        return app.startup_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="LYRICGPT_MODEL (default: the app's own, every bundled voice)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.model:
        env["LYRICGPT_MODEL"] = str(Path(args.model).resolve())
    env.pop("LYRICGPT_COMPILE", None)
    times: dict[str, list[float]] = {"compiled, on-disk cache empty": [], "compiled, on-disk cache warm": [],
                                     "LYRICGPT_COMPILE=0": []}
    for r in range(args.repeats):  # interleaved: this machine's speed drifts
        with tempfile.TemporaryDirectory(prefix="lyricgpt-inductor-") as cache:
            compiled = {**env, "TORCHINDUCTOR_CACHE_DIR": cache}
            times["compiled, on-disk cache empty"].append(start_seconds(compiled))
            times["compiled, on-disk cache warm"].append(start_seconds(compiled))
        times["LYRICGPT_COMPILE=0"].append(start_seconds({**env, "LYRICGPT_COMPILE": "0"}))
        print(f"run {r + 1}: " + ", ".join(f"{name} {t[-1]:.1f} s" for name, t in times.items()), flush=True)
    print("\n| the app's start | seconds (median) |\n|---|---:|")
    for name, t in times.items():
        print(f"| {name} | {statistics.median(t):.1f} |")
    cold, warm = (statistics.median(times[k]) for k in list(times)[:2])
    print(f"\na restart with the cache warm: {cold / warm:.1f}x faster than the first start (goal for both: 2 minutes)")


if __name__ == "__main__":
    main()
