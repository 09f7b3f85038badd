"""The serving engine and its process: songs submitted from many threads come out as the solo
sampler writes them; a cancelled song frees its place; a full engine says so at once; a failure
ends only the songs it touched, and the engine keeps serving."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from lyricgpt.engine import Engine, EngineBusy, EngineError
from lyricgpt.form import Form
from lyricgpt.sampler import SamplingSettings, SongEnd, generate
from test_batching import FORM_SONGS, form_songs
from test_sampler import END, random_gpt

TIMEOUT = 30.0  # no wait in these tests comes near this; a hang fails instead of blocking the suite


@pytest.fixture
def model():
    return random_gpt(torch.float32)


@pytest.fixture
def engine_of(model):
    engines = []

    def make(model=model, **kw) -> Engine:
        engines.append(Engine(model, **kw))
        return engines[-1]

    yield make
    for e in engines:
        e.close()


def alone(model, prompt, n, settings, seed, end=None):
    return [s.token for s in generate(model, prompt, n, settings.temperature, settings.top_k, settings.top_p, seed,
                                      end=end)]


def test_songs_from_many_threads_are_the_songs_written_alone(model, engine_of):
    engine = engine_of(max_batch=4, max_waiting=8)
    songs = [([1 + i % 5], 20 + 3 * i, SamplingSettings(0.0 if i % 3 == 0 else 1.1, top_k=5 if i % 2 else None), i)
             for i in range(10)]
    got = {}

    def sing(i):
        prompt, n, settings, seed = songs[i]
        got[i] = [s.token for s in engine.submit(prompt, n, settings, seed)]

    threads = [threading.Thread(target=sing, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert all(got[i] == alone(model, *songs[i]) for i in range(10))


def test_chunks_come_no_faster_than_asked_and_hold_every_step(model, engine_of):
    engine = engine_of(max_batch=2, max_waiting=0)
    stream = engine.submit([1], 200, SamplingSettings(1.0), 3)
    chunks = list(stream.chunks(interval=lambda: 0.05))
    assert [s.token for c in chunks for s in c] == alone(model, [1], 200, SamplingSettings(1.0), 3)
    assert len(chunks[0]) >= 1 and len(chunks) < 200  # the reader woke far less often than once a step


def wait_until(condition, timeout=TIMEOUT):
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.005)


def test_a_cancelled_song_frees_its_place_within_a_step(engine_of):
    engine = engine_of(max_batch=1, max_waiting=1)
    long = engine.submit([1], 10**6, SamplingSettings(1.0), 1)
    next(iter(long))  # singing
    nxt = engine.submit([2], 5, SamplingSettings(1.0), 2)  # waits for the only place
    with pytest.raises(EngineBusy, match="busy|places"):
        engine.submit([3], 5, SamplingSettings(1.0), 3)
    long.cancel()
    assert len(list(nxt)) == 5
    wait_until(lambda: engine.singing == 0 and engine.waiting == 0)


def test_a_song_that_ends_frees_its_place_for_the_next(engine_of):
    model = random_gpt(torch.float64)  # the model END is chosen for
    engine = engine_of(model, max_batch=1, max_waiting=1)
    end = SongEnd(END, min_new_tokens=20)
    ending = engine.submit([1], 10**6, SamplingSettings(1.0), 5, end)
    nxt = engine.submit([2], 10**6, SamplingSettings(1.0), 5, end)  # waits for the only place
    expected = alone(model, [1], 10**4, SamplingSettings(1.0), 5, end)
    assert [s.token for s in ending] == expected and 20 < len(expected) < 10**4
    assert [s.token for s in nxt] == alone(model, [2], 10**4, SamplingSettings(1.0), 5, end)
    wait_until(lambda: engine.singing == 0 and engine.waiting == 0)


def test_a_full_engine_refuses_at_once_and_takes_songs_again_when_free(engine_of):
    engine = engine_of(max_batch=2, max_waiting=1)
    streams = [engine.submit([1], 10**6, SamplingSettings(1.0), i) for i in range(3)]
    start = time.monotonic()
    with pytest.raises(EngineBusy):
        engine.submit([1], 5, SamplingSettings(1.0), 9)
    assert time.monotonic() - start < 1.0
    for s in streams:
        s.cancel()
    wait_until(lambda: engine.singing == 0 and engine.waiting == 0)
    assert len(list(engine.submit([1], 5, SamplingSettings(1.0), 9))) == 5


class FailingModel(torch.nn.Module):
    """The model, made to fail whenever it steps more than one song at once. (A class of its own,
    not a closure: the engine's process receives it pickled.)"""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def new_cache(self, batch_size):
        return self.model.new_cache(batch_size)

    def forward(self, idx, targets=None, cache=None):
        if idx.size(0) > 1:
            raise RuntimeError("out of memory (simulated)")
        return self.model(idx, targets, cache)


def test_a_model_fault_ends_the_songs_in_flight_with_a_message_and_the_engine_keeps_serving(model, engine_of):
    engine = engine_of(FailingModel(model), max_batch=4)
    streams = [engine.submit([1], 10**6, SamplingSettings(1.0), i) for i in range(2)]
    for s in streams:  # both fail once they share a step
        with pytest.raises(EngineError, match="model failed.*out of memory"):
            list(s)
    assert [s.token for s in engine.submit([1], 30, SamplingSettings(0.0))] == alone(model, [1], 30, SamplingSettings(0.0), None)


def test_if_the_engine_process_dies_its_songs_end_with_a_message_and_a_new_one_serves(model, engine_of):
    engine = engine_of()
    singing = engine.submit([1], 10**6, SamplingSettings(1.0), 1)
    next(iter(singing))
    engine._process.kill()
    with pytest.raises(EngineError, match="engine stopped"):
        list(singing)

    def sings():
        try:
            return [s.token for s in engine.submit([1], 30, SamplingSettings(0.0))]
        except EngineError as e:  # refused while the new process starts, and not told it has shut down
            assert "shut down" not in str(e), e
            return None

    start = time.monotonic()
    while (tokens := sings()) is None:
        assert time.monotonic() - start < TIMEOUT, "no new engine process"
        time.sleep(0.1)
    assert tokens == alone(model, [1], 30, SamplingSettings(0.0), None)


def test_a_song_that_cannot_start_fails_alone(model, engine_of):
    # A prompt token outside the vocabulary breaks that song's prefill only.
    engine = engine_of(max_batch=4)
    good = engine.submit([1, 2], 25, SamplingSettings(0.0))
    with pytest.raises(EngineError, match="could not start"):
        list(engine.submit([1, 99, 2], 5, SamplingSettings(0.0)))
    assert [s.token for s in good] == alone(model, [1, 2], 25, SamplingSettings(0.0), None)


def test_a_song_with_nothing_to_start_from_or_to_write_is_refused_at_once(model, engine_of):
    engine = engine_of(max_batch=1)
    with pytest.raises(ValueError, match="at least one token"):
        engine.submit([], 5, SamplingSettings(0.0))
    with pytest.raises(ValueError, match="max_new_tokens"):
        engine.submit([1], 0, SamplingSettings(0.0))
    assert [s.token for s in engine.submit([1], 5, SamplingSettings(0.0))] == alone(
        model, [1], 5, SamplingSettings(0.0), None)


def test_closing_the_engine_ends_its_songs_instead_of_leaving_them_hanging(model):
    engine = Engine(model, max_batch=1, max_waiting=1)
    singing = engine.submit([1], 10**6, SamplingSettings(1.0), 1)
    waiting = engine.submit([1], 5, SamplingSettings(1.0), 2)
    next(iter(singing))
    engine.close()
    for s in (singing, waiting):
        with pytest.raises(EngineError, match="shutting down"):
            list(s)
    with pytest.raises(EngineError, match="has shut down"):
        engine.submit([1], 5, SamplingSettings(1.0))


def test_songs_with_forms_through_the_engines_process_are_the_songs_written_alone(tiny_lm, corpus_lexicon, engine_of):
    # The forms cross to the engine's process as specs, and its words as the file they were counted from.
    chars = tiny_lm.tokenizer.chars
    engine = engine_of(tiny_lm.model, max_batch=3, max_waiting=len(FORM_SONGS), lexicon=corpus_lexicon, chars=chars)
    songs = form_songs(tiny_lm)
    # More songs than places: some wait, and join as others leave.
    streams = [engine.submit(*song, form=spec) for song, (*_, spec) in zip(songs, FORM_SONGS)]
    for (prompt, n, settings, seed), (*_, spec), stream in zip(songs, FORM_SONGS, streams):
        form = spec and Form(spec, corpus_lexicon, chars)
        assert [s.token for s in stream] == [s.token for s in generate(
            tiny_lm.model, prompt, n, settings.temperature, settings.top_k, settings.top_p, seed, form=form)], spec
