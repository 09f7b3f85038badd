"""Takes: a song written a line at a time, several takes of each line, the one the model likes best kept.

The form (lyricgpt.form) keeps a rhyme character by character, and where the model was heading
somewhere else it bends the line towards the rhyme (`me." "Dined."`). Takes let the model try again:
each line is written ``takes`` times side by side, each take a row of the engine's batch (or sampled
alone: a seed writes the same take either way, lyricgpt.rows.write_rows), every take keeping the
form, and the song keeps the take where the form never had to relax, the likeliest of those by the
model's own probabilities. A song so written shows a line at a time, not a character at a time.

With one take, a song is the one row that ``sampler.generate`` (or the engine) writes, streamed a
character at a time: the simple path, and every free song's.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Iterator, Sequence

from .engine import Engine, EngineBusy
from .form import FormSpec
from .lm import LyricModel
from .rows import write_rows
from .sampler import SamplingSettings, SongEnd, Step, generate, length_reached

MAX_TAKES = 8


def best_take(takes: Sequence[Sequence[Step]]) -> int:
    """Which take to keep: one where the form never relaxed if any, then the one whose characters the
    model gave the highest probability (their geometric mean, so that a short line is not favoured
    for being short)."""
    def score(steps: Sequence[Step]) -> tuple[bool, float]:
        kept = not any(step.relaxed for step in steps)
        return kept, sum(math.log(max(step.prob, 1e-30)) for step in steps) / max(len(steps), 1)
    return max(range(len(takes)), key=lambda i: score(takes[i]))


def write_song(lm: LyricModel, prompt: list[int], max_new_tokens: int, settings: SamplingSettings,
               seed: int | None, end: SongEnd | None, form: FormSpec, takes: int = 1,
               engine: Engine | None = None, interval: Callable[[], float] = lambda: 0.0) -> Iterator[list[Step]]:
    """Yield a song's steps after ``prompt`` in chunks, until the model ends the song (``end``) or it has
    ``max_new_tokens`` characters (a song with a form finishes its line). With one take (or a free form:
    a free song has no form to keep) the song is one row, a character at a time (with an engine, a chunk
    at most once an ``interval()``); with more, a line at a time, the best of ``takes`` takes of each,
    whose seeds are drawn from ``seed``. A seed writes the same song alone and through an engine (which
    must have a place for every take: else EngineBusy). Closing the generator ends the song's work."""
    if not 1 <= takes <= MAX_TAKES:
        raise ValueError(f"takes must be 1 to {MAX_TAKES}, got {takes}")
    if takes == 1 or form.free:
        yield from _one_take(lm, prompt, max_new_tokens, settings, seed, end, form, engine, interval)
        return
    state = lm.form(form).read_tokens(prompt)
    rng = random.Random(seed)
    text, produced = list(prompt), 0
    while True:
        seeds = [rng.randrange(2 ** 31) for _ in range(takes)]
        # A take is one line: with a form, a row stops at the end of its line of words (sampler.length_reached).
        rows = []
        for rows in write_rows(lm, text, seeds, 1, settings, end and end.after(produced), form, engine):
            if len(rows) < takes:
                raise EngineBusy(f"the engine has places for {len(rows)} of the {takes} takes of a line")
        line = rows[best_take([row.steps for row in rows])].steps
        if not line:
            return
        yield line
        for step in line:
            text.append(step.token)
            state.push_token(step.token)
        produced += len(line)
        if (end and end.reached(text)) or length_reached(produced, max_new_tokens, state):
            return


def _one_take(lm: LyricModel, prompt: list[int], max_new_tokens: int, settings: SamplingSettings, seed: int | None,
              end: SongEnd | None, form: FormSpec, engine: Engine | None,
              interval: Callable[[], float]) -> Iterator[list[Step]]:
    if engine is None:
        for step in generate(lm.model, prompt, max_new_tokens, settings.temperature, settings.top_k, settings.top_p,
                             seed, end=end, form=lm.form(form)):
            yield [step]
        return
    song = engine.submit(prompt, max_new_tokens, settings, seed, end, form)
    try:
        yield from song.chunks(interval)
    finally:
        song.cancel()  # a no-op for a finished song; frees the row of one that was stopped or closed
