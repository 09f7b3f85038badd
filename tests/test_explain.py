"""Looking inside: the alternatives shown at each character are the model's softmax at that step
(alone and in a batch), and attention weights are probabilities over the window the character was
sampled with, never over later characters."""

from __future__ import annotations

import pytest
import torch

from lyricgpt.batching import BatchSampler
from lyricgpt.explain import attention_map, next_char_odds
from lyricgpt.sampler import SamplingSettings, generate

SEED_LINE = "Down by the river"


def written(lm, steps) -> list[str]:
    """The text before each step's character: the seed line as read, then the characters so far."""
    text, before = lm.read_prompt(SEED_LINE).text, []
    for s in steps:
        before.append(text)
        text += lm.tokenizer.chars[s.token]
    return before


def assert_top_is_the_models_softmax(lm, steps):
    for step, text in zip(steps, written(lm, steps)):
        expected = next_char_odds(lm, text, window=step.window)
        assert [lm.tokenizer.chars[t] for t, _ in step.top] == [c for c, _ in expected]
        assert [p for _, p in step.top] == pytest.approx([p for _, p in expected], abs=1e-5)
        assert step.prob == pytest.approx(dict(expected).get(lm.tokenizer.chars[step.token], step.prob), abs=1e-5)


def test_alternatives_are_the_models_softmax_at_each_step_past_the_context(tiny_lm):
    prompt = tiny_lm.read_prompt(SEED_LINE).ids
    steps = list(generate(tiny_lm.model, prompt, 3 * tiny_lm.context_length, temperature=1.0, top_k=10, seed=1))
    assert max(s.window for s in steps) == tiny_lm.context_length and min(s.window for s in steps) < 30
    assert_top_is_the_models_softmax(tiny_lm, steps)
    assert all(len(s.top) == 5 and s.top[0][1] >= s.top[-1][1] for s in steps)
    assert any(s.sampled_prob > s.prob + 0.01 for s in steps)  # top-k moved the odds, and it shows


def test_alternatives_on_the_batched_path_are_the_models_softmax_too(tiny_lm):
    prompt = tiny_lm.read_prompt(SEED_LINE).ids
    sampler = BatchSampler(tiny_lm.model, 3)
    for i, settings in enumerate([SamplingSettings(0.8), SamplingSettings(0.0), SamplingSettings(1.2, top_p=0.9)]):
        sampler.add(prompt if i != 1 else prompt[:5], 70 + 10 * i, settings, seed=i, tag=i)
    steps = {0: [], 1: [], 2: []}
    while sampler.songs:
        for song, s in sampler.step():
            steps[song.tag].append(s)
    assert_top_is_the_models_softmax(tiny_lm, steps[0])
    assert_top_is_the_models_softmax(tiny_lm, steps[2])


def test_attention_weights_are_probabilities_over_earlier_characters_only(tiny_lm):
    ids = tiny_lm.tokenizer.encode("Oh my darling, oh my darling")
    weights = []
    with torch.no_grad():
        tiny_lm.model(torch.tensor([ids]), attention_weights=weights)
    config = tiny_lm.model.config
    assert len(weights) == config.n_layer
    for w in weights:
        assert w.shape == (1, config.n_head, len(ids), len(ids))
        assert (w >= 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(1, config.n_head, len(ids)))
        assert (w.triu(1) == 0).all()  # nothing attends to a later character


def test_attention_of_a_character_past_the_context_uses_its_own_window(tiny_lm):
    prompt = tiny_lm.read_prompt(SEED_LINE).ids
    steps = list(generate(tiny_lm.model, prompt, 2 * tiny_lm.context_length, temperature=1.0, seed=2))
    i = next(i for i, s in enumerate(steps) if i > tiny_lm.context_length and s.window < tiny_lm.context_length)
    text = written(tiny_lm, steps)[i]
    view = attention_map(tiny_lm, text, window=steps[i].window)
    assert "".join(view["chars"]) == text[-steps[i].window:]
    for layer in view["weights"]:
        assert len(layer) == tiny_lm.model.config.n_head
        for head in layer:
            assert len(head) == steps[i].window and min(head) >= 0 and sum(head) == pytest.approx(1, abs=1e-5)


def test_a_window_outside_the_context_is_refused(tiny_lm):
    for window in (0, tiny_lm.context_length + 1):
        with pytest.raises(ValueError, match="window"):
            attention_map(tiny_lm, "la la", window=window)


def test_a_song_from_a_blank_line_is_explained_from_the_line_break_it_started_from(tiny_lm):
    steps = list(generate(tiny_lm.model, tiny_lm.start_ids(), 12, temperature=1.0, seed=3))
    text = ""
    for step in steps:  # what the page holds before each character: no visible line break
        expected = next_char_odds(tiny_lm, text, window=step.window)
        assert [p for _, p in step.top] == pytest.approx([p for _, p in expected], abs=1e-5)
        text += tiny_lm.tokenizer.chars[step.token]
