"""Aggregate speed of the batched sampler against the single-song loop, in one run.

    python benchmarks/batch_speed.py                          # the bundled model, 1 torch thread
    python benchmarks/batch_speed.py --threads 2 --batches 1 16 64 --chars 300

For each batch size B, B songs start together and each writes --chars characters; prints the
aggregate characters/s (median of --repeats) and its ratio to sampler.generate writing one song
at a time (the same number of characters, measured in the same run: this machine's speed drifts).

    python benchmarks/batch_speed.py --steps                  # one decoding step, plain and compiled

--steps prints instead the time of one decoding step (at half the context) of the plain KV cache
and of lyricgpt.fast_step, against the floor: reading every weight once; then the time of the first
compiled step (the compilation) in a fresh process, with inductor's on-disk cache cold and warm.
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
from lyricgpt.fast_step import FastDecoder  # noqa: E402
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


@torch.inference_mode()
def step_time(model, batch: int, fast: bool, steps: int = 50) -> float:
    """Mean seconds of one decoding step of ``batch`` rows, each at half the context."""
    half = model.config.context_length // 2
    prompt = torch.zeros(batch, half, dtype=torch.long)
    if fast:
        decoder = FastDecoder(model, batch)
        decoder.prefill(prompt)
        run = decoder.step
        lengths = decoder.cache.lengths
    else:
        cache = model.new_cache(batch)
        model(prompt, cache=cache)
        def run(tokens):
            return model(tokens[:, None], cache=cache)
        lengths = cache.lengths
    tokens = torch.zeros(batch, dtype=torch.long)
    run(tokens)  # compiles, for the fast step
    total = 0.0
    for _ in range(steps):
        lengths.fill_(half)
        start = time.perf_counter()
        run(tokens)
        total += time.perf_counter() - start
    return total / max(steps, 1)


def compile_seconds(args) -> float:
    """The first fast step at batch 1 (tracing and compiling) in this fresh process."""
    lm = load_model(args.model)
    start = time.perf_counter()
    step_time(lm.model, 1, fast=True, steps=0)
    return time.perf_counter() - start


def print_steps(model, args) -> None:
    median = statistics.median
    floor = median(weights_read_time(model) for _ in range(20 * args.repeats))
    print(f"reading every weight once: {floor * 1e3:.2f} ms")
    print("| batch | plain step | fast step | fast against plain | fast against the floor |\n|---:|---:|---:|---:|---:|")
    for batch in args.batches:
        pairs = [(step_time(model, batch, fast=False), step_time(model, batch, fast=True))
                 for _ in range(args.repeats)]  # interleaved, so drift hits both alike
        plain, fast = median(p for p, _ in pairs), median(f for _, f in pairs)
        print(f"| {batch} | {plain * 1e3:.2f} ms | {fast * 1e3:.2f} ms | {plain / fast:.2f}x faster "
              f"| {fast / floor:.1f}x |", flush=True)
    with tempfile.TemporaryDirectory() as cache_dir:  # inductor's on-disk cache: cold, then warm
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache_dir)
        command = [sys.executable, __file__, "--model", args.model, "--threads", str(args.threads),
                   "--compile-seconds"]
        for state in ("cold", "warm"):
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            print(f"first fast step at batch 1 in a fresh process, on-disk cache {state}: {float(out):.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "model"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 32, 64])
    parser.add_argument("--chars", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", action="store_true", help="time one decoding step, plain and compiled")
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
    solo = statistics.median(solo_rate(lm.model, prompt, args.chars, s) for s in range(args.repeats))
    print(f"single-song loop (sampler.generate): {solo:,.0f} chars/s")
    print("| songs at once | aggregate chars/s | per song | against one at a time |\n|---:|---:|---:|---:|")
    for batch in args.batches:
        rate = statistics.median(batch_rate(lm.model, prompt, args.chars, batch, s) for s in range(args.repeats))
        print(f"| {batch} | {rate:,.0f} | {rate / batch:,.0f} | {rate / solo:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
