"""The model's voice: how often its songs turn to scripture, at the app's default settings.

    python benchmarks/voice.py                                   # the bundled model
    python benchmarks/voice.py --model OTHER --temperature 0.8 --top-p 1 --show 3

Samples 30 songs: 6 seeds from each of the page's example first lines and from a blank one,
each as long as the page's default length. Counts the songs that name God, the Lord, Yahweh,
Zion, Israel or salvation (goal: at most 1 in 5), and prints the first --show songs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lyricgpt import load_model  # noqa: E402
from lyricgpt.sampler import DEFAULT_TEMPERATURE, DEFAULT_TOP_P  # noqa: E402
from lyricgpt.serving import EXAMPLE_LINES  # noqa: E402
from lyricgpt.song_request import DEFAULT_LENGTH  # noqa: E402

SCRIPTURE = re.compile(r"\b(God|Yahweh|Zion|Israel|[Ss]alvation)\b|\b[Tt]he Lord\b")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "model"))
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    parser.add_argument("--top-p", type=float, default=DEFAULT_TOP_P)
    parser.add_argument("--length", type=int, default=DEFAULT_LENGTH)
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--show", type=int, default=0, help="print this many of the songs")
    args = parser.parse_args()
    torch.set_num_threads(2)
    lm = load_model(args.model)
    top_p = None if args.top_p >= 1 else args.top_p
    songs = [(line, seed, line + "".join(lm.stream(line, args.length, args.temperature, top_p=top_p, seed=seed)))
             for line in EXAMPLE_LINES + [""] for seed in range(args.seeds)]
    named = [(line, seed, sorted({m.group(0) for m in SCRIPTURE.finditer(song)})) for line, seed, song in songs
             if SCRIPTURE.search(song)]
    print(f"model {args.model}; temperature {args.temperature:g}, top-p {args.top_p:g}, {args.length} characters")
    print(f"{len(named)} of {len(songs)} songs name God, the Lord, Yahweh, Zion, Israel or salvation "
          f"({len(named) / len(songs):.0%}; goal: at most 20%)")
    for line, seed, words in named:
        print(f"  {line or '(blank)'!r} seed {seed}: {', '.join(words)}")
    for line, seed, song in songs[:: max(1, len(songs) // max(args.show, 1))][:args.show]:
        print(f"\n--- {line or '(blank)'!r}, seed {seed} ---\n{song}")


if __name__ == "__main__":
    main()
