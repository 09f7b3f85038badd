"""Several texts after the same words, written side by side, each with its own seed.

Each is a row of the engine's batch or, without an engine, sampled alone, and a seed writes the same
text either way (lyricgpt.batching). Co-writing's candidate lines (lyricgpt.cowrite) and a song's takes
of each line (lyricgpt.takes) are written so.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from .engine import Engine, EngineBusy, SongStream
from .form import FormSpec
from .lm import LyricModel
from .sampler import SamplingSettings, SongEnd, Step, generate


@dataclass
class Row:
    """One text being written: its seed, and the model's steps so far."""

    seed: int
    steps: list[Step] = field(default_factory=list)
    done: bool = False


def write_rows(lm: LyricModel, prompt: list[int], seeds: Sequence[int], max_new_tokens: int,
               settings: SamplingSettings, end: SongEnd | None, form: FormSpec,
               engine: Engine | None = None, interval: Callable[[], float] = lambda: 0.0) -> Iterator[list[Row]]:
    """Write a text after ``prompt`` (token ids: the model reads their last context window, the form all of
    them) for each of ``seeds``, side by side; yield the rows as they grow, the last time all done.

    With an engine each is a row of its batch, and where it has places for only some, only those are
    written (EngineBusy where it has none); without, each is sampled alone, a step of each in turn.
    With an engine, the rows come at most once an ``interval()`` (seconds). Closing the generator ends
    the rows' work.
    """
    rows = [Row(seed) for seed in seeds]
    if engine is None:
        yield from _alone(lm, prompt, rows, max_new_tokens, settings, end, form)
    else:
        yield from _batched(engine, prompt, rows, max_new_tokens, settings, end, form, interval)


def _alone(lm: LyricModel, prompt: list[int], rows: list[Row], max_new_tokens: int, settings: SamplingSettings,
           end: SongEnd | None, spec: FormSpec) -> Iterator[list[Row]]:
    form = lm.form(spec)
    sampled = [generate(lm.model, prompt, max_new_tokens, settings.temperature, settings.top_k, settings.top_p,
                        row.seed, end=end, form=form) for row in rows]
    while not all(row.done for row in rows):
        for row, steps in zip(rows, sampled):
            step = None if row.done else next(steps, None)
            row.done = row.done or step is None
            row.steps += [step] if step else []
        yield rows


def _batched(engine: Engine, prompt: list[int], rows: list[Row], max_new_tokens: int, settings: SamplingSettings,
             end: SongEnd | None, spec: FormSpec, interval: Callable[[], float]) -> Iterator[list[Row]]:
    streams: list[SongStream] = []
    for row in rows:
        try:
            streams.append(engine.submit(prompt, max_new_tokens, settings, row.seed, end, spec))
        except EngineBusy:
            if not streams:
                raise
            break
    rows = rows[:len(streams)]
    # A reader per row hands its steps to this one, which shows them all a few times a second.
    arrived: queue.SimpleQueue = queue.SimpleQueue()
    for i, stream in enumerate(streams):
        threading.Thread(target=_hand_on, args=(i, stream, arrived), name="lyricgpt-row", daemon=True).start()

    def take(i: int, item: list[Step] | Exception | None) -> None:
        if isinstance(item, Exception):
            raise item
        rows[i].done = rows[i].done or item is None
        rows[i].steps += item or []

    try:
        last = -math.inf
        while not all(row.done for row in rows):
            take(*arrived.get())  # never for ever: a stream gives up after engine.PATIENCE_S
            # Then whatever else comes until the next update is due; the last row's end at once.
            while not all(row.done for row in rows):
                wait = last + interval() - time.monotonic()
                try:
                    take(*(arrived.get(timeout=wait) if wait > 0 else arrived.get_nowait()))
                except queue.Empty:
                    break
            last = time.monotonic()
            yield rows
    finally:
        for stream in streams:
            stream.cancel()  # a no-op for a finished row


def _hand_on(i: int, stream: SongStream, out: queue.SimpleQueue) -> None:
    """Put a stream's chunks on ``out`` as (i, steps), then (i, None); or (i, the error that ended it)."""
    try:
        for chunk in stream.chunks():
            out.put((i, chunk))
        out.put((i, None))
    except Exception as e:  # noqa: BLE001 - an EngineError: the reader raises it
        out.put((i, e))
