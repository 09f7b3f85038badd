"""Corpus reading, the by-song split, and the two ways of cutting text into windows."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from lyricgpt.data import (SONG_BREAK, CorpusError, random_windows, read_corpus, scoring_windows,
                           split_songs, train_val_split)
from lyricgpt.model import IGNORE_INDEX


# --- reading -------------------------------------------------------------------------------------

def test_read_file_normalises(tmp_path):
    path = tmp_path / "song.txt"
    path.write_bytes("\ufeffCaf\u00e9 \u201csong\u201d\r\nline two\r\n".encode("utf-8"))  # with a BOM
    assert read_corpus(path) == 'Cafe "song"\nline two'


def test_read_folder_of_txt_files_sorted(tmp_path):
    (tmp_path / "b.txt").write_text("second song\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first song\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not lyrics", encoding="utf-8")
    (tmp_path / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff")  # not UTF-8, must not be read
    text = read_corpus(tmp_path)
    assert text == "first song" + SONG_BREAK + "second song"
    assert split_songs(text) == ["first song", "second song"]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.txt", "no such file or folder"),
    (lambda d: _write(d / "empty.txt", b""), "empty.txt is empty"),
    (lambda d: _write(d / "blank.txt", b"  \n\t\r\n \n"), "blank.txt is empty"),
    (lambda d: _write(d / "latin1.txt", "caf\u00e9\n".encode("latin-1")), "latin1.txt is not UTF-8"),
])
def test_read_errors(tmp_path, make, message):
    with pytest.raises(CorpusError, match=message):
        read_corpus(make(tmp_path))


def test_read_folder_without_txt(tmp_path):
    (tmp_path / "notes.md").write_text("hello", encoding="utf-8")
    with pytest.raises(CorpusError, match="has no .txt files"):
        read_corpus(tmp_path)


def test_read_folder_with_a_bad_file_names_it(tmp_path):
    (tmp_path / "a.txt").write_text("fine\n", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CorpusError, match="b.txt is not UTF-8"):
        read_corpus(tmp_path)


# --- the train/validation split ------------------------------------------------------------------

def test_split_by_song_on_default_corpus(corpus_text):
    songs = split_songs(corpus_text)
    assert len(songs) > 100
    train, val = train_val_split(corpus_text, min_chars=257)
    train_songs, val_songs = split_songs(train), split_songs(val)
    assert Counter(train_songs) + Counter(val_songs) == Counter(songs)  # every song, once
    assert not set(train_songs) & set(val_songs)  # no song (or duplicate of it) on both sides
    assert 0.03 < len(val) / len(corpus_text) < 0.08
    assert train_val_split(corpus_text, min_chars=257) == (train, val)
    # Which side a song lands on depends on the song, not on where it is in the corpus.
    shuffled = songs[:]
    random.Random(1).shuffle(shuffled)
    _, val2 = train_val_split(SONG_BREAK.join(shuffled), min_chars=257)
    assert sorted(split_songs(val2)) == sorted(val_songs)


def test_a_salted_split_holds_out_other_songs(corpus_text):
    songs = Counter(split_songs(corpus_text))
    _, val = train_val_split(corpus_text, min_chars=257)
    train1, val1 = train_val_split(corpus_text, min_chars=257, salt="1:")
    assert Counter(split_songs(train1)) + Counter(split_songs(val1)) == songs
    assert 0.03 < len(val1) / len(corpus_text) < 0.08
    assert set(split_songs(val1)) != set(split_songs(val))


def test_split_without_song_breaks_cuts_at_a_line_break():
    text = "".join(f"line number {i}\n" for i in range(500))
    train, val = train_val_split(text, min_chars=33)
    assert train + val == text
    assert train.endswith("\n") and val.startswith("line number")
    assert 0.85 < len(train) / len(text) <= 0.9


def test_split_too_short():
    with pytest.raises(CorpusError, match="too short: its training part has 36 characters.*needs 65"):
        train_val_split("la la la\n" * 5, min_chars=65)


# --- windows -------------------------------------------------------------------------------------

def test_random_windows_are_shifted_slices_and_reproducible():
    data = torch.randperm(300, generator=torch.Generator().manual_seed(0))  # distinct values
    position = {int(v): i for i, v in enumerate(data)}
    x, y = random_windows(data, 16, 50, torch.Generator().manual_seed(7))
    assert x.shape == y.shape == (50, 16)
    for row_x, row_y in zip(x, y):
        s = position[int(row_x[0])]
        assert torch.equal(row_x, data[s:s + 16])
        assert torch.equal(row_y, data[s + 1:s + 17])
    x2, y2 = random_windows(data, 16, 50, torch.Generator().manual_seed(7))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = random_windows(data, 16, 50, torch.Generator().manual_seed(8))
    assert not torch.equal(x, x3)


@pytest.mark.parametrize("length, context, stride, batch", [
    (100, 16, 16, 4),
    (100, 16, 8, 3),
    (100, 16, 5, 1),
    (101, 16, 1, 64),
    (57, 7, 3, 2),
    (10, 32, 16, 4),  # shorter than one window
    (2, 8, 4, 2),     # a single target
    (17, 16, 8, 5),   # exactly one window
])
def test_scoring_windows_score_every_target_once(length, context, stride, batch):
    data = torch.arange(length)  # a value is its own position
    scored = Counter()
    for x, y in scoring_windows(data, context, stride, batch):
        assert x.shape == y.shape and 1 <= x.size(0) <= batch
        for row_x, row_y in zip(x, y):
            s = int(row_x[0])
            assert torch.equal(row_x, data[s:s + len(row_x)])
            for j, t in enumerate(row_y.tolist()):
                if t == IGNORE_INDEX:
                    continue
                assert t == s + j + 1  # the target is the character after x[j]
                scored[t] += 1
                if s > 0:  # after the first window, each target sees context - stride chars or more
                    assert j + 1 >= min(context, length - 1) - stride
    assert scored == Counter(range(1, length))


def test_scoring_windows_half_context_overlap():
    context = 32
    data = torch.arange(500)
    for x, y in scoring_windows(data, context, context // 2, 8):
        for row_x, row_y in zip(x, y):
            if int(row_x[0]) == 0:
                continue
            first_scored = int((row_y != IGNORE_INDEX).nonzero()[0])
            assert first_scored + 1 >= context // 2  # chars of the window up to and including x[j]


@pytest.mark.parametrize("stride", [0, -1, 17])
def test_scoring_windows_refuse_a_stride_that_would_skip_characters(stride):
    with pytest.raises(ValueError, match="stride"):
        list(scoring_windows(torch.arange(100), 16, stride, 4))


def test_scoring_windows_empty():
    assert list(scoring_windows(torch.arange(1), 8, 4, 2)) == []
