"""Streaming speed of the KV-cached sampler against recomputing the whole window per character.

    python benchmarks/sampler_speed.py                       # 4 layers, width 256, context 256
    python benchmarks/sampler_speed.py --chars 300 --threads 1
    python benchmarks/sampler_speed.py --model assets/model --chars 500 --repeats 5   # a trained model
    python benchmarks/sampler_speed.py --model assets/model --against 4972c92:assets/model   # and another

Prints, for each way, the median over the repeats of the streamed characters per second and the
time to the first character, and the speedup of the cache, all measured in this one run. Without
--model the weights are random: speed does not depend on what the model has learned. Goal: 5x or more.
--against streams another model the same way (a folder, or REVISION:FOLDER for one in git's
history), and prints its speed beside this one's.
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
from typing import Callable, Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from lyricgpt import GPT, CharTokenizer, GPTConfig, load_model  # noqa: E402
from lyricgpt.sampler import SamplingSettings, draw, generate, make_rng  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "lyrics.txt")


@torch.inference_mode()
def recompute_generate(model: GPT, prompt: list[int], max_new_tokens: int, temperature: float,
                       seed: int) -> Iterator[int]:
    """The sampler without a cache: every character runs the whole (cropped) window again."""
    rng, settings = make_rng(seed), [SamplingSettings(temperature)]
    ids, context = list(prompt), model.config.context_length
    for _ in range(max_new_tokens):
        logits, _ = model(torch.tensor([ids[-context:]]))
        ((token, _),) = draw(logits[:, -1], settings, [rng.random()])
        ids.append(token)
        yield token


def cached(model: GPT, prompt: list[int], n: int, seed: int) -> Iterator[int]:
    return (step.token for step in generate(model, prompt, n, temperature=1.0, seed=seed))


def recomputed(model: GPT, prompt: list[int], n: int, seed: int) -> Iterator[int]:
    return recompute_generate(model, prompt, n, temperature=1.0, seed=seed)


def time_stream(stream: Iterator[int]) -> tuple[float, float, int]:
    """Seconds to the first item, seconds to the last, and how many items came."""
    start = time.perf_counter()
    first, count = None, 0
    for _ in stream:
        count += 1
        if first is None:
            first = time.perf_counter() - start
    return first or 0.0, time.perf_counter() - start, count


def measure(way: Callable, model: GPT, prompt: list[int], n: int, repeats: int) -> tuple[float, float]:
    """Median streamed characters per second and median time to the first character."""
    time_stream(way(model, prompt, 10, seed=0))  # warm-up: first-call allocations and kernels
    rates, firsts = [], []
    for r in range(repeats):
        first, total, count = time_stream(way(model, prompt, n, seed=r))
        assert count == n
        rates.append(n / total)
        firsts.append(first)
        print(f"  {way.__name__} run {r + 1}: {n / total:.1f} chars/s, first after {first * 1000:.1f} ms", flush=True)
    return statistics.median(rates), statistics.median(firsts)


def model_at(spec: str, folder: str):
    """A model folder, or REVISION:FOLDER: that folder as git's history holds it, copied to ``folder``."""
    if ":" not in spec or Path(spec).exists():
        return load_model(spec)
    revision, path = spec.split(":", 1)
    root = Path(__file__).resolve().parent.parent
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        blob = subprocess.run(["git", "show", f"{revision}:{path}/{name}"], cwd=root, check=True, capture_output=True)
        (Path(folder) / name).write_bytes(blob.stdout)
    return load_model(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=1000, help="new characters per stream")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--context-length", type=int, default=256)
    parser.add_argument("--prompt-chars", type=int, default=64, help="seed text: this many corpus characters")
    parser.add_argument("--model", help="a trained model folder or Hub repo (its shape replaces the options above)")
    parser.add_argument("--against", help="another model to stream the same way: a folder, or REVISION:FOLDER")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    with open(CORPUS, encoding="utf-8") as f:
        text = f.read()
    if args.model:
        lm = load_model(args.model)
        model, tok = lm.model.eval(), lm.tokenizer
    else:
        tok = CharTokenizer.from_text(text)
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=tok.vocab_size, context_length=args.context_length, n_layer=args.n_layer,
                              n_head=args.n_head, n_embd=args.n_embd)).eval()
    prompt = tok.encode(text[:args.prompt_chars])
    c = model.config

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    print(f"GPT {c.n_layer} layers x {c.n_embd} wide, {c.n_head} heads, context {c.context_length}, "
          f"{model.num_params() / 1e6:.2f}M parameters; prompt {len(prompt)} chars, "
          f"{args.chars} new chars, median of {args.repeats}")
    results = {}
    for name, way in (("kv cache", cached), ("recompute", recomputed)):
        rate, first = measure(way, model, prompt, args.chars, args.repeats)
        results[name] = rate
        print(f"{name:>10}: {rate:8.1f} chars/s   first char after {first * 1000:7.1f} ms", flush=True)
    print(f"   speedup: {results['kv cache'] / results['recompute']:.1f}x (goal: 5x or more)")
    if args.against:
        with tempfile.TemporaryDirectory() as tmp:
            other = model_at(args.against, tmp).model.eval()
        rate, first = measure(cached, other, prompt, args.chars, args.repeats)
        again, _ = measure(cached, model, prompt, args.chars, args.repeats)  # this model again, after the other
        ours = statistics.median([results["kv cache"], again])
        print(f"{args.against}: {rate:8.1f} chars/s   first char after {first * 1000:7.1f} ms")
        print(f"   this model streams at {ours / rate:.0%} of its speed (this model before and after it: "
              f"{results['kv cache']:.1f} and {again:.1f} chars/s)")


if __name__ == "__main__":
    main()
