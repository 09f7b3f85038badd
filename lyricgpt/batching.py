"""Many songs at once: every song in flight advances by one character in one forward pass.

On a CPU a decoding step of a small model costs mostly per-operation overhead, not arithmetic,
so sixteen songs stepped together cost barely twice one song. This is ``sampler.generate``
turned inside out: the same model, the same sampling rule (``draw``, then ``describe``) and the
same re-fill rule, but each song is a row of one shared cache, and songs join and leave between
steps.

Each song keeps its own settings, random generator, window and progress, so its text does not
depend on who else is singing: a seeded song writes the same text here as alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from .decoding import make_decoder
from .form import Form, FormState
from .sampler import SamplingSettings, SongEnd, Step, describe, draw, length_reached, make_rng, refill_length


def check_song(prompt: list[int], max_new_tokens: int) -> None:
    """Raise ValueError for a song that cannot be sung: no prompt, or nothing to write."""
    if not prompt:
        raise ValueError("the prompt needs at least one token")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")


@dataclass(eq=False)
class Song:
    """One song in the batch. Its cache row holds everything before ``next_input``."""

    max_new_tokens: int
    settings: SamplingSettings
    rng: random.Random
    recent: list[int]  # the tokens a re-fill would read, ``next_input`` last
    produced: int = 0
    error: Exception | None = None  # why the song left early, if it did
    tag: object = field(default=None)  # the caller's handle for it
    end: SongEnd | None = None
    ended: bool = False  # the model wrote the song's end
    end_rule: tuple[int, bool] | None = None  # what its next draw must do about its end (SongEnd.rule)
    form: FormState | None = None  # where the song stands in its form, if it has one

    @property
    def next_input(self) -> int:
        return self.recent[-1]

    @property
    def finished(self) -> bool:
        return length_reached(self.produced, self.max_new_tokens, self.form) or self.ended or self.error is not None


class BatchSampler:
    """Up to ``capacity`` songs; ``step()`` gives each one its next token."""

    def __init__(self, model: torch.nn.Module, capacity: int, refill_keep: int | None = None):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.model = model
        self.capacity = capacity
        self.context = model.config.context_length
        self.keep = refill_length(self.context, refill_keep)
        self.decoder = make_decoder(model, capacity)  # compiled if the model is warmed up (lyricgpt.decoding)
        self.songs: list[Song] = []  # song i lives in cache row i; rows 0..len-1 are in use

    @torch.inference_mode()
    def add(self, prompt: list[int], max_new_tokens: int, settings: SamplingSettings,
            seed: int | None = None, tag: object = None, end: SongEnd | None = None, form: Form | None = None) -> Song:
        """Prefill a new song's prompt into a free row; it samples from the next ``step()``, and
        leaves at ``max_new_tokens`` (given a ``form``, at the end of that line) or, given ``end``,
        where the model ends it."""
        if len(self.songs) == self.capacity:
            raise RuntimeError("the batch is full")
        check_song(prompt, max_new_tokens)
        if not all(0 <= t < self.model.config.vocab_size for t in prompt):
            raise ValueError("the prompt holds a token outside the vocabulary")
        song = Song(max_new_tokens, settings, make_rng(seed), list(prompt[-self.context:]), tag=tag, end=end)
        song.end_rule = end.rule(song.recent, 0) if end else None
        song.form = form.read_tokens(prompt) if form else None
        twin = next((i for i, other in enumerate(self.songs) if other.produced == 0 and other.recent == song.recent), None)
        if twin is None:
            self._fill_row(len(self.songs), song)
        else:  # candidates for one song's next line: one prefill, its keys and values copied (the same)
            self.decoder.cache.copy_row(len(self.songs), twin)
        self.songs.append(song)
        return song

    def remove(self, song: Song) -> None:
        """Free the song's row at once: the last row moves into it, so rows in use stay contiguous."""
        i, last = self.songs.index(song), len(self.songs) - 1
        if i != last:
            self.decoder.cache.copy_row(i, last)  # either decoder's cache: a KVCache or a StaticCache
            self.songs[i] = self.songs[last]
        self.songs.pop()
        self.decoder.lengths[last] = 0

    @torch.inference_mode()
    def step(self) -> list[tuple[Song, Step]]:
        """One forward pass for every song; each draws its next token. Finished songs leave.

        A song whose sampling fails leaves with ``song.error`` set, and the others carry on. An
        exception from the forward pass itself (a fault of the model) is raised to the caller.
        """
        n = len(self.songs)
        if n == 0:
            return []
        logits = self.decoder.step([s.next_input for s in self.songs])
        windows = self.decoder.lengths[:n].tolist()
        uniforms, rows = [], []
        for i, song in enumerate(self.songs):  # each song from its own random stream
            try:
                uniforms.append(song.rng.random())
                rows.append(i)
            except Exception as e:  # noqa: BLE001 - one song's failure must not stop the others
                song.error = e
        if len(rows) < n:
            logits = logits[rows]
        settings = [self.songs[i].settings for i in rows]
        ends = [self.songs[i].end_rule for i in rows]
        forms = [self.songs[i].form for i in rows]
        steps = describe(logits, draw(logits, settings, uniforms, ends, forms), [windows[i] for i in rows]) if rows else []
        results = []
        for i, step in zip(rows, steps):
            song = self.songs[i]
            song.produced += 1
            song.recent.append(step.token)
            if song.form:
                song.form.push_token(step.token)
            if song.end:  # before the re-fill below can shorten ``recent``
                song.ended = song.end.reached(song.recent)
                song.end_rule = song.end.rule(song.recent, song.produced)
            del song.recent[:-self.context]
            results.append((song, step))
        for song in [s for s in self.songs if s.finished]:
            self.remove(song)
        for i, length in enumerate(self.decoder.lengths[:len(self.songs)].tolist()):
            if length == self.context:  # the position table ends here: re-fill
                song = self.songs[i]
                song.recent = song.recent[-self.keep:]
                self._fill_row(i, song)
        return results

    def _fill_row(self, i: int, song: Song) -> None:
        """Prefill row ``i`` with the song's window but its last token, which the next step feeds:
        the same window a single-song prefill reads, so the same logits."""
        self.decoder.prefill(i, song.recent[:-1])
