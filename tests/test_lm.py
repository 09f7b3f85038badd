"""LyricModel: save/load round trips, streaming, reading a prompt, and a clear error for every
way a model folder can be broken."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import save_model

from lyricgpt import Bigram, BigramConfig, LyricModel, ModelError, load_model
from lyricgpt.lm import MAX_CONFIG_BYTES
from lyricgpt.tokenizer import CharTokenizer, TokenizerError
from lyricgpt.weights import WeightsError


def _logits(lm: LyricModel, text: str) -> torch.Tensor:
    with torch.no_grad():
        return lm.model(torch.tensor([lm.tokenizer.encode(text)]))[0]


def test_save_load_gpt_gives_identical_logits(tiny_lm, tiny_model_dir):
    loaded = load_model(tiny_model_dir)
    assert loaded.tokenizer.chars == tiny_lm.tokenizer.chars
    assert loaded.model.config == tiny_lm.model.config
    assert loaded.model.lm_head.weight is loaded.model.wte.weight
    text = "And I said hello\nto the night"
    assert torch.equal(_logits(loaded, text), _logits(tiny_lm, text))
    assert not loaded.model.training


def test_save_load_bigram_gives_identical_logits(tiny_lm, tmp_path):
    tok = tiny_lm.tokenizer
    model = Bigram(BigramConfig(vocab_size=tok.vocab_size, context_length=16))
    with torch.no_grad():
        model.table.weight.normal_(generator=torch.Generator().manual_seed(0))
    LyricModel(model, tok).save(tmp_path)
    loaded = load_model(tmp_path)
    assert type(loaded.model) is Bigram and loaded.context_length == 16
    assert torch.equal(_logits(loaded, "la la la"), _logits(LyricModel(model, tok), "la la la"))


def test_stream_yields_exactly_the_requested_characters(tiny_lm):
    n = 4 * tiny_lm.context_length  # well past the context length
    chars = list(tiny_lm.stream("Hello", max_new_chars=n, seed=0))
    assert len(chars) == n
    assert all(len(c) == 1 and c in tiny_lm.tokenizer for c in chars)
    assert list(tiny_lm.stream("Hello", max_new_chars=n, seed=0)) == chars
    assert list(tiny_lm.stream("Hello", max_new_chars=0)) == []


def test_stream_with_empty_or_unknown_seed(tiny_lm):
    assert len(list(tiny_lm.stream("", max_new_chars=7, seed=1))) == 7
    # A seed with no known character reads like an empty one.
    assert list(tiny_lm.stream("\U0001F600", max_new_chars=7, seed=1)) == list(tiny_lm.stream("", 7, seed=1))


def test_stream_with_probs(tiny_lm):
    pairs = list(tiny_lm.stream_with_probs("Hi", max_new_chars=10, temperature=0))
    assert [c for c, _ in pairs] == list(tiny_lm.stream("Hi", max_new_chars=10, temperature=0))
    assert all(0 < p <= 1 for _, p in pairs)


def test_read_prompt_keeps_the_last_window(tiny_lm, corpus_text):
    long_seed = corpus_text[:1000]
    n = tiny_lm.context_length
    prompt = tiny_lm.read_prompt(long_seed)
    assert prompt.ids == tiny_lm.tokenizer.encode(long_seed)[-n:]
    assert prompt.text == long_seed[-n:]
    assert list(tiny_lm.stream(long_seed, 20, seed=2)) == list(tiny_lm.stream(long_seed[-n:], 20, seed=2))


def test_read_prompt_reports_unknown_characters(tiny_lm):
    snowman, emoji = "\u2603", "\U0001F600"
    assert snowman not in tiny_lm.tokenizer and emoji not in tiny_lm.tokenizer
    prompt = tiny_lm.read_prompt(f"hi {emoji}{emoji} caf\u00e9 {snowman}")
    assert prompt.text == "hi  cafe "
    assert prompt.dropped == {emoji: 2, snowman: 1}


def test_tokenizer_vocab_mismatch_is_refused(tiny_lm):
    small = CharTokenizer(tiny_lm.tokenizer.chars[:-1])
    n = tiny_lm.tokenizer.vocab_size
    with pytest.raises(ModelError, match=f"the model has {n} tokens but the tokenizer has {n - 1}"):
        LyricModel(tiny_lm.model, small)


# --- broken model folders ------------------------------------------------------------------------

def _edit_config(**changes) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = json.loads((folder / "config.json").read_text())
        data.update(changes)
        (folder / "config.json").write_text(json.dumps(data))
    return edit


def _write(name: str, content: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(content, encoding="utf-8")


def _flip(offset: Callable[[bytes], int]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[offset(data)] ^= 0x01
        (folder / "model.safetensors").write_bytes(bytes(data))
    return edit


def _truncate(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:len(data) * 2 // 3])


def _tokenizer_without_last_char(folder: Path) -> None:
    data = json.loads((folder / "tokenizer.json").read_text())
    data["chars"] = data["chars"][:-1]
    (folder / "tokenizer.json").write_text(json.dumps(data))


def _weights_without_checksum(folder: Path) -> None:
    lm = load_model(folder)
    save_model(lm.model, str(folder / "model.safetensors"))


def _header_size(data: bytes) -> int:
    return 8 + struct.unpack("<Q", data[:8])[0]


BROKEN = {
    "missing config": (lambda f: (f / "config.json").unlink(), ModelError, "has no config.json"),
    "missing weights": (lambda f: (f / "model.safetensors").unlink(), ModelError, "has no model.safetensors"),
    "missing tokenizer": (lambda f: (f / "tokenizer.json").unlink(), ModelError, "has no tokenizer.json"),
    "config not JSON": (_write("config.json", "{'n_layer': 2"), ModelError, "config.json is not valid JSON"),
    "config not an object": (_write("config.json", "[1, 2]"), ModelError, "must hold a JSON object"),
    "unknown architecture": (_edit_config(architecture="rnn"), ModelError, "unknown architecture 'rnn'"),
    "no architecture": (_write("config.json", '{"n_layer": 2}'), ModelError, "unknown architecture None"),
    "unknown field": (_edit_config(n_layers=2), ModelError, r"unknown fields \['n_layers'\]"),
    "bool for int": (_edit_config(n_layer=True), ModelError, "n_layer must be int, got True"),
    "string for int": (_edit_config(n_embd="32"), ModelError, "n_embd must be int, got '32'"),
    "float for int": (_edit_config(n_head=2.0), ModelError, "n_head must be int, got 2.0"),
    "string for float": (_edit_config(dropout="0.1"), ModelError, "dropout must be float"),
    "string for bool": (_edit_config(bias="yes"), ModelError, "bias must be bool"),
    "zero layers": (_edit_config(n_layer=0), ModelError, r"n_layer=0 is outside 1\.\.256"),
    "huge width": (_edit_config(n_embd=10 ** 9), ModelError, "n_embd=1000000000 is outside"),
    "negative vocab": (_edit_config(vocab_size=-5), ModelError, "vocab_size=-5 is outside"),
    "bad dropout": (_edit_config(dropout=1.5), ModelError, r"dropout=1.5 is outside \[0, 1\)"),
    "heads do not divide": (_edit_config(n_head=3), ModelError, "n_embd=32 is not a multiple of n_head=3"),
    "oversized config": (_write("config.json", "{}" + " " * MAX_CONFIG_BYTES), ModelError,
                         f"config.json is {MAX_CONFIG_BYTES + 2} bytes; the limit is {MAX_CONFIG_BYTES}"),
    "config for another width": (_edit_config(n_embd=64), WeightsError, "model.safetensors does not match config.json"),
    "config for fewer layers": (_edit_config(n_layer=1), WeightsError, "does not match config.json"),
    "truncated weights": (_truncate, WeightsError, "not a readable safetensors file"),
    "bit flip in the data": (_flip(lambda d: len(d) - 10), WeightsError, "model.safetensors is corrupted"),
    "bit flip early in the data": (_flip(lambda d: _header_size(d) + 5), WeightsError, "is corrupted"),
    "bit flip in the header": (_flip(lambda d: 8), WeightsError, "model.safetensors is not a readable"),
    "bit flip in the header size": (_flip(lambda d: 1), WeightsError, "model.safetensors is not a readable"),
    "no checksum": (_weights_without_checksum, WeightsError, "carries no checksum"),
    "tokenizer vocab mismatch": (_tokenizer_without_last_char, ModelError,
                                 r"the model has \d+ tokens but the tokenizer has \d+"),
    "tokenizer not JSON": (_write("tokenizer.json", "chars: abc"), TokenizerError, "tokenizer.json is not valid JSON"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_model_folder(tiny_model_dir, tmp_path, name):
    break_it, error, message = BROKEN[name]
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    break_it(folder)
    with pytest.raises(error, match=message):
        load_model(folder)
    assert issubclass(error, ValueError)


def test_missing_folder(tmp_path):
    with pytest.raises(ModelError, match="neither a model folder nor a Hub repo id"):
        load_model(tmp_path / "no-such-model")


def test_file_instead_of_folder(tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("hello")
    with pytest.raises(ModelError, match="is not a folder"):
        load_model(path)
