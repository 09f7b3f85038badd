"""Streaming speed of the sampler: the compiled step, the plain KV cache, and recomputing the window.

    python benchmarks/sampler_speed.py                       # 4 layers, width 256, context 256
    python benchmarks/sampler_speed.py --chars 300 --threads 1
    python benchmarks/sampler_speed.py --model assets/model --chars 500 --repeats 5   # a trained model
    python benchmarks/sampler_speed.py --model assets/model --against 4972c92:assets/model   # and another

Prints, for each way, the median over the repeats (interleaved, so that drift hits every way alike)
of the streamed characters per second, the cost of a character against the floor (reading every
weight once, measured in the same run) and the time to the first character; then the speedups, all
measured in this one run. The ways: sampler.generate with its compiled step (lyricgpt.fast_step),
the same with LYRICGPT_COMPILE=0 (the plain KV cache), and no cache at all. Without --model the
weights are random: speed does not depend on what the model has learned. Goals: the cache 5x or
more over recomputing; the compiled step 2x or more over the plain cache, and a character within
2.5x of the floor (issue 27).
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
from lyricgpt.decoding import warm_up  # noqa: E402
from lyricgpt.sampler import SamplingSettings, draw, generate, make_rng  # noqa: E402
from batch_speed import weights_read_time  # noqa: E402 - the floor, as batch_speed.py measures it

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "lyrics.txt")


@torch.inference_mode()
def recompute_generate(model: GPT, prompt: list[int], max_new_tokens: int, temperature: float,
                       seed: int) -> Iterator[int]:
    """The sampler without a cache: every character runs the whole (cropped) window again."""
    rng, settings = make_rng(seed), [SamplingSettings(temperature)]
    ids, context = list(prompt), model.config.context_length
    for _ in range(max_new_tokens):
        logits, _ = model(torch.tensor([ids[-context:]]))
        ((token, *_),) = draw(logits[:, -1], settings, [rng.random()])
        ids.append(token)
        yield token


def compiled(model: GPT, prompt: list[int], n: int, seed: int) -> Iterator[int]:
    os.environ["LYRICGPT_COMPILE"] = "1"  # read when generate makes its decoder, at the first character
    warm_up(model, 1)  # as a server does before its first song (compiles once; here, before the clock starts)
    return (step.token for step in generate(model, prompt, n, temperature=1.0, seed=seed))


def cached(model: GPT, prompt: list[int], n: int, seed: int) -> Iterator[int]:
    os.environ["LYRICGPT_COMPILE"] = "0"
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


def measure(ways: dict[str, Callable], model: GPT, prompt: list[int], n: int, repeats: int) -> dict:
    """Per way: median streamed characters per second, and median time to the first character."""
    for way in ways.values():
        time_stream(way(model, prompt, 10, seed=0))  # warm-up: compilation, first-call allocations
    rates, firsts = {name: [] for name in ways}, {name: [] for name in ways}
    for r in range(repeats):
        for name, way in ways.items():
            first, total, count = time_stream(way(model, prompt, n, seed=r))
            assert count == n
            rates[name].append(n / total)
            firsts[name].append(first)
            print(f"  {name} run {r + 1}: {n / total:.1f} chars/s, first after {first * 1000:.1f} ms", flush=True)
    return {name: (statistics.median(rates[name]), statistics.median(firsts[name])) for name in ways}


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
    ways = {"compiled step": compiled, "kv cache, LYRICGPT_COMPILE=0": cached, "recompute": recomputed}
    results = measure(ways, model, prompt, args.chars, args.repeats)
    floor = statistics.median(weights_read_time(model) for _ in range(50))
    print(f"reading every weight once: {floor * 1000:.3f} ms")
    for name, (rate, first) in results.items():
        print(f"{name:>29}: {rate:8.1f} chars/s, {1000 / rate:6.3f} ms a character ({1 / rate / floor:4.1f}x the "
              f"floor), first char after {first * 1000:7.1f} ms", flush=True)
    rate = {name: r for name, (r, _) in results.items()}
    print(f"   the cache against recomputing: {rate['kv cache, LYRICGPT_COMPILE=0'] / rate['recompute']:.1f}x (goal: 5x or more)")
    print(f"   the compiled step against the plain cache: {rate['compiled step'] / rate['kv cache, LYRICGPT_COMPILE=0']:.2f}x "
          f"(goal: 2x or more); a character {1 / rate['compiled step'] / floor:.1f}x the floor (goal: 2.5x or less)")
    if args.against:
        with tempfile.TemporaryDirectory() as tmp:
            other = model_at(args.against, tmp).model.eval()
        theirs = measure({"theirs": compiled}, other, prompt, args.chars, args.repeats)["theirs"]
        again = measure({"ours": compiled}, model, prompt, args.chars, args.repeats)["ours"]  # after the other
        ours = statistics.median([rate["compiled step"], again[0]])
        print(f"{args.against}: {theirs[0]:8.1f} chars/s   first char after {theirs[1] * 1000:7.1f} ms")
        print(f"   this model streams at {ours / theirs[0]:.0%} of its speed (this model before and after it: "
              f"{rate['compiled step']:.1f} and {again[0]:.1f} chars/s)")

if __name__ == "__main__":
    main()
