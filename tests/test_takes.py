"""A song written a line at a time, several takes of each line, one kept (lyricgpt.takes): each line
kept is one of the takes its seeds write alone, drawn by how little the form bent it; a seed writes
the same song alone and through the engine's process; one take, or a free song, is the plain one-row song; the song ends where a song
with its form ends; an engine without places for every take says so at a song's start, and a song under
way waits for them."""

from __future__ import annotations

import random
import threading

import pytest

from lyricgpt.engine import Engine, EngineBusy
from lyricgpt.form import FormSpec
from lyricgpt.sampler import SamplingSettings, SongEnd, Step, generate
from lyricgpt.takes import MAX_TAKES, _takes, pick_take, write_song

RHYMED = FormSpec("AABB", (), True)
SETTINGS = SamplingSettings(1.0)


@pytest.fixture(scope="module")
def engine(tiny_lm):
    """Places for 4 songs and none waiting: a song's 4 takes fill it."""
    engine = Engine(tiny_lm.model, max_batch=4, max_waiting=0, lexicon=tiny_lm.lexicon, chars=tiny_lm.tokenizer.chars)
    yield engine
    engine.close()


def step(prob: float, weight: float = 1.0, relaxed: int = 0) -> Step:
    return Step(0, prob, prob, (), 1, form_weight=weight, relaxed=relaxed)


def text_of(lm, steps) -> str:
    return "".join(lm.tokenizer.chars[s.token] for s in steps)


def test_a_take_is_kept_with_a_chance_in_proportion_to_the_form_weights_of_its_characters():
    takes = [[step(0.9, weight=0.5)] * 2, [step(0.1)] * 3, [step(0.9, weight=0.5)]]  # weights 0.25, 1, 0.5
    draws = [pick_take(takes, u / 1000) for u in range(1000)]
    assert [draws.count(i) for i in range(3)] == [143, 572, 285]  # 1/7, 4/7, 2/7 of the draws
    assert pick_take(takes, 0.0) == 0 and pick_take(takes, 0.999999) == 2
    # A take where the form relaxed (its weight below sampler's MIN_WEIGHT) is all but never kept.
    relaxed = [[step(0.99, weight=1e-5, relaxed=1)], [step(0.1, weight=0.5)] * 3]
    assert {pick_take(relaxed, (u + 0.5) / 100) for u in range(100)} == {1}
    # Weights far below a float's range still compare.
    assert pick_take([[step(0.5, weight=1e-200)] * 3, [step(0.5, weight=1e-200)] * 2], 0.5) == 1


def test_each_line_kept_is_drawn_from_the_takes_its_seeds_write_alone(tiny_lm):
    prompt = tiny_lm.tokenizer.encode("The night is cold")
    form = tiny_lm.form(RHYMED)
    newline = tiny_lm.tokenizer.encode("\n")[0]
    lines = list(write_song(tiny_lm, prompt, 120, SETTINGS, 7, None, RHYMED, 3))
    rng, text = random.Random(7), list(prompt)
    for line in lines:
        takes = []
        seeds, u = [rng.randrange(2 ** 31) for _ in range(3)], rng.random()
        for seed in seeds:
            take = []
            for s in generate(tiny_lm.model, text, 2, 1.0, seed=seed, form=form):  # 2: to the end of a line
                take.append(s)
            takes.append(take)
        assert [s.token for s in line] == [s.token for s in takes[pick_take(takes, u)]]
        assert line[-1].token == newline  # a line (a blank line before it coming with it)
        text += [s.token for s in line]
    assert sum(map(len, lines)) >= 120 and len(lines) >= 3


def test_a_seeded_song_is_the_same_alone_and_through_the_engines_process(tiny_lm, engine):
    prompt = tiny_lm.tokenizer.encode("Hello there")
    end = tiny_lm.song_end(min_new_chars=20, by=100)
    alone = [s.token for line in write_song(tiny_lm, prompt, 200, SETTINGS, 3, end, RHYMED, 4) for s in line]
    batched = [s.token for line in write_song(tiny_lm, prompt, 200, SETTINGS, 3, end, RHYMED, 4, engine) for s in line]
    assert alone == batched and len(alone) >= 20
    other = [s.token for line in write_song(tiny_lm, prompt, 200, SETTINGS, 4, end, RHYMED, 4) for s in line]
    assert other != alone


@pytest.mark.parametrize("form, takes", [(RHYMED, 1), (FormSpec(), 4)])
def test_one_take_or_a_free_song_is_the_plain_song_a_character_at_a_time(tiny_lm, engine, form, takes):
    prompt = tiny_lm.tokenizer.encode("Hello")
    plain = [s.token for s in generate(tiny_lm.model, prompt, 60, 1.0, seed=9, form=tiny_lm.form(form))]
    alone = list(write_song(tiny_lm, prompt, 60, SETTINGS, 9, None, form, takes))
    assert [s.token for chunk in alone for s in chunk] == plain and all(len(chunk) == 1 for chunk in alone)
    batched = write_song(tiny_lm, prompt, 60, SETTINGS, 9, None, form, takes, engine)
    assert [s.token for chunk in batched for s in chunk] == plain


def test_a_song_of_takes_ends_where_the_model_ends_it_or_at_its_length_after_a_whole_line(ending_lm):
    # ending_lm ends its songs soon after they may end: the takes carry the song's end across lines.
    prompt = ending_lm.tokenizer.encode("a")
    end = ending_lm.song_end(min_new_chars=5)
    tokens = [s.token for line in write_song(ending_lm, prompt, 400, SETTINGS, 1, end, RHYMED, 2) for s in line]
    assert end.reached(prompt + tokens) and len(tokens) < 400
    song = text_of(ending_lm, [s for line in write_song(ending_lm, prompt, 30, SETTINGS, 1, None, RHYMED, 2)
                               for s in line])
    assert len(song) >= 30 and song.endswith("\n") and not song.endswith("\n\n")


def test_an_end_carried_to_the_rest_of_a_song_counts_from_where_it_goes_on():
    end = SongEnd((1, 1), min_new_tokens=10, by=50)
    assert end.after(4) == SongEnd((1, 1), 6, 46)
    assert end.after(60) == SongEnd((1, 1), 0, 0)
    assert SongEnd((1,), 3).after(2).by is None


def test_an_engine_without_a_place_for_every_take_is_busy_and_bad_takes_are_refused(tiny_lm, engine):
    with pytest.raises(EngineBusy, match="places for 4 of the 5 takes"):
        list(write_song(tiny_lm, [1, 2], 50, SETTINGS, 1, None, RHYMED, 5, engine))
    assert len(list(engine.submit([1], 5, SETTINGS, 1))) == 5  # the places taken are free again
    for takes in (0, MAX_TAKES + 1):
        with pytest.raises(ValueError, match="takes must be 1 to 8"):
            list(write_song(tiny_lm, [1], 5, SETTINGS, 1, None, RHYMED, takes))


def test_a_song_under_way_waits_for_places_for_its_next_lines_takes(tiny_lm, engine):
    blocker = engine.submit([1], 100_000, SETTINGS, 1)  # a long song holds one of the four places
    with pytest.raises(EngineBusy):  # a song's first line: busy at once, as any song
        _takes(tiny_lm, [1, 2], [5, 6, 7, 8], SETTINGS, None, RHYMED, engine, first=True)
    threading.Timer(0.3, blocker.cancel).start()
    rows = _takes(tiny_lm, [1, 2], [5, 6, 7, 8], SETTINGS, None, RHYMED, engine, first=False)
    assert [row.seed for row in rows] == [5, 6, 7, 8] and all(row.done and row.steps for row in rows)
