"""lyricgpt.voices: each voice named by its card, with its own example lines, a bigram counted from
the same songs and scored on the same validation songs as its card's figure, and the fallback of a
voice that fails to load."""

from __future__ import annotations

import math
import shutil
from collections import Counter

import pytest

from lyricgpt.data import read_corpus, train_val_split
from lyricgpt.evaluate import score_text
from lyricgpt.serving import EXAMPLE_LINES
from lyricgpt.song_request import InputError
from lyricgpt.voices import find_voice, load_voices, model_line


@pytest.fixture(scope="module")
def two_voices(second_voice_dir, tiny_model_dir, tmp_path_factory):
    return load_voices([str(second_voice_dir), str(tiny_model_dir)], None, [tiny_model_dir], timeout=2,
                       root=tmp_path_factory.mktemp("root"))


def test_voices_are_named_by_their_cards_with_their_own_example_lines(two_voices, second_voice_dir, tiny_run):
    (trained, untrained), notes = two_voices
    assert notes == []
    assert trained.name == "songs of songs.txt"  # the card's training data: no ``voice:`` in a train.py card
    assert trained.label == f"songs of songs.txt · {trained.lm.val_bits_per_char:.3f} bits/char"
    assert trained.examples == ["Cold river road", "Blue summer night"]  # blank lines skipped
    assert untrained.name.endswith("tiny-model0") and untrained.label == untrained.name  # no card: its folder
    assert untrained.examples == EXAMPLE_LINES
    card = second_voice_dir / "README.md"
    card.write_text(card.read_text().replace("---\n", "---\nvoice: Cold rivers\n", 1))
    try:
        named, _ = load_voices([str(second_voice_dir)] * 2, None, [second_voice_dir], 2, second_voice_dir)
    finally:
        shutil.copy(tiny_run[1] / "model" / "README.md", card)
    assert [v.name for v in named] == ["Cold rivers", "Cold rivers (2)"]  # two voices never share a name


def test_the_bigram_is_counted_from_the_same_songs_and_scored_on_the_same_validation_songs(two_voices, corpus):
    voice = two_voices[0][0]
    train, val = train_val_split(read_corpus(corpus), min_chars=voice.lm.context_length + 1)
    # Like with like: the card's figure is the voice's score on exactly the songs the bigram is scored on.
    assert score_text(voice.lm, val)["bits_per_char"] == pytest.approx(voice.lm.val_bits_per_char, abs=1e-4)
    baseline = voice.baseline()
    assert baseline is voice.baseline()  # counted once
    bpc = score_text(baseline.lm, val)["bits_per_char"]
    assert f"{bpc:.3f} bits per character on the same validation songs" in baseline.note
    # Against a count by hand: add-one smoothed frequencies of each character after each character.
    chars = voice.lm.tokenizer.chars
    pairs = Counter(zip(train, train[1:]))
    table = baseline.lm.model.table.weight
    for a, b in [("o", "v"), ("e", " "), ("\n", "C"), ("v", "v")]:  # the last pair never occurs
        after_a = sum(n for (x, _), n in pairs.items() if x == a)
        expected = (pairs[a, b] + 1) / (after_a + len(chars))
        assert math.exp(table[chars.index(a), chars.index(b)].item()) == pytest.approx(expected, rel=1e-5)


def test_without_its_songs_a_voice_has_no_bigram_and_says_why(two_voices):
    baseline = two_voices[0][1].baseline()
    assert baseline.lm is None and "would not compare like with like" in baseline.note


def test_a_voice_that_fails_falls_back_and_the_page_says_so(second_voice_dir, tiny_model_dir, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    voices, notes = load_voices([str(second_voice_dir), str(broken)], None, [tiny_model_dir], 2, tmp_path)
    assert [v.lm.folder for v in voices] == [second_voice_dir, tiny_model_dir] and notes == []
    line = model_line(voices, notes, voices[0])
    assert "Another voice fell back to the bundled model because folder" in line and "broken-model" in line
    assert str(tmp_path) not in line
    # A fallback to a model already among the voices is left out, and said.
    voices, notes = load_voices([str(tiny_model_dir), str(broken)], None, [tiny_model_dir], 2, tmp_path)
    assert len(voices) == 1 and len(notes) == 1 and notes[0].startswith("Left out one model because folder")
    assert "has no config.json" in model_line(voices, notes, voices[0])


def test_find_voice_by_name_or_label_in_any_case_and_refuse_others_by_name(two_voices):
    voices, _ = two_voices
    assert find_voice(voices, None) is find_voice(voices, " ") is voices[0]
    assert find_voice(voices, voices[1].name.upper()) is voices[1]
    assert find_voice(voices, voices[0].label) is voices[0]
    for wanted in ["nobody", 3, ["x"]]:
        with pytest.raises(InputError, match=rf"there is no voice .*; choose one of: '{voices[0].name}'"):
            find_voice(voices, wanted)
