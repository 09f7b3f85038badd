"""The compiled static-cache step against the plain KV-cached one: the same logits, the same greedy
text past the context length, and the eager fallback (compilation failing, or turned off)."""

from __future__ import annotations

import pytest
import torch
from torch._inductor import config as inductor_config

from lyricgpt import fast_step
from lyricgpt.fast_step import FastDecoder
from lyricgpt.sampler import generate, refill_length
from test_sampler import CONTEXT, VOCAB, random_gpt


@pytest.fixture(scope="module")
def gpt():
    return random_gpt(torch.float32)


@pytest.fixture(autouse=True)
def fresh_compile_state():
    """Each test starts (and leaves) with compilation not yet tried, so a failure cannot leak."""
    fast_step._compile_failed = False
    yield
    fast_step._compile_failed = False


@torch.inference_mode()
def test_step_logits_match_the_kv_cache(gpt):
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, VOCAB, (2, 3), generator=g)
    cache = gpt.new_cache(2)
    plain, _ = gpt(prompt, cache=cache)
    fast = FastDecoder(gpt, 2)
    torch.testing.assert_close(fast.prefill(prompt), plain, rtol=0, atol=1e-4)
    for _ in range(CONTEXT - 3):  # up to a full cache
        tokens = torch.randint(0, VOCAB, (2,), generator=g)
        plain, _ = gpt(tokens[:, None], cache=cache)
        torch.testing.assert_close(fast.step(tokens), plain[:, -1], rtol=0, atol=1e-4)
    assert fast.length == cache.length == CONTEXT
    with pytest.raises(ValueError, match="full"):
        fast.step(tokens)
    assert not fast_step._compile_failed  # the compiled graph ran, not the fallback


@torch.inference_mode()
def greedy_fast(model, prompt: list[int], n: int) -> list[int]:
    """Greedy decoding with the fast step, re-filling a full cache as sampler.generate does."""
    keep = refill_length(CONTEXT)
    decoder, recent, out = FastDecoder(model), list(prompt[-CONTEXT:]), []
    logits = decoder.prefill(torch.tensor([recent]))[0, -1]
    while len(out) < n:
        token = int(logits.argmax())
        out.append(token)
        recent.append(token)
        if decoder.length == CONTEXT:
            recent = recent[-keep:]
            logits = decoder.prefill(torch.tensor([recent]))[0, -1]
        else:
            logits = decoder.step(torch.tensor([token]))[0]
    return out


def test_greedy_text_matches_past_the_context(gpt):
    prompt, n = [1, 2, 3], 3 * CONTEXT  # several re-fills
    plain = [s.token for s in generate(gpt, prompt, n, temperature=0)]
    assert greedy_fast(gpt, prompt, n) == plain
    assert len(set(plain)) > 2  # a path that visits several tokens, not one repeated


def test_failed_compilation_falls_back_with_one_warning(gpt, monkeypatch):
    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/c++",))
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)  # a cached graph would skip the compiler
    torch._dynamo.reset()
    try:
        with pytest.warns(RuntimeWarning, match="torch.compile failed") as warned:
            assert greedy_fast(gpt, [1, 2, 3], 2 * CONTEXT) == [
                s.token for s in generate(gpt, [1, 2, 3], 2 * CONTEXT, temperature=0)]
        assert len(warned) == 1 and fast_step._compile_failed
    finally:
        torch._dynamo.reset()


def test_compile_off_runs_eagerly(gpt, monkeypatch):
    monkeypatch.setenv("LYRICGPT_COMPILE", "0")
    monkeypatch.setattr(fast_step, "_compiled", lambda: pytest.fail("compiled with LYRICGPT_COMPILE=0"))
    assert greedy_fast(gpt, [4, 5], 2 * CONTEXT) == [s.token for s in generate(gpt, [4, 5], 2 * CONTEXT, temperature=0)]
