"""Several voices on 2 cores: one engine process per voice, against one process holding every voice.

    python benchmarks/engines.py                                 # the bundled model as two voices
    python benchmarks/engines.py --models assets/model assets/kipling --songs 16 --chars 300

Each engine process is stood in for by a worker that loads its models and steps a batch of --songs
songs per model until each has --chars characters (BatchSampler, as the engine does, on one torch
thread). "one process" steps every model's batch in turn; "a process each" runs one worker per
model at once. Prints the aggregate characters/s and the peak resident memory (VmHWM) of the
workers, summed, for each layout (median of --repeats, in the same run: this machine's speed drifts).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEED_LINE = "Down by the river where the old mill stands"


def worker(models: list[str], songs: int, chars: int) -> None:
    """Step every model's batch in turn until all songs are done; print as JSON when the stepping began
    and ended (wall clock, so that workers can be compared) and the peak memory."""
    import torch

    from lyricgpt import load_model
    from lyricgpt.batching import BatchSampler
    from lyricgpt.decoding import warm_up
    from lyricgpt.sampler import SamplingSettings

    torch.set_num_threads(1)
    samplers = []
    for source in models:
        lm = load_model(source)
        warm_up(lm.model, songs)  # as the engine does
        sampler = BatchSampler(lm.model, songs)
        for seed in range(songs):
            sampler.add(lm.tokenizer.encode(SEED_LINE), chars, SamplingSettings(0.8, None, None), seed)
        samplers.append(sampler)
    print("ready", flush=True)
    sys.stdin.readline()  # every worker starts stepping together
    began = time.time()
    while any(s.songs for s in samplers):
        for sampler in samplers:
            if sampler.songs:
                sampler.step()
    peak_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmHWM:"))
    print(json.dumps({"began": began, "ended": time.time(), "peak_mb": peak_kb / 1024}))


def run(groups: list[list[str]], songs: int, chars: int) -> tuple[float, float]:
    """Start one worker per group at once; return (characters/s of all of them while they stepped,
    their summed peak MB). Starting a process (importing torch, loading) is not counted."""
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", *group, "--songs", str(songs),
                               "--chars", str(chars)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for group in groups]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise SystemExit("a worker failed to start")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    reports = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("a worker failed")
    elapsed = max(r["ended"] for r in reports) - min(r["began"] for r in reports)
    return sum(len(g) for g in groups) * songs * chars / elapsed, sum(r["peak_mb"] for r in reports)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=[str(ROOT / "assets" / "model")] * 2)
    parser.add_argument("--songs", type=int, default=16, help="songs per voice, stepped as one batch")
    parser.add_argument("--chars", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.songs, args.chars)

    layouts = {"one process, every voice": [args.models], "a process each": [[m] for m in args.models]}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in layouts}
    for _ in range(args.repeats):  # interleaved, so that a drift in speed touches both alike
        for name, groups in layouts.items():
            results[name].append(run(groups, args.songs, args.chars))
    print(f"{len(args.models)} voices, {args.songs} songs each, {args.chars} characters per song; "
          f"median of {args.repeats}")
    print("| layout | characters/s, all voices | peak memory, all processes |")
    print("|---|---:|---:|")
    for name, rows in results.items():
        print(f"| {name} | {statistics.median(r for r, _ in rows):,.0f} | "
              f"{statistics.median(m for _, m in rows):,.0f} MB |")


if __name__ == "__main__":
    main()
