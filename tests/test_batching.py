"""The batched sampler against the single-song one: songs that join and leave mid-run, with mixed
prompts, lengths and settings, past the context length, write what each would write alone."""

from __future__ import annotations

import pytest
import torch

from lyricgpt.batching import BatchSampler
from lyricgpt.form import Form, FormSpec
from lyricgpt.model import GPT
from lyricgpt.sampler import SamplingSettings, SongEnd, generate
from test_sampler import CONTEXT, END, VOCAB, random_gpt

class Recording(torch.nn.Module):
    """The model, keeping the last-position logits of every forward pass."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model, self.config, self.calls = model, model.config, []

    def new_cache(self, batch_size: int):
        return self.model.new_cache(batch_size)

    def forward(self, idx, targets=None, cache=None):
        logits, loss = self.model(idx, targets, cache)
        self.calls.append(logits[:, -1].clone())
        return logits, loss


# (prompt, new tokens, settings, seed): greedy and seeded, top-k and top-p, all longer than the context.
SONGS = [
    ([1], 30, SamplingSettings(0.0), None),
    ([2, 5, 7], 17, SamplingSettings(1.0), 3),
    (list(range(VOCAB)) * 2, 25, SamplingSettings(0.8, top_k=4), 4),
    ([3], 40, SamplingSettings(1.3, top_p=0.7), 5),
    ([4, 4], 12, SamplingSettings(0.0), None),
    ([6, 1, 2, 3, 4, 5, 6, 7], 9, SamplingSettings(1.0, top_k=2, top_p=0.9), 6),
]


def solo(model, prompt, n, settings, seed, refill_keep=None, end=None, form=None):
    return list(generate(model, prompt, n, settings.temperature, settings.top_k, settings.top_p, seed,
                         refill_keep=refill_keep, end=end, form=form))


def run_batched(model, songs, capacity, join_every=3, refill_keep=None, ends=None, forms=None):
    """Songs join every ``join_every`` steps while there is room; returns each song's steps.
    ``ends``: each song's SongEnd, ``forms`` its Form (default: none)."""
    sampler = BatchSampler(model, capacity, refill_keep)
    out, waiting, step = {}, list(enumerate(songs)), 0
    while waiting or sampler.songs:
        while waiting and len(sampler.songs) < capacity and (step % join_every == 0 or not sampler.songs):
            i, (prompt, n, settings, seed) = waiting.pop(0)
            sampler.add(prompt, n, settings, seed, tag=i, end=ends[i] if ends else None,
                        form=forms[i] if forms else None)
            out[i] = []
        for song, s in sampler.step():
            out[song.tag].append(s)
        assert len(sampler.songs) <= capacity
        step += 1
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("capacity, join_every, refill_keep", [(4, 3, None), (6, 1, None), (2, 5, 1), (3, 2, CONTEXT)])
def test_every_song_in_a_mixed_batch_writes_what_it_writes_alone(dtype, capacity, join_every, refill_keep):
    model = random_gpt(dtype)
    out = run_batched(model, SONGS, capacity, join_every, refill_keep)
    for i, (prompt, n, settings, seed) in enumerate(SONGS):
        alone = solo(model, prompt, n, settings, seed, refill_keep)
        assert [s.token for s in out[i]] == [s.token for s in alone], f"song {i}"
        assert [s.window for s in out[i]] == [s.window for s in alone]
        tol = 1e-9 if dtype == torch.float64 else 2e-5
        assert [s.prob for s in out[i]] == pytest.approx([s.prob for s in alone], abs=tol)
        for a, b in zip(out[i], alone):
            assert [t for t, _ in a.top] == [t for t, _ in b.top] or a.top == pytest.approx(b.top, abs=tol)


@pytest.mark.parametrize("capacity, refill_keep", [(3, None), (2, 1)])
def test_songs_that_end_write_what_they_write_alone_and_leave_at_their_end(capacity, refill_keep):
    model = random_gpt(torch.float64)  # the model END is chosen for
    ends = [SongEnd(END, minimum) for minimum in (0, 30, 0, 12, 30, 0)]
    out = run_batched(model, [(prompt, 10 * CONTEXT, settings, seed) for prompt, _, settings, seed in SONGS],
                      capacity, refill_keep=refill_keep, ends=ends)
    ended = 0
    for i, (prompt, _, settings, seed) in enumerate(SONGS):
        alone = solo(model, prompt, 10 * CONTEXT, settings, seed, refill_keep, ends[i])
        assert [s.token for s in out[i]] == [s.token for s in alone], f"song {i}"
        ended += len(alone) < 10 * CONTEXT
    assert ended >= 4  # most of these songs end before their length


def test_a_song_that_ends_frees_its_row_at_once():
    model = random_gpt(torch.float64)  # the model END is chosen for
    sampler = BatchSampler(model, 2)
    ending = sampler.add([1], 10**6, SamplingSettings(1.0), 5, tag="ending", end=SongEnd(END))
    sampler.add([2], 10**6, SamplingSettings(1.0), 2, tag="long")
    length = len(solo(model, [1], 10**3, SamplingSettings(1.0), 5, end=SongEnd(END)))
    for _ in range(length - 1):
        sampler.step()
    assert len(sampler.songs) == 2 and not ending.finished
    assert [song.tag for song, _ in sampler.step()] == ["ending", "long"]  # its last token, the end's
    assert ending.ended and [song.tag for song in sampler.songs] == ["long"]
    sampler.add([3], 5, SamplingSettings(1.0), 3, tag="next")  # its row is free for the next song


def test_logits_match_the_solo_path_at_every_step():
    model = random_gpt(torch.float32)
    prompts = [([1], 20), ([2, 3, 4], 20), (list(range(10)), 20)]
    alone = []
    for prompt, n in prompts:
        rec = Recording(model)
        list(generate(rec, prompt, n, temperature=0))
        alone.append(rec.calls)  # one call per step: the prefill, then each new token (re-fills included)
    rec = Recording(model)
    sampler = BatchSampler(rec, 3)
    for i, (prompt, n) in enumerate(prompts):
        sampler.add(prompt, n, SamplingSettings(0.0), tag=i)
    rec.calls.clear()  # the prefills of all but the last prompt token
    steps = {i: [] for i in range(3)}
    while sampler.songs:
        order = [s.tag for s in sampler.songs]
        before = len(rec.calls)
        sampler.step()
        batch_logits = rec.calls[before]  # the step's batched forward; re-fills come after it
        for row, tag in enumerate(order):
            steps[tag].append(batch_logits[row])
    for i in range(3):
        solo_logits = [c[0] for c in alone[i] if c.size(0) == 1]
        # The solo loop calls the model once per token, re-fills included, so its calls line up
        # with the batch's steps one to one.
        assert len(steps[i]) == len(solo_logits) == prompts[i][1]
        for got, want in zip(steps[i], solo_logits):
            torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_one_songs_settings_and_seed_never_change_another_songs_text():
    model = random_gpt(torch.float32)
    target = ([2, 5], 30, SamplingSettings(1.0), 42)
    alone = [s.token for s in solo(model, *target)]
    for neighbour in [SamplingSettings(0.0), SamplingSettings(2.0), SamplingSettings(1.0, top_k=1),
                      SamplingSettings(0.5, top_p=0.3)]:
        for seed in (42, 7):
            out = run_batched(model, [target, ([2, 5], 30, neighbour, seed), ([9], 11, neighbour, seed + 1)], 3)
            assert [s.token for s in out[0]] == alone


def test_a_removed_song_frees_its_row_at_once_and_the_others_carry_on():
    model = random_gpt(torch.float32)
    sampler = BatchSampler(model, 2)
    a = sampler.add([1], 20, SamplingSettings(1.0), 1, tag="a")
    sampler.add([2], 20, SamplingSettings(1.0), 2, tag="b")
    got = {"a": [], "b": []}
    for _ in range(5):
        for song, s in sampler.step():
            got[song.tag].append(s.token)
    sampler.remove(a)  # cancelled mid-song
    sampler.add([3], 20, SamplingSettings(1.0), 3, tag="c")  # its row is free for the next song
    got["c"] = []
    while sampler.songs:
        for song, s in sampler.step():
            got[song.tag].append(s.token)
    assert got["b"] == [s.token for s in solo(model, [2], 20, SamplingSettings(1.0), 2)]
    assert got["c"] == [s.token for s in solo(model, [3], 20, SamplingSettings(1.0), 3)]
    assert got["a"] == [s.token for s in solo(model, [1], 20, SamplingSettings(1.0), 1)][:5]


def test_a_full_batch_and_bad_songs_are_refused():
    sampler = BatchSampler(random_gpt(torch.float32), 1)
    with pytest.raises(ValueError, match="at least one token"):
        sampler.add([], 5, SamplingSettings())
    with pytest.raises(ValueError, match="max_new_tokens"):
        sampler.add([1], 0, SamplingSettings())
    sampler.add([1], 5, SamplingSettings())
    with pytest.raises(RuntimeError, match="full"):
        sampler.add([1], 5, SamplingSettings())


def test_a_song_whose_sampling_fails_leaves_alone():
    model = random_gpt(torch.float32)
    sampler = BatchSampler(model, 2)
    bad = sampler.add([1], 10, SamplingSettings(1.0), 1, tag="bad")
    sampler.add([2], 10, SamplingSettings(1.0), 2, tag="good")
    bad.rng = None  # drawing its random number raises for this song only
    tokens = []
    while sampler.songs:
        tokens += [s.token for song, s in sampler.step() if song.tag == "good"]
    assert isinstance(bad.error, AttributeError)
    assert tokens == [s.token for s in solo(model, [2], 10, SamplingSettings(1.0), 2)]


# Songs in the corpus's characters, each with a form (one with none, one free, which keeps out of
# loops): (first line, new characters, settings, seed, form). Past the tiny model's 32-character
# context, so that every form is read again across re-fills.
FORM_SONGS = [
    ("I walked out in the morning rain", 160, SamplingSettings(0.8), 1, FormSpec("AABB", (8,), True)),
    ("Baby, don't you cry", 140, SamplingSettings(1.0, top_k=20), 2, FormSpec("ABCB")),
    ("Down by the river", 90, SamplingSettings(1.0), 3, None),
    ("", 150, SamplingSettings(0.9, top_p=0.9), 4, FormSpec(syllables=(8, 6), real_words=True)),
    ("We were young", 120, SamplingSettings(0.0), None, FormSpec()),
]


def form_songs(lm) -> list[tuple[list[int], int, SamplingSettings, int | None]]:
    """FORM_SONGS as the batch takes them: (prompt, new tokens, settings, seed)."""
    return [(lm.read_prompt(line).ids or lm.start_ids(), n, settings, seed)
            for line, n, settings, seed, _ in FORM_SONGS]


def test_songs_with_forms_write_what_they_write_alone_as_others_join_and_leave(tiny_lm, corpus_lexicon):
    forms = [spec and Form(spec, corpus_lexicon, tiny_lm.tokenizer.chars) for *_, spec in FORM_SONGS]
    songs = form_songs(tiny_lm)
    out = run_batched(tiny_lm.model, songs, capacity=3, join_every=4, forms=forms)
    for i, (prompt, n, settings, seed) in enumerate(songs):
        alone = solo(tiny_lm.model, prompt, n, settings, seed, form=forms[i])
        assert [s.token for s in out[i]] == [s.token for s in alone], f"song {i}"
        assert [s.relaxed for s in out[i]] == [s.relaxed for s in alone]
        assert [s.form_weight for s in out[i]] == pytest.approx([s.form_weight for s in alone], abs=2e-5)
    couplets = tiny_lm.tokenizer.decode([s.token for s in out[0]])
    assert "\n\n" in couplets and len(out[0]) >= 160  # the form was kept: a stanza of four lines, then a break


def test_songs_that_start_from_one_prompt_share_its_prefill_and_write_what_they_write_alone():
    model = random_gpt(torch.float32)
    sampler = BatchSampler(model, 4)
    prefills = []
    fill = sampler.decoder.prefill
    sampler.decoder.prefill = lambda row, tokens: prefills.append(row) or fill(row, tokens)
    settings = SamplingSettings(1.0)
    for seed in range(4):  # four candidates for one song's next line, as lyricgpt.cowrite asks for them
        sampler.add([1, 2, 3, 4], 12, settings, seed, tag=seed)
    assert prefills == [0]  # one prefill; the other rows copy its keys and values
    out = {seed: [] for seed in range(4)}
    while sampler.songs:
        for song, step in sampler.step():
            out[song.tag].append(step.token)
    assert out == {seed: [s.token for s in solo(model, [1, 2, 3, 4], 12, settings, seed)] for seed in range(4)}
