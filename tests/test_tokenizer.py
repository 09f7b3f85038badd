"""CharTokenizer and normalize: stable ids, lossless round trips, a stated policy for unknown
characters, and a clear TokenizerError for every kind of bad tokenizer file."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyricgpt.tokenizer import FORMAT, MAX_FILE_BYTES, CharTokenizer, TokenizerError, normalize


@pytest.fixture(scope="module")
def tok(corpus_text) -> CharTokenizer:
    return CharTokenizer.from_text(corpus_text)


def test_vocabulary_is_sorted_and_independent_of_text_order(tok, corpus_text):
    assert tok.chars == sorted(set(tok.chars))
    assert set(tok.chars) == set(normalize(corpus_text))
    chars = list(corpus_text)
    random.Random(0).shuffle(chars)
    shuffled = CharTokenizer.from_text("".join(chars))
    assert shuffled.chars == tok.chars
    sample = corpus_text[:2000]
    assert shuffled.encode(sample) == tok.encode(sample)


def test_round_trips_the_whole_corpus(tok, corpus_text):
    enc = tok.encode_with_report(corpus_text)
    assert enc.dropped == {}
    assert len(enc.ids) == len(normalize(corpus_text))
    assert tok.decode(enc.ids) == normalize(corpus_text) == enc.text


@pytest.mark.parametrize("raw, folded", [
    ("\u2018it\u2019s\u2019 \u201chi\u201d \u201eja\u201c \u00abnon\u00bb", "'it's' \"hi\" \"ja\" \"non\""),
    ("a\u2014b\u2013c\u2012d\u2212e", "a-b-c-d-e"),
    ("caf\u00e9 na\u00efve \u00c5ngstr\u00f6m \u00c7a se\u00f1or", "cafe naive Angstrom Ca senor"),
    ("e\u0301", "e"),  # an already-decomposed accent
    ("\ufb01ne \ufb02ow \ufb00 stra\u00dfe \u00e6ther \u0153uvre", "fine flow ff strasse aether oeuvre"),
    ("\uff21\uff22\uff23\uff11\uff12\uff01", "ABC12!"),
    ("a\r\nb\rc\nd\u2028e", "a\nb\nc\nd\ne"),
    ("no\u00a0break\tthin\u2009space", "no break thin space"),
])
def test_normalize_folds(raw, folded):
    assert normalize(raw) == folded
    assert normalize(folded) == folded


def test_normalize_is_idempotent_on_corpus(corpus_text):
    once = normalize(corpus_text)
    assert normalize(once) == once


def test_unknown_characters_are_dropped_and_reported():
    tok = CharTokenizer.from_text("abc \n")
    enc = tok.encode_with_report("a\u2603b\U0001F600c\u2603 z\u00e9a")  # snowman, emoji, z; é -> e
    assert enc.text == "abc a"
    assert tok.decode(enc.ids) == enc.text
    assert enc.dropped == {"\u2603": 2, "\U0001F600": 1, "z": 1, "e": 1}
    assert enc.dropped_count == 5
    assert tok.encode("a\u2603b") == tok.encode("ab")


def test_save_load_round_trip(tok, tmp_path):
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    loaded = CharTokenizer.load(path)
    assert loaded.chars == tok.chars
    text = "Hello, world!\nIt's me\n"
    assert loaded.encode(text) == tok.encode(text)


def _tokenizer_file(**fields) -> str:
    data = {"format": FORMAT, "version": 1, "chars": ["\n", " ", "a", "b"]}
    data.update(fields)
    return json.dumps(data)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    ("[1, 2]", "not a LyricGPT tokenizer file"),
    (_tokenizer_file(format="something-else"), "not a LyricGPT tokenizer file"),
    (_tokenizer_file(version=2), "version 2"),
    (_tokenizer_file(version="1"), "version '1'"),
    (_tokenizer_file(chars="ab"), '"chars" must be a list'),
    (_tokenizer_file(chars=[]), '"chars" must be a list'),
    (_tokenizer_file(chars=["a", "a"]), "sorted and without repeats"),
    (_tokenizer_file(chars=["b", "a"]), "sorted and without repeats"),
    (_tokenizer_file(chars=["a", "bc"]), "single character"),
    (_tokenizer_file(chars=["a", ""]), "single character"),
    (_tokenizer_file(chars=["a", 1]), "single character"),
])
def test_load_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "tok.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(TokenizerError, match="tok.json") as e:
        CharTokenizer.load(path)
    assert message in str(e.value)


def test_load_rejects_oversized_file(tmp_path):
    path = tmp_path / "tok.json"
    path.write_text(_tokenizer_file() + " " * MAX_FILE_BYTES, encoding="utf-8")
    with pytest.raises(TokenizerError, match=f"bytes; the limit is {MAX_FILE_BYTES}"):
        CharTokenizer.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(TokenizerError, match="cannot read tokenizer file nope.json"):
        CharTokenizer.load(tmp_path / "nope.json")


# Arbitrary Unicode, weighted towards the awkward parts: controls, NUL, line endings,
# combining marks, emoji, ligatures, full-width forms, and lone surrogates.
_awkward = st.sampled_from(["\x00", "\r", "\n", "\r\n", "\t", "\x0b", "\u0301", "\u0308\u0323", "\U0001F600",
                            "\U0001F469\u200d\U0001F467", "\ufb01", "\uff21", "\u2028", "\u00df", "\ud800",
                            "\ufeff", "\u1100\u1161", "\uac00", "\u0345"])
_text = st.lists(st.one_of(st.characters(exclude_categories=()), _awkward), max_size=300).map("".join)
_long = st.builds(lambda s, n: s * n, _text, st.integers(1, 50))


@settings(max_examples=200, deadline=None)
@given(st.one_of(_text, _long))
def test_fuzz_normalize_and_encode(tok, text):
    once = normalize(text)
    assert normalize(once) == once
    assert "\r" not in once
    enc = tok.encode_with_report(text)
    assert all(0 <= i < tok.vocab_size for i in enc.ids)
    assert tok.encode(text) == enc.ids
    assert tok.decode(enc.ids) == enc.text
    assert len(enc.text) + enc.dropped_count == len(once)
