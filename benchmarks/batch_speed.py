"""Aggregate speed of the batched sampler against the single-song loop, in one run.

    python benchmarks/batch_speed.py                          # the bundled model, 1 torch thread
    python benchmarks/batch_speed.py --threads 2 --batches 1 16 64 --chars 300

For each batch size B, B songs start together and each writes --chars characters; prints the
aggregate characters/s (median of --repeats) and its ratio to sampler.generate writing one song
at a time (the same number of characters, measured in the same run: this machine's speed drifts).

    python benchmarks/batch_speed.py --steps                  # one decoding step, plain and compiled

--steps prints instead the time of one decoding step (at half the context): the plain KV cache (as
with LYRICGPT_COMPILE=0), lyricgpt.fast_step's compiled step with a graph per bucket (what the loops
use) and with one graph for a dynamic batch, against the floor: reading every weight once; then
the time to compile every bucket of the engine (--compile-batch) in a fresh process, with
inductor's on-disk cache cold and warm.

The single-song loop and the batch decode compiled, the model warmed up first as the engine does,
unless LYRICGPT_COMPILE=0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lyricgpt import load_model  # noqa: E402
from lyricgpt.batching import BatchSampler  # noqa: E402
from lyricgpt.decoding import PlainDecoder, warm_up  # noqa: E402
from lyricgpt.fast_step import FastDecoder, buckets, decode_step  # noqa: E402
from lyricgpt.sampler import SamplingSettings, generate  # noqa: E402

SEED_LINE = "Down by the river where the old mill stands"


def solo_rate(model, prompt: list[int], chars: int, seed: int) -> float:
    start = time.perf_counter()
    n = sum(1 for _ in generate(model, prompt, chars, temperature=0.8, seed=seed))
    return n / (time.perf_counter() - start)


def batch_rate(model, prompt: list[int], chars: int, batch: int, seed: int) -> float:
    sampler = BatchSampler(model, batch)
    start = time.perf_counter()
    for i in range(batch):
        sampler.add(prompt, chars, SamplingSettings(0.8), seed=seed * 1000 + i)
    n = 0
    while sampler.songs:
        n += len(sampler.step())
    return n / (time.perf_counter() - start)


def weights_read_time(model) -> float:
    """Seconds to read every weight once: the floor under a decoding step."""
    params = list(model.parameters())
    start = time.perf_counter()
    for p in params:
        p.sum()
    return time.perf_counter() - start


def dynamic_step(model, cache, tokens):
    """``decode_step`` under a name of its own, so that its graphs are not the per-bucket ones."""
    return decode_step(model, cache, tokens)


@torch.inference_mode()
def step_time(model, batch: int, way: str, steps: int = 50) -> float:
    """Mean seconds of one decoding step of ``batch`` rows, each at half the context, by ``way``:
    "plain" (the model's forward and its KVCache, as with LYRICGPT_COMPILE=0), "fast" (the compiled
    step, a graph per bucket) or "dynamic" (the compiled step, one graph whatever the batch)."""
    half = model.config.context_length // 2
    decoder = PlainDecoder(model, batch) if way == "plain" else FastDecoder(model, batch)
    for row in range(batch):
        decoder.prefill(row, [0] * half)
    run = decoder.step
    if way == "dynamic":
        compiled = torch.compile(dynamic_step, fullgraph=True, dynamic=True)
        # the rows' window, as FastDecoder.step gives it
        run = lambda tokens: compiled(model, decoder.cache.rows(0, batch, half + 1), torch.tensor(tokens))  # noqa: E731
    tokens = [0] * batch
    run(tokens)  # compiles, for the compiled ways
    total = 0.0
    for _ in range(steps):
        decoder.lengths.fill_(half)
        start = time.perf_counter()
        run(tokens)
        total += time.perf_counter() - start
    return total / max(steps, 1)


def compile_seconds(args) -> float:
    """Compiling every bucket of a --compile-batch decoder (what the engine does before it is
    ready), in this fresh process."""
    lm = load_model(args.model)
    start = time.perf_counter()
    FastDecoder(lm.model, args.compile_batch).warm_up()
    return time.perf_counter() - start


def print_steps(model, args) -> None:
    median = statistics.median
    floor = median(weights_read_time(model) for _ in range(20 * args.repeats))
    print(f"reading every weight once: {floor * 1e3:.2f} ms")
    print("| batch | plain step | compiled, a graph per bucket | compiled, dynamic batch | bucket against plain "
          "| bucket against the floor |\n|---:|---:|---:|---:|---:|---:|")
    for batch in args.batches:
        ways = ("plain", "fast", "dynamic")
        runs = [[step_time(model, batch, way) for way in ways] for _ in range(args.repeats)]  # interleaved
        plain, fast, dynamic = (median(r[i] for r in runs) for i in range(3))
        print(f"| {batch} | {plain * 1e3:.2f} ms | {fast * 1e3:.2f} ms | {dynamic * 1e3:.2f} ms "
              f"| {plain / fast:.2f}x faster | {fast / floor:.1f}x |", flush=True)
    with tempfile.TemporaryDirectory() as cache_dir:  # inductor's on-disk cache: cold, then warm
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache_dir)
        command = [sys.executable, __file__, "--model", args.model, "--threads", str(args.threads),
                   "--compile-seconds", "--compile-batch", str(args.compile_batch)]
        for state in ("cold", "warm"):
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            print(f"compiling every bucket of {args.compile_batch} rows ({buckets(args.compile_batch)}) in a fresh "
                  f"process, inductor's on-disk cache {state}: {float(out):.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "model"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 32, 64])
    parser.add_argument("--chars", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", action="store_true", help="time one decoding step, plain and compiled")
    parser.add_argument("--compile-batch", type=int, default=32, help="with --steps: the engine's batch cap, whose "
                        "buckets are compiled to time the start-up")
    parser.add_argument("--compile-seconds", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.compile_seconds:
        print(compile_seconds(args))
        return
    lm = load_model(args.model)
    prompt = lm.read_prompt(SEED_LINE).ids
    print(f"model {args.model}; {args.threads} torch thread(s); {args.chars} characters per song; "
          f"median of {args.repeats}")
    if args.steps:
        print_steps(lm.model, args)
        return
    for rows in args.batches:  # as the engine does for its cap (unless LYRICGPT_COMPILE=0): each is one here
        warm_up(lm.model, rows)
    solo = statistics.median(solo_rate(lm.model, prompt, args.chars, s) for s in range(args.repeats))
    print(f"single-song loop (sampler.generate): {solo:,.0f} chars/s")
    print("| songs at once | aggregate chars/s | per song | against one at a time |\n|---:|---:|---:|---:|")
    for batch in args.batches:
        rate = statistics.median(batch_rate(lm.model, prompt, args.chars, batch, s) for s in range(args.repeats))
        print(f"| {batch} | {rate:,.0f} | {rate / batch:,.0f} | {rate / solo:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
