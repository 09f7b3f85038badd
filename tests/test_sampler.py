"""The sampler: KV-cached steps against full recomputation, generation past the context length,
private seeded randomness, and the temperature / top-k / top-p filters."""

from __future__ import annotations

import bisect
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lyricgpt.model import GPT, Bigram, BigramConfig, GPTConfig
from lyricgpt.sampler import SamplingSettings, SongEnd, draw, filter_logits, generate, make_rng

VOCAB, CONTEXT = 13, 8


def random_gpt(dtype: torch.dtype) -> GPT:
    """A small GPT with large random weights, so that its next-token distributions are far from
    uniform and its greedy path is not one repeated token (shared with the batching tests)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, context_length=CONTEXT, n_layer=2, n_head=2, n_embd=16)).to(dtype)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        model.ln_f.weight.mul_(3)
    return model.eval()


@pytest.fixture(scope="module")
def gpt() -> GPT:
    """In float64, so that cached and recomputed logits agree to the last float32 bit."""
    return random_gpt(torch.float64)


def _last_logits(model, window: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([window]))[0][0, -1].float()


def reference_generate(model, prompt, n, temperature, top_k=None, top_p=None, seed=None, refill_keep=None,
                       end=None):
    """Full recomputation at every step, over the window the sampler's re-fill policy keeps:
    the window grows to the context length, then restarts from its last ``refill_keep`` tokens.
    With ``end`` (a SongEnd), the song stops once the text ends with its marker, and before
    ``end.min_new_tokens`` the token that would complete the marker gets no weight."""
    context = model.config.context_length
    keep = refill_keep or context // 2
    rng = make_rng(seed)
    window, out, text = list(prompt[-context:]), [], list(prompt)
    for _ in range(n):
        logits = _last_logits(model, window)
        raw = logits.softmax(-1)
        if end and len(out) < end.min_new_tokens and text[len(text) - len(end.marker) + 1:] == list(end.marker[:-1]):
            logits[end.marker[-1]] = -math.inf
        u = rng.random()  # one number per step, greedy or not
        if temperature == 0:
            token = int(logits.argmax())
        else:  # the first token whose cumulative weight passes u (of the total)
            cumulative = filter_logits(logits, temperature, top_k, top_p).softmax(-1).double().cumsum(-1).tolist()
            token = bisect.bisect_right(cumulative, u * cumulative[-1])
        out.append((token, raw[token].item()))
        window.append(token)
        text.append(token)
        if end and text[-len(end.marker):] == list(end.marker):
            break
        if len(window) > context:
            window = window[-keep:]
    return out


def _run(model, prompt, n, **kw) -> list[int]:
    return [s.token for s in generate(model, prompt, n, **kw)]


def test_cached_step_logits_equal_full_recompute_at_every_position(gpt):
    g = torch.Generator().manual_seed(1)
    seq = torch.randint(VOCAB, (1, CONTEXT), generator=g)
    for prefill in (1, 3, CONTEXT):
        cache = gpt.new_cache(1)
        with torch.no_grad():
            logits, _ = gpt(seq[:, :prefill], cache=cache)
            full, _ = gpt(seq[:, :prefill])
            torch.testing.assert_close(logits, full, atol=1e-9, rtol=1e-9)
            for t in range(prefill, CONTEXT):
                step, _ = gpt(seq[:, t:t + 1], cache=cache)
                full, _ = gpt(seq[:, :t + 1])
                torch.testing.assert_close(step[0, -1], full[0, -1], atol=1e-9, rtol=1e-9)
        assert cache.length == CONTEXT


def test_cache_refill_equals_fresh_prefill(gpt):
    seq = torch.randint(VOCAB, (1, CONTEXT + 4), generator=torch.Generator().manual_seed(2))
    cache = gpt.new_cache(1)
    with torch.no_grad():
        gpt(seq[:, :CONTEXT], cache=cache)
        cache.reset()
        window = seq[:, 4:10]
        refilled, _ = gpt(window, cache=cache)
        step, _ = gpt(seq[:, 10:11], cache=cache)
        torch.testing.assert_close(refilled, gpt(window)[0], atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(step[0, -1], gpt(seq[:, 4:11])[0][0, -1], atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("kw", [
    dict(temperature=0),
    dict(temperature=1.0, seed=3),
    dict(temperature=0.8, top_k=4, seed=4),
    dict(temperature=1.3, top_p=0.7, seed=5),
    dict(temperature=1.0, seed=6, refill_keep=1),
    dict(temperature=0, refill_keep=CONTEXT),
    dict(temperature=1.0, seed=7, refill_keep=3),
])
@pytest.mark.parametrize("prompt", [[1], [2, 5, 7], list(range(VOCAB)) * 2])
def test_generate_matches_full_recompute_past_the_context(gpt, kw, prompt):
    n = 5 * CONTEXT
    steps = list(generate(gpt, prompt, n, **kw))
    assert len(steps) == n
    expected = reference_generate(gpt, prompt, n, **kw)
    assert [s.token for s in steps] == [t for t, _ in expected]
    assert [s.prob for s in steps] == pytest.approx([p for _, p in expected], abs=1e-6)


def test_greedy_follows_argmax_and_is_not_trivial(gpt):
    tokens = _run(gpt, [0], 5 * CONTEXT, temperature=0)
    assert len(set(tokens)) > 3  # so the comparisons above test more than one repeated token


def test_seeds(gpt):
    a = _run(gpt, [1, 2], 40, temperature=1.0, seed=11)
    assert _run(gpt, [1, 2], 40, temperature=1.0, seed=11) == a
    assert _run(gpt, [1, 2], 40, temperature=1.0, seed=12) != a


def test_seeding_leaves_the_global_rng_alone(gpt):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    alone = _run(gpt, [1], 30, temperature=1.0, seed=21)
    _run(gpt, [1], 30, temperature=1.0, seed=None)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)  # a different global state changes nothing
    assert _run(gpt, [1], 30, temperature=1.0, seed=21) == alone


def test_interleaved_generators_do_not_share_randomness(gpt):
    alone_a = _run(gpt, [3], 30, temperature=1.0, seed=31)
    alone_b = _run(gpt, [3], 30, temperature=1.0, seed=32)
    assert alone_a != alone_b
    ga, gb = generate(gpt, [3], 30, temperature=1.0, seed=31), generate(gpt, [3], 30, temperature=1.0, seed=32)
    a, b = [], []
    for sa, sb in zip(ga, gb):
        a.append(sa.token)
        b.append(sb.token)
    assert (a, b) == (alone_a, alone_b)


@pytest.mark.parametrize("temperature", [1e-6, 1e-30, 1e-50, 1e-300, 5e-324])
def test_tiny_temperature_is_greedy_not_nan(gpt, temperature):
    logits = torch.tensor([0.3, 1.0, -2.0, 1.0 - 1e-6, -math.inf])
    filtered = filter_logits(logits, temperature)
    assert not filtered.isnan().any()
    assert filtered.softmax(-1)[1] > 0.5
    greedy = _run(gpt, [4], 3 * CONTEXT, temperature=0)
    assert _run(gpt, [4], 3 * CONTEXT, temperature=temperature, seed=1) == greedy


# --- where a song ends ---------------------------------------------------------------------------

END = (9, 9, 9)  # this model's runs of three 9s stand in for a song's end, two blank lines
ENDING = [dict(temperature=1.0, seed=5), dict(temperature=0.8, top_k=4, seed=4),
          dict(temperature=1.0, seed=6, refill_keep=1), dict(temperature=1.3, top_p=0.7, seed=5)]


def _first_end(tokens: list[int]) -> int | None:
    """How many tokens a song written without an end runs to its first end, if it has one."""
    return next((i for i in range(len(END), len(tokens) + 1) if tuple(tokens[i - len(END):i]) == END), None)


@pytest.mark.parametrize("kw", ENDING)
def test_a_song_stops_at_its_end(gpt, kw):
    n = 10 * CONTEXT
    free = _run(gpt, [1], n, **kw)
    ended = _run(gpt, [1], n, end=SongEnd(END), **kw)
    assert ended == free[:_first_end(free)]  # the same song, up to and with its end, and no further
    assert ended == [t for t, _ in reference_generate(gpt, [1], n, end=SongEnd(END), **kw)]


@pytest.mark.parametrize("kw", ENDING)
def test_an_end_before_the_minimum_is_not_drawn(gpt, kw):
    n, minimum = 10 * CONTEXT, 30
    assert _first_end(_run(gpt, [1], n, **kw)) <= minimum  # without the rule, these songs end sooner
    steps = list(generate(gpt, [1], n, end=SongEnd(END, minimum), **kw))
    tokens = [s.token for s in steps]
    assert minimum < len(tokens) < n and _first_end(tokens) == len(tokens)  # it ends later, at its first end
    expected = reference_generate(gpt, [1], n, end=SongEnd(END, minimum), **kw)
    assert tokens == [t for t, _ in expected]
    assert [s.prob for s in steps] == pytest.approx([p for _, p in expected], abs=1e-6)  # the model's own odds


def test_the_early_end_rule_gives_the_ends_weight_to_the_other_tokens(fixed_bigram):
    n = 4000
    steps = list(generate(fixed_bigram, [0], n, temperature=1.0, seed=42, end=SongEnd((0,), min_new_tokens=n)))
    tokens = torch.tensor([s.token for s in steps])
    assert len(steps) == n and 0 not in tokens.tolist()
    assert [s.prob for s in steps] == pytest.approx(PROBS[tokens].tolist())  # what the model weighed, unchanged
    counts = torch.bincount(tokens, minlength=len(PROBS)).double()
    expected = torch.cat([torch.zeros(1, dtype=torch.float64), PROBS[1:] / PROBS[1:].sum()])
    sigma = (expected * (1 - expected) / n).sqrt().clamp_min(1e-9)
    assert ((counts / n - expected).abs() / sigma).max() < 5


def test_a_banned_token_leaves_the_other_rows_alone():
    logits = torch.tensor([[0.0, 5.0, 1.0], [0.0, 5.0, 1.0]])
    both = [SamplingSettings(1.0), SamplingSettings(0.0)]
    assert draw(logits, both, [0.5, 0.5], [(1, False), None])[0][0] != 1
    assert [t for t, *_ in draw(logits, both, [0.5, 0.5], [None, (1, False)])] == [1, 2]  # greedy takes the next best
    assert draw(logits, both, [0.5, 0.5], [None, None]) == draw(logits, both, [0.5, 0.5])
    assert [t for t, *_ in draw(logits, both, [0.5, 0.5], [(0, True), (2, True)])] == [0, 2]  # an end that is due


@pytest.mark.parametrize("kw, message", [(dict(marker=()), "at least one token"),
                                         (dict(marker=(1,), min_new_tokens=-1), "min_new_tokens")])
def test_a_song_end_needs_a_marker_and_a_minimum_of_zero_or_more(kw, message):
    with pytest.raises(ValueError, match=message):
        SongEnd(**kw)


# --- filter_logits against an independent selection ---------------------------------------------

def _kept(logits: torch.Tensor) -> set[int]:
    return set(torch.isfinite(logits).nonzero().flatten().tolist())


def _nucleus(probs: list[float], top_p: float) -> set[int]:
    """The most likely tokens, in order, until their total probability reaches top_p."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept, total = set(), 0.0
    for i in order:
        kept.add(i)
        total += probs[i]
        if total >= top_p:
            break
    return kept


def test_filter_temperature_scales_and_keeps_everything():
    logits = torch.tensor([1.0, 3.0, 2.0, 0.5])
    torch.testing.assert_close(filter_logits(logits, 0.5), (logits - 3.0) / 0.5)
    assert _kept(filter_logits(logits, 2.0, top_k=4, top_p=1.0)) == {0, 1, 2, 3}


def test_filter_top_k():
    logits = torch.tensor([1.0, 3.0, 2.0, 0.5, 2.5])
    assert _kept(filter_logits(logits, 1.0, top_k=1)) == {1}
    assert _kept(filter_logits(logits, 1.0, top_k=2)) == {1, 4}
    assert _kept(filter_logits(logits, 0.3, top_k=3)) == {1, 2, 4}
    assert _kept(filter_logits(logits, 1.0, top_k=99)) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("top_p", [0.05, 0.31, 0.5, 0.77, 0.93, 0.999])
def test_filter_top_p_keeps_the_nucleus(seed, top_p):
    logits = 2 * torch.randn(20, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    temperature = 0.7
    assert _kept(filter_logits(logits, temperature, top_p=top_p)) == _nucleus(
        (logits / temperature).softmax(-1).tolist(), top_p)
    # With top-k as well, the nucleus is taken from the top-k tokens' renormalised distribution.
    top5 = logits.topk(5).indices.tolist()
    renormalised = torch.full_like(logits, -math.inf)
    renormalised[top5] = logits[top5] / temperature
    assert _kept(filter_logits(logits, temperature, top_k=5, top_p=top_p)) == _nucleus(
        renormalised.softmax(-1).tolist(), top_p)


@pytest.mark.parametrize("top_p", [1e-12, 1e-50, 1e-300])
def test_filter_tiny_top_p_keeps_the_most_likely_token(top_p):
    assert _kept(filter_logits(torch.tensor([1.0, 3.0, 2.0]), 1.0, top_p=top_p)) == {1}


# --- sampling statistics on a model whose next-token distribution is known -----------------------

PROBS = torch.tensor([0.30, 0.05, 0.25, 0.02, 0.20, 0.10, 0.08], dtype=torch.float64)


@pytest.fixture(scope="module")
def fixed_bigram() -> Bigram:
    """Every row of the table is the same, so every step samples from PROBS."""
    model = Bigram(BigramConfig(vocab_size=len(PROBS), context_length=16))
    with torch.no_grad():
        model.table.weight.copy_(PROBS.log().float().expand(len(PROBS), -1))
    return model.eval()


@pytest.mark.parametrize("kw, allowed", [
    (dict(), {0, 1, 2, 3, 4, 5, 6}),
    (dict(top_k=3), {0, 2, 4}),
    (dict(top_p=0.5), {0, 2}),          # 0.30 + 0.25 reaches 0.5
    (dict(top_p=0.76), {0, 2, 4, 5}),   # 0.30 + 0.25 + 0.20 = 0.75 is not enough
    (dict(top_k=4, top_p=0.9), {0, 2, 4, 5}),
])
def test_sampling_statistics(fixed_bigram, kw, allowed):
    n = 4000
    tokens = torch.tensor(_run(fixed_bigram, [0], n, temperature=1.0, seed=42, **kw))
    counts = torch.bincount(tokens, minlength=len(PROBS)).double()
    assert set(tokens.tolist()) == allowed
    expected = torch.zeros_like(PROBS)
    expected[list(allowed)] = PROBS[list(allowed)] / PROBS[list(allowed)].sum()
    sigma = (expected * (1 - expected) / n).sqrt().clamp_min(1e-9)
    assert ((counts / n - expected).abs() / sigma).max() < 5


def test_temperature_sharpens_and_flattens(fixed_bigram):
    n = 3000
    for temperature in (0.5, 2.0):
        counts = torch.bincount(torch.tensor(_run(fixed_bigram, [0], n, temperature=temperature, seed=1)),
                                minlength=len(PROBS)).double()
        expected = (PROBS.log() / temperature).softmax(-1)
        sigma = (expected * (1 - expected) / n).sqrt()
        assert ((counts / n - expected).abs() / sigma).max() < 5


# --- bad arguments -------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, message", [
    (dict(temperature=-0.1), "temperature"),
    (dict(temperature=math.nan), "temperature"),
    (dict(temperature=math.inf), "temperature"),
    (dict(top_k=0), "top_k"),
    (dict(top_k=-2), "top_k"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(top_p=math.nan), "top_p"),
    (dict(refill_keep=0), "refill_keep"),
    (dict(refill_keep=CONTEXT + 1), "refill_keep"),
    (dict(max_new_tokens=-1), "max_new_tokens"),
])
def test_invalid_parameters(gpt, kw, message):
    args = dict(max_new_tokens=5) | kw
    with pytest.raises(ValueError, match=message):
        list(generate(gpt, [1], **args))


def test_empty_prompt(gpt):
    with pytest.raises(ValueError, match="at least one token"):
        list(generate(gpt, [], 5))


def test_long_prompt_reads_only_the_last_window(gpt):
    prompt = list(range(VOCAB)) * 3
    assert _run(gpt, prompt, 20, temperature=1.0, seed=8) == _run(gpt, prompt[-CONTEXT:], 20, temperature=1.0, seed=8)


@settings(max_examples=80, deadline=None)
@given(temperature=st.one_of(st.floats(), st.sampled_from([0.0, 1e-300, 1e-45, 1.0, 1e300])),
       top_k=st.one_of(st.none(), st.integers(-3, 30)),
       top_p=st.one_of(st.none(), st.floats(), st.floats(0, 1)),
       seed=st.one_of(st.none(), st.integers(-2 ** 70, 2 ** 70), st.integers(-100, 100)),
       max_new_tokens=st.integers(-3, 3 * CONTEXT),
       prompt=st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=2 * CONTEXT))
def test_fuzz_parameters(gpt, temperature, top_k, top_p, seed, max_new_tokens, prompt):
    valid = (math.isfinite(temperature) and temperature >= 0 and (top_k is None or top_k >= 1)
             and (top_p is None or 0 < top_p <= 1) and max_new_tokens >= 0)
    seed_fits = seed is None or -2 ** 63 <= seed < 2 ** 64  # what torch.Generator.manual_seed takes
    try:
        steps = list(generate(gpt, prompt, max_new_tokens, temperature, top_k, top_p, seed))
    except ValueError:
        assert not (valid and seed_fits)
        return
    assert valid
    assert len(steps) == max_new_tokens
    assert all(0 <= s.token < VOCAB and 0 <= s.prob <= 1 for s in steps)


def test_an_end_is_kept_off_before_its_minimum_and_due_at_the_first_break_after_by():
    end = SongEnd((0, 0, 0), min_new_tokens=5, by=20)
    assert end.rule([7, 0, 0], 4) == (0, False)  # too early: the third break must not come
    assert end.rule([7, 0, 0], 10) is None  # the model may end the song, or not
    assert end.rule([7, 0, 0], 20) == (0, True)  # past ``by``: the song ends at this stanza break
    assert end.rule([7, 0, 7], 20) is None  # not at a stanza break: the song finishes its verse first
