"""Bits per character: the command line, the count of scored characters, and the value itself
against a plain one-prediction-at-a-time computation."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from lyricgpt.data import SONG_BREAK, split_songs, train_val_split
from lyricgpt.evaluate import main, score_text
from lyricgpt.lm import LyricModel


def reference_bits_per_char(lm: LyricModel, text: str) -> float:
    """Predict each character from everything before it (a line break first), one full pass each."""
    ids = lm.tokenizer.encode("\n") + lm.tokenizer.encode(text)
    assert len(ids) <= lm.context_length
    nats = 0.0
    with torch.no_grad():
        for t in range(1, len(ids)):
            logits, _ = lm.model(torch.tensor([ids[:t]]))
            nats -= logits[0, -1].log_softmax(-1)[ids[t]].item()
    return nats / (len(ids) - 1) / math.log(2)


def _evaluate(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lyricgpt.evaluate", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_command_line_json(tiny_lm, tiny_model_dir, tmp_path, subprocess_env):
    text = "Hold me \u2603 close\ntonight\U0001F600\n"  # two characters outside the vocabulary
    assert len(text) < tiny_lm.context_length
    path = tmp_path / "song.txt"
    path.write_text(text, encoding="utf-8")
    done = _evaluate(subprocess_env, tiny_model_dir, path, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    scored = "Hold me  close\ntonight"  # as read_corpus gives it: outer line breaks stripped
    assert result["chars"] == len(scored)
    assert result["unscored_chars"] == 2
    assert result["bits_per_char"] == pytest.approx(reference_bits_per_char(tiny_lm, scored), abs=1e-4)


@pytest.mark.parametrize("case, message", [
    ("empty model folder", "has no config.json"),
    ("missing text", "no such file or folder"),
    ("no known character", "no character the model knows"),
    ("too short to split", "the corpus is too short"),
])
def test_errors_exit_2_with_a_message(tiny_model_dir, tmp_path, capsys, case, message):
    # In-process: the command line itself is exercised by test_command_line_json.
    model, text = tiny_model_dir, tmp_path / "song.txt"
    text.write_text("la la la\n", encoding="utf-8")
    args = []
    if case == "empty model folder":
        model = tmp_path / "model"
        model.mkdir()
    elif case == "missing text":
        text = tmp_path / "nothing.txt"
    elif case == "no known character":
        text.write_text("\u2603\U0001F600\n", encoding="utf-8")
    else:
        args = ["--val-split"]
    assert main([str(model), str(text), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_val_split_scores_only_validation_songs(tiny_lm, tiny_model_dir, corpus_text, tmp_path, capsys):
    songs = split_songs(corpus_text)[:60]
    path = tmp_path / "songs.txt"
    path.write_text(SONG_BREAK.join(songs), encoding="utf-8")
    _, val = train_val_split(SONG_BREAK.join(songs), min_chars=tiny_lm.context_length + 1)
    assert 0 < len(val) < len(corpus_text) / 10
    assert main([str(tiny_model_dir), str(path), "--val-split", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chars"] == len(tiny_lm.tokenizer.encode(val))


@pytest.mark.parametrize("text", ["a", "Hi there\nfriend", "x" * 31])
def test_short_texts_match_reference(tiny_lm, text):
    result = score_text(tiny_lm, text)
    assert result["chars"] == len(text)
    assert result["unscored_chars"] == 0
    assert result["bits_per_char"] == pytest.approx(reference_bits_per_char(tiny_lm, text), abs=1e-4)


def test_long_text_scores_every_character_once(tiny_lm, corpus_text):
    text = corpus_text[:1000] + "\u2603\u2603\U0001F600"
    result = score_text(tiny_lm, text)
    assert result["chars"] == 1000
    assert result["unscored_chars"] == 3
    assert result["unscored_examples"] == "\u2603\U0001F600"
    assert result["context_length"] == tiny_lm.context_length
    # An untrained model knows nothing: about log2(vocabulary size) bits per character.
    assert result["bits_per_char"] == pytest.approx(math.log2(tiny_lm.tokenizer.vocab_size), abs=0.2)
