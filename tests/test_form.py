"""The song form's rules (lyricgpt.form) on hand-made cases, with a small lexicon and the real dictionary."""

from __future__ import annotations

import string

import pytest
import torch
from hypothesis import given, settings, strategies as st

from lyricgpt.form import LEVELS, Form, FormError, FormSpec, parse_rhyme, parse_syllables, steer
from lyricgpt.lexicon import Lexicon

CHARS = list("\n !\"&'(),-.:;?" + string.ascii_uppercase + string.ascii_lowercase)
WORDS = ("i saw the day and walked away along by river side as we were going to stay may play "
         "pay ray say hay night light bright sight fight might white moon soon noon june tune spoon "
         "mornin' she he her my love heart true blue you")


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon({word: 10 for word in WORDS.split()})


def allowed(form: Form, text: str, level: int = 0) -> set[str]:
    bits = form.read(text).allowed(level)
    return {c for i, c in enumerate(CHARS) if bits >> i & 1}


def test_a_rhyming_line_ends_only_on_a_word_that_rhymes_with_its_partner(lexicon):
    form = Form(FormSpec("AABB", real_words=True), lexicon, CHARS)
    assert "\n" in allowed(form, "I saw the day\nAnd walked away")
    assert "\n" not in allowed(form, "I saw the day\nAnd walked along")
    assert "\n" not in allowed(form, "I saw the day\nAnd walked the day")  # the same word is no rhyme
    # A letter is allowed where it can still become a middle word or a rhyme: "aw" leads only to "away".
    assert allowed(form, "I saw the day\nAnd walked aw") == {"a"}


def test_a_word_the_voice_does_not_know_cannot_be_written(lexicon):
    form = Form(FormSpec(real_words=True), lexicon, CHARS)
    assert allowed(form, "I saw the ri") == {"v"}  # river
    assert allowed(form, "I saw the river") >= {" ", ",", "\n"}


def test_a_partner_the_dictionary_lacks_cannot_be_rhymed_so_the_form_relaxes(lexicon):
    form = Form(FormSpec("AABB", real_words=True), lexicon, CHARS)
    state = form.read("I saw her in the mornin'\nAnd walked along the river side")
    assert not state.allowed(0) >> CHARS.index("\n") & 1  # no word rhymes with mornin'
    probs = torch.zeros(len(CHARS))
    probs[CHARS.index("\n")] = 1.0  # the model wants to end the line
    mask, weight, level = steer(probs, state)
    assert level == 3 and weight == 1.0 and mask[CHARS.index("\n")]  # the rhyme gave way, not the words


def test_where_the_form_leaves_the_model_nothing_it_relaxes_in_order(lexicon):
    form = Form(FormSpec("AABB", syllables=(8,), real_words=True), lexicon, CHARS)
    state = form.read("I saw the day\nAnd walked ")
    probs = torch.zeros(len(CHARS))
    probs[CHARS.index("z")] = 1.0  # no word of the voice's starts with z
    mask, weight, level = steer(probs, state)
    assert level == LEVELS - 1 and mask.all()  # only the stanza's shape is left, and the song goes on
    probs[:] = 1.0 / len(CHARS)
    assert steer(probs, state)[2] == 0


def test_a_syllable_pattern_sets_where_each_line_may_end(lexicon):
    form = Form(FormSpec(syllables=(8, 6), real_words=True), lexicon, CHARS)
    eight = "I saw the day and walked away"  # 8 syllables
    assert "\n" in allowed(form, eight)
    assert "\n" not in allowed(form, "I saw the day and walked")  # 6
    assert "\n" in allowed(form, "I saw the day and walked by")  # 7: a syllable either way (SYLLABLE_SLACK)
    assert " " not in allowed(form, eight)  # no room for another word
    assert "\n" in allowed(form, eight + "\nI saw her walk away".replace("walk", "play"))  # 6: the pattern's second
    assert "\n" not in allowed(form, eight + "\nI saw the")  # 3: short of 6, even a syllable short


def test_a_stanza_is_as_many_lines_as_the_scheme_then_a_blank_line(lexicon):
    form = Form(FormSpec("AABB"), lexicon, CHARS)
    stanza = "I saw the day\nAnd walked away\nBy night\nThe moon was bright\n"
    assert allowed(form, stanza) == {"\n"}
    after = allowed(form, stanza + "\n")
    assert "\n" in after and "I" in after  # a new stanza, or the song's end
    assert "\n" not in allowed(form, stanza + "\n\n")  # never a fourth line break
    assert "\n" not in allowed(form, "I saw the day\n")  # no blank line inside a stanza


def test_a_free_song_keeps_out_of_loops_but_not_out_of_refrains(lexicon):
    form = Form(FormSpec(), None, CHARS)
    assert "s" not in allowed(form, "the stars of the stars of the ")  # "the stars" came before "of the"
    assert "s" in allowed(form, "the stars of the ")
    refrain = "the stars of the night\nand the moon on the sea\nnow the stars of the "
    assert "n" in allowed(form, refrain)  # two lines back: a refrain may come back


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="".join(CHARS), max_size=120), st.integers(0, 120), st.sampled_from(["", "AABB", "ABCB"]),
       st.sampled_from([(), (8,), (8, 6)]))
def test_the_state_is_a_function_of_the_text_however_it_was_reached(lexicon, text, cut, scheme, syllables):
    form = Form(FormSpec(scheme, syllables, real_words=True), lexicon, CHARS)
    whole = form.read(text)
    pieces = form.read(text[:cut])
    for char in text[cut:]:
        pieces.push(char)
    assert [whole.allowed(level) for level in range(LEVELS)] == [pieces.allowed(level) for level in range(LEVELS)]
    assert vars(whole) == vars(pieces)


@pytest.mark.parametrize("value, letters", [("couplets", "AABB"), ("ABAB", "ABAB"), (" ballad ", "ABCB"),
                                            ("limerick", "AABBA"), ("none", ""), (None, "")])
def test_a_scheme_by_its_letters_or_its_name(value, letters):
    assert parse_rhyme(value) == letters


@pytest.mark.parametrize("value", ["A1B", "", "A" * 40, "A", "aabb", 5])
def test_a_scheme_that_cannot_be_kept_is_refused(value):
    with pytest.raises(FormError):
        parse_rhyme(value)


@pytest.mark.parametrize("value, pattern", [("0", ()), (0, ()), ("8", (8,)), (8, (8,)), ("8,6", (8, 6)),
                                            ("8, 6", (8, 6)), (10.0, (10,))])
def test_syllables_as_text_or_a_number(value, pattern):
    assert parse_syllables(value) == pattern


@pytest.mark.parametrize("value", ["3", "40", "8,x", "8,,6", "٨", 8.5, True, [8]])
def test_syllables_that_cannot_be_kept_are_refused(value):
    with pytest.raises(FormError):
        parse_syllables(value)


def test_a_free_songs_guard_gives_way_where_the_model_wants_nothing_else():
    form = Form(FormSpec(), None, CHARS)
    state = form.read("the stars of the stars of the ")
    probs = torch.zeros(len(CHARS))
    probs[CHARS.index("s")] = 1.0  # the model will have the loop
    mask, weight, level = steer(probs, state)
    assert level == LEVELS - 1 and mask.all() and weight == 1.0
