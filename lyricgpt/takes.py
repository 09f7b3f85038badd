"""Takes: a song written a line at a time, several takes of each line side by side, one kept.

The form (lyricgpt.form) keeps a rhyme character by character, and where the model was heading
somewhere else it bends the line towards the rhyme (`me." "Dined."`). Takes let the model try again:
each line is written ``takes`` times side by side, each take a row of the engine's batch (or sampled
alone: a seed writes the same take either way, lyricgpt.rows.write_rows), every take keeping the
form, and the song keeps one of them, drawn with a chance in proportion to how little the form had
to bend it (``pick_take``). A song so written shows a line at a time, not a character at a time.

With one take, a song is the one row that ``sampler.generate`` (or the engine) writes, streamed a
character at a time: the simple path, and every free song's.
"""

from __future__ import annotations

import math
import random
import time
from typing import Callable, Iterator, Sequence

from .engine import Engine, EngineBusy
from .form import FormSpec
from .lm import LyricModel
from .rows import Row, write_rows
from .sampler import SamplingSettings, SongEnd, Step, generate, length_reached

MAX_TAKES = 8
BUSY_WAIT_S = 10.0  # how long a song under way waits for places for its next line's takes


def pick_take(takes: Sequence[Sequence[Step]], u: float) -> int:
    """Which take to keep, drawn by ``u`` (uniform in [0, 1)): each with a chance in proportion to the
    product of its characters' form weights, the model's probability that the form left it at each.

    A take the form had to bend far (or relax) is one the model would rarely have written by itself,
    and its chance is as small; so the line kept is one the model might have written keeping the form
    (importance resampling), rather than the likeliest take, which is the blandest: measured, keeping
    the likeliest repeated words twice as often as free songs ("the town of the town"), docs/forms.md."""
    logs = [sum(math.log(max(step.form_weight, 1e-300)) for step in steps) for steps in takes]
    top = max(logs)
    weights = [math.exp(log - top) for log in logs]  # relative to the best, so that none underflows
    target, total = u * sum(weights), 0.0
    for i, weight in enumerate(weights):
        total += weight
        if target < total:
            return i
    return max(range(len(takes)), key=weights.__getitem__)  # u * sum rounded up to the sum


def write_song(lm: LyricModel, prompt: list[int], max_new_tokens: int, settings: SamplingSettings,
               seed: int | None, end: SongEnd | None, form: FormSpec, takes: int = 1,
               engine: Engine | None = None, interval: Callable[[], float] = lambda: 0.0) -> Iterator[list[Step]]:
    """Yield a song's steps after ``prompt`` in chunks, until the model ends the song (``end``) or it has
    ``max_new_tokens`` characters (a song with a form finishes its line). With one take (or a free form:
    a free song has no form to keep) the song is one row, a character at a time (with an engine, a chunk
    at most once an ``interval()``); with more, a line at a time, one of ``takes`` takes of each (pick_take),
    whose seeds are drawn from ``seed``. A seed writes the same song alone and through an engine (which
    must have a place for every take, else EngineBusy: at once for the first line, as for any song; a
    later line waits for places, up to BUSY_WAIT_S). Closing the generator ends the song's work."""
    if not 1 <= takes <= MAX_TAKES:
        raise ValueError(f"takes must be 1 to {MAX_TAKES}, got {takes}")
    if takes == 1 or form.free:
        yield from _one_take(lm, prompt, max_new_tokens, settings, seed, end, form, engine, interval)
        return
    state = lm.form(form).read_tokens(prompt)
    rng = random.Random(seed)
    text, produced = list(prompt), 0
    while True:
        seeds, u = [rng.randrange(2 ** 31) for _ in range(takes)], rng.random()
        rows = _takes(lm, text, seeds, settings, end and end.after(produced), form, engine, first=not produced)
        line = rows[pick_take([row.steps for row in rows], u)].steps
        if not line:
            return
        yield line
        for step in line:
            text.append(step.token)
            state.push_token(step.token)
        produced += len(line)
        if (end and end.reached(text)) or length_reached(produced, max_new_tokens, state):
            return


def _takes(lm: LyricModel, text: list[int], seeds: list[int], settings: SamplingSettings, end: SongEnd | None,
           form: FormSpec, engine: Engine | None, first: bool) -> list[Row]:
    """The takes of one line after ``text``: each one line, and the blank line before it if any (with a
    form, a row stops at the first line break from its second character on: sampler.length_reached)."""
    waited = 0.0
    while True:
        rows: list[Row] = []
        try:
            for rows in write_rows(lm, text, seeds, 2, settings, end, form, engine):
                if len(rows) < len(seeds):
                    raise EngineBusy(f"the engine has places for {len(rows)} of the {len(seeds)} takes of a line")
            return rows
        except EngineBusy:
            # A song already under way is not dropped for a moment's crowd between two of its lines.
            if first or waited >= BUSY_WAIT_S:
                raise
            time.sleep(0.05)
            waited += 0.05


def _one_take(lm: LyricModel, prompt: list[int], max_new_tokens: int, settings: SamplingSettings, seed: int | None,
              end: SongEnd | None, form: FormSpec, engine: Engine | None,
              interval: Callable[[], float]) -> Iterator[list[Step]]:
    """The song as one row: alone, a step at a time; through the engine, in its chunks."""
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
