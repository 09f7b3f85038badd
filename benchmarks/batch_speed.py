"""Aggregate speed of the batched sampler against the single-song loop, in one run.

    python benchmarks/batch_speed.py                          # the bundled model, 1 torch thread
    python benchmarks/batch_speed.py --threads 2 --batches 1 16 64 --chars 300

For each batch size B, B songs start together and each writes --chars characters; prints the
aggregate characters/s (median of --repeats) and its ratio to sampler.generate writing one song
at a time (the same number of characters, measured in the same run: this machine's speed drifts).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lyricgpt import load_model  # noqa: E402
from lyricgpt.batching import BatchSampler  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "model"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 32, 64])
    parser.add_argument("--chars", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model(args.model)
    prompt = lm.read_prompt(SEED_LINE).ids
    print(f"model {args.model}; {args.threads} torch thread(s); {args.chars} characters per song; "
          f"median of {args.repeats}")
    solo = statistics.median(solo_rate(lm.model, prompt, args.chars, s) for s in range(args.repeats))
    print(f"single-song loop (sampler.generate): {solo:,.0f} chars/s")
    print("| songs at once | aggregate chars/s | per song | against one at a time |\n|---:|---:|---:|---:|")
    for batch in args.batches:
        rate = statistics.median(batch_rate(lm.model, prompt, args.chars, batch, s) for s in range(args.repeats))
        print(f"| {batch} | {rate:,.0f} | {rate / batch:,.0f} | {rate / solo:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
