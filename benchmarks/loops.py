"""How often songs loop at low temperatures, with and without the page's guard against loops.

    python benchmarks/loops.py                      # 20 songs each at temperatures 0.3 and 0
    python benchmarks/loops.py --songs 40 --temperatures 0.3 0.5 --show 2

A free song's form (lyricgpt.form.FormSpec()) keeps it out of loops: no run of REPEAT_WORDS words
comes again within a line and the one before. This samples the same songs (the page's example first
lines, seeds 0, 1, ...; "End with the song" on, the page's length) with the guard and without, and
counts: songs where a line comes back three times or more, and lines holding a run of three words
that the line (or the one before) already had ("the stars of the stars of the stars").
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lyricgpt import load_model  # noqa: E402
from lyricgpt.batching import BatchSampler  # noqa: E402
from lyricgpt.form import FormSpec  # noqa: E402
from lyricgpt.lexicon import WORD  # noqa: E402
from lyricgpt.sampler import SamplingSettings  # noqa: E402
from lyricgpt.serving import EXAMPLE_LINES  # noqa: E402
from lyricgpt.song_request import DEFAULT_LENGTH  # noqa: E402


def sample(lm, songs: int, temperature: float, guard: bool) -> list[str]:
    sampler = BatchSampler(lm.model, songs)
    form = lm.form(FormSpec()) if guard else None
    texts = [""] * songs
    end, most = lm.song_plan(DEFAULT_LENGTH, True)
    for seed in range(songs):
        line = EXAMPLE_LINES[seed % len(EXAMPLE_LINES)]
        texts[seed] = line
        sampler.add(lm.read_prompt(line).ids, most, SamplingSettings(temperature), seed, tag=seed, end=end, form=form)
    while sampler.songs:
        for song, step in sampler.step():
            texts[song.tag] += lm.tokenizer.chars[step.token]
    return texts


def loops(text: str) -> tuple[bool, int, int]:
    """(a line comes back 3 times or more, lines with a repeated run of 3 words, lines)."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    repeated_line = any(n >= 3 for n in Counter(lines).values())
    runs, before = 0, []
    for line in lines:
        words = [w.lower() for w in WORD.findall(line)]
        seen, looped = set(), False
        recent = before + words
        for i in range(len(recent) - 2):
            run = tuple(recent[i:i + 3])
            looped |= run in seen and i >= len(before) - 2
            seen.add(run)
        runs += looped
        before = words
    return repeated_line, runs, len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "model"))
    parser.add_argument("--songs", type=int, default=20)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.3, 0.0])
    parser.add_argument("--show", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lm = load_model(args.model)
    print("| temperature | guard | songs with a line 3+ times | lines with a repeated 3-word run |")
    print("|---:|---|---:|---:|")
    shown = []
    for temperature in args.temperatures:
        for guard in (False, True):
            texts = sample(lm, args.songs, temperature, guard)
            found = [loops(t) for t in texts]
            lines = sum(n for *_, n in found)
            print(f"| {temperature:g} | {'on' if guard else 'off'} | {sum(r for r, *_ in found)} of {len(texts)} | "
                  f"{sum(n for _, n, _ in found)} of {lines} |")
            shown += [(temperature, guard, t) for t in texts[:args.show]]
    for temperature, guard, text in shown:
        print(f"\n--- temperature {temperature:g}, guard {'on' if guard else 'off'} ---\n{text}")


if __name__ == "__main__":
    main()
