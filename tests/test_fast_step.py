"""The compiled static-cache step against the plain KV-cached one: the same logits; the same greedy
text and the same seeded songs, alone and in a batch, past the context length; the buckets compiled
before anyone waits, and only for a model warmed up; and the fallback (compilation failing, or
turned off)."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch._dynamo.utils import counters
from torch._inductor import config as inductor_config

from lyricgpt import fast_step
from lyricgpt.decoding import PlainDecoder, make_decoder, warm_up
from lyricgpt.engine import Engine
from lyricgpt.fast_step import FastDecoder, buckets, is_warm
from lyricgpt.sampler import SamplingSettings, generate
from test_batching import SONGS, run_batched, solo
from test_sampler import CONTEXT, VOCAB, random_gpt

TOL = 1e-4
# Inductor compiles the step to C++; without a compiler the fallback is what runs (tested below).
needs_compiler = pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                                    reason="no C++ compiler for torch.compile")


@pytest.fixture(scope="module")
def gpt():
    return random_gpt(torch.float32)


@pytest.fixture(autouse=True)
def compiling(monkeypatch):
    """Compilation on (the rest of the suite runs without it), not yet failed, and no model warmed
    up: neither can leak from one test to the next."""
    monkeypatch.setenv("LYRICGPT_COMPILE", "1")
    fast_step._compile_failed = False
    fast_step._warm.clear()
    yield
    fast_step._compile_failed = False
    fast_step._warm.clear()


def plain_songs(model, songs):
    with pytest.MonkeyPatch.context() as m:
        m.setenv("LYRICGPT_COMPILE", "0")
        return [solo(model, prompt, n, settings, seed) for prompt, n, settings, seed in songs]


def assert_same_steps(fast, plain):
    assert [s.token for s in fast] == [s.token for s in plain]
    assert [s.window for s in fast] == [s.window for s in plain]
    assert [s.prob for s in fast] == pytest.approx([s.prob for s in plain], abs=TOL)
    for a, b in zip(fast, plain):  # the look-inside view: the same alternatives, the same probabilities
        assert [p for _, p in a.top] == pytest.approx([p for _, p in b.top], abs=TOL)
        assert [t for t, _ in a.top] == [t for t, _ in b.top]


def test_buckets():
    assert buckets(1) == [1]
    assert buckets(6) == [1, 2, 4, 6]
    assert buckets(32) == [1, 2, 4, 8, 16, 32]


@needs_compiler
@torch.inference_mode()
def test_step_logits_match_the_kv_cache(gpt):
    g = torch.Generator().manual_seed(1)
    prompts = [[1, 2, 3], [4, 5]]  # rows of different lengths
    plain, fast = PlainDecoder(gpt, 2), FastDecoder(gpt, 2)
    for row, prompt in enumerate(prompts):
        torch.testing.assert_close(fast.prefill(row, prompt), plain.prefill(row, prompt), rtol=0, atol=TOL)
    for _ in range(CONTEXT - 4):
        tokens = torch.randint(0, VOCAB, (2,), generator=g).tolist()
        torch.testing.assert_close(fast.step(tokens), plain.step(tokens), rtol=0, atol=TOL)
    torch.testing.assert_close(fast.step([3]), plain.step([3]), rtol=0, atol=TOL)  # one row: bucket 1
    assert fast.lengths.tolist() == plain.lengths.tolist() == [CONTEXT, CONTEXT - 2]
    with pytest.raises(ValueError, match="full"):
        fast.step([1, 2])
    assert not fast_step._compile_failed  # the compiled graph ran, not the fallback


@needs_compiler
def test_the_single_song_loop_uses_the_compiled_step_once_warmed_up(gpt):
    assert isinstance(make_decoder(gpt), PlainDecoder)  # a first song does not wait for compiling
    warm_up(gpt, 2)  # as an engine of 2 does; its bucket 1 serves the single-song loop too
    assert is_warm(gpt) and isinstance(make_decoder(gpt), FastDecoder)
    graphs = counters["stats"]["unique_graphs"]
    songs = [([1, 2, 3], 3 * CONTEXT, SamplingSettings(0.0), None),  # greedy, several re-fills
             ([5], 3 * CONTEXT, SamplingSettings(1.5, top_k=8, top_p=0.95), 7)]  # seeded
    for (prompt, n, settings, seed), plain in zip(songs, plain_songs(gpt, songs)):
        assert_same_steps(solo(gpt, prompt, n, settings, seed), plain)
        assert len({s.token for s in plain}) > 2  # a path that visits several tokens
    assert not fast_step._compile_failed
    assert counters["stats"]["unique_graphs"] == graphs  # the warm-up's graph: nothing compiled while singing


@needs_compiler
def test_the_batch_uses_the_compiled_step_and_writes_what_each_song_writes_alone(gpt):
    warm_up(gpt, 4)
    assert isinstance(make_decoder(gpt, 4), FastDecoder)
    out = run_batched(gpt, SONGS, capacity=4, join_every=3)  # 1 to 4 songs at once: every bucket
    for i, plain in enumerate(plain_songs(gpt, SONGS)):
        assert_same_steps(out[i], plain)
    assert not fast_step._compile_failed


@needs_compiler
@torch.inference_mode()  # as BatchSampler steps
def test_warm_up_compiles_every_bucket_before_any_song(gpt):
    decoder = FastDecoder(gpt, 3)
    decoder.warm_up()
    assert decoder.lengths.tolist() == [0, 0, 0]
    graphs = counters["stats"]["unique_graphs"]
    for rows in (1, 2, 3):
        for row in range(rows):
            decoder.prefill(row, [1, 2][:row + 1])  # rows of different lengths
        for _ in range(CONTEXT - 2):  # every length of the rows' window, up to the whole context
            decoder.step([3] * rows)
    assert decoder.lengths.tolist()[:2] == [CONTEXT - 1, CONTEXT]
    assert counters["stats"]["unique_graphs"] == graphs  # nothing compiled after the warm-up


@needs_compiler
def test_a_batch_cap_of_many_buckets_compiles_them_all():
    decoder = FastDecoder(random_gpt(torch.float32), 300)  # 10 buckets (1 to 256, and 300): more than dynamo's 8
    decoder.warm_up()
    assert not fast_step._compile_failed and is_warm(decoder.model)


@needs_compiler
def test_the_engine_compiles_at_start_and_sings_what_a_song_sings_alone(gpt):
    engine = Engine(gpt, max_batch=2, max_waiting=0)  # its process inherits LYRICGPT_COMPILE=1
    try:
        streams = [engine.submit(prompt, n, settings, seed) for prompt, n, settings, seed in SONGS[1:3]]
        out = [list(stream) for stream in streams]
    finally:
        engine.close()
    for steps, plain in zip(out, plain_songs(gpt, SONGS[1:3])):
        assert_same_steps(steps, plain)


def test_failed_compilation_falls_back_with_one_warning(gpt, monkeypatch):
    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/c++",))
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)  # a cached graph would skip the compiler
    torch._dynamo.reset()
    try:
        song = ([1, 2, 3], 2 * CONTEXT, SamplingSettings(0.0), None)
        with pytest.warns(RuntimeWarning, match="torch.compile failed") as warned:
            warm_up(gpt, 2)
            assert_same_steps(solo(gpt, *song), plain_songs(gpt, [song])[0])
        assert len(warned) == 1 and fast_step._compile_failed
        assert not is_warm(gpt) and isinstance(make_decoder(gpt), PlainDecoder)  # the plain path serves
    finally:
        torch._dynamo.reset()


def test_compile_off_decodes_plainly(gpt, monkeypatch):
    monkeypatch.setenv("LYRICGPT_COMPILE", "0")
    monkeypatch.setattr(fast_step, "_compiled", lambda: pytest.fail("compiled with LYRICGPT_COMPILE=0"))
    warm_up(gpt, 2)
    assert not is_warm(gpt) and isinstance(make_decoder(gpt), PlainDecoder)
    list(generate(gpt, [4, 5], 2 * CONTEXT, temperature=0))
