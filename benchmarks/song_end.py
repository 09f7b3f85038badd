"""Where songs end: how many the model ends on its own, at the page's defaults and a long length.

    python benchmarks/song_end.py                                  # 10 songs at the page's defaults
    python benchmarks/song_end.py --songs 30 --length 2000 --min-chars 0 100 150 200 --show 3

Samples --songs songs (seeds 0, 1, ...; the page's example first lines and a blank one in turn) at
the page's temperature, top-k, top-p and form, with "End with the song" on, as the page does: a song
ends where the model ends it, or at its first stanza break after --length characters (then, at the
latest, at a line's end). Once for each --min-chars (the early-end rule: below it, the end is not
drawn). For each it prints how many songs ended as songs (goal: 9 of 10) and how, how many were cut
in the middle of a word (goal: none), how many hold a second song (goal: none), and the median
length (goal: 150-1,500 characters; the corpus's median song is 470).

A song holds a second song when it holds the corpus's song break (the end switch off lets it), or
when the early-end rule kept it going where the model found the end likelier than not (above 50%):
what it writes then is most likely the start of another song. The largest such probability that
the rule overrode is printed too.
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
from lyricgpt.data import SONG_BREAK, split_songs  # noqa: E402
from lyricgpt.sampler import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, MIN_SONG_CHARS, SamplingSettings  # noqa: E402
from lyricgpt.serving import EXAMPLE_LINES  # noqa: E402
from lyricgpt.form import FormSpec  # noqa: E402
from lyricgpt.song_request import DEFAULT_FORM, DEFAULT_LENGTH  # noqa: E402


def sample(lm, songs: int, length: int, min_chars: int | None, settings: SamplingSettings,
           form: FormSpec = DEFAULT_FORM) -> list[dict]:
    """Every song at once in one batch (``min_chars`` None: the end switch off), each with the page's
    form (``form``): out of loops, and at its length it finishes its line."""
    sampler = BatchSampler(lm.model, songs)
    rule = lm.form(form)
    end, most = lm.song_plan(length, min_chars is not None)  # as the page asks: at its length a song ends at its next verse
    end = lm.song_end(min_chars, by=length) if min_chars is not None else None
    lines = EXAMPLE_LINES + [""]
    out = []
    for seed in range(songs):
        line = lines[seed % len(lines)]
        sampler.add(lm.read_prompt(line).ids or lm.start_ids(), most, settings, seed, tag=seed, end=end, form=rule)
        out.append({"line": line, "seed": seed, "text": "", "ended": False, "overridden": 0.0})
    while sampler.songs:
        banned = {song.tag: song.end_rule[0] if song.end_rule and not song.end_rule[1] else None
                  for song in sampler.songs}
        for song, step in sampler.step():
            record = out[song.tag]
            record["text"] += lm.tokenizer.chars[step.token]
            record["ended"] = song.ended
            if banned[song.tag] is not None:  # the model's odds for the end it was not allowed to write
                odds = dict(step.top).get(banned[song.tag], 0.0)  # not in the top 5: under 20%
                record["overridden"] = max(record["overridden"], odds)
    for record in out:
        if record["ended"]:
            record["text"] = record["text"][:-len(SONG_BREAK)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "model"))
    parser.add_argument("--songs", type=int, default=10)
    parser.add_argument("--length", type=int, default=DEFAULT_LENGTH, help="the page's length unless given")
    parser.add_argument("--min-chars", type=int, nargs="+", default=[MIN_SONG_CHARS],
                        help="the early-end rule's minimum lengths to compare (-1: the end switch off)")
    parser.add_argument("--show", type=int, default=0, help="print this many songs of each run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lm = load_model(args.model)
    settings = SamplingSettings(DEFAULT_TEMPERATURE, None, None if DEFAULT_TOP_P >= 1 else DEFAULT_TOP_P)
    print(f"model {args.model}; {args.songs} songs of up to {args.length} characters at temperature "
          f"{settings.temperature:g}, top-k {settings.top_k or 'off'}, top-p {settings.top_p or 'off'}")
    for min_chars in args.min_chars:
        start = time.monotonic()
        songs = sample(lm, args.songs, args.length, None if min_chars < 0 else min_chars, settings)
        lengths = [len(s["text"]) for s in songs]
        ended = sum(s["ended"] for s in songs)
        second = [s for s in songs if len(split_songs(s["line"] + s["text"])) > 1 or s["overridden"] > 0.5]
        overridden = max(s["overridden"] for s in songs)
        rule = "end switch off" if min_chars < 0 else f"no end before {min_chars} characters"
        own = sum(s["ended"] and len(s["text"]) <= args.length for s in songs)
        print(f"\n{rule}: {ended} of {len(songs)} ended as songs ({own} where the model ended them, "
              f"{ended - own} at the first stanza break after the length); {len(second)} hold a second song; "
              f"length median {statistics.median(lengths):,.0f} (shortest {min(lengths)}, longest {max(lengths)}; "
              f"{time.monotonic() - start:.0f} s)")
        if min_chars > 0:
            print(f"  the likeliest end the rule kept off: {overridden:.0%}")
        print("  lengths: " + " ".join(str(n) for n in sorted(lengths)))
        mid_word = [s for s in songs if s["text"] and s["text"][-1].isalpha()]
        print(f"  cut in the middle of a word: {len(mid_word)} of {len(songs)}")
        for s in second:
            why = "a song break" if SONG_BREAK in s["text"] else f"an end of {s['overridden']:.0%} kept off"
            print(f"  second song: seed {s['seed']} ({why})")
        for s in songs[:args.show]:
            print(f"\n--- seed {s['seed']}, {len(s['text'])} characters, "
                  f"{'ended' if s['ended'] else 'cut at the length'} ---\n{s['line']}{s['text']}")


if __name__ == "__main__":
    main()
