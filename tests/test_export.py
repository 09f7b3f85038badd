"""lyricgpt.export against the real transformers: the loading side uses no LyricGPT code at all."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from types import SimpleNamespace

import pytest
import torch
import transformers

from conftest import BUNDLED_MODEL, ROOT, readme_example
from lyricgpt import load_model
from lyricgpt.export import EXPORT_FILES, main
from lyricgpt.tokenizer import FOLDS
from training_runs import TINY, train

# Line breaks of every kind, typography and accents that fold, a ligature, characters outside the
# vocabulary (digits, emoji, a fraction that NFKD splits into three), and spaces before punctuation.
TRICKY = ("Down by the river\r\nI met my \u2018love\u2019 \u2014 caf\u00e9 \u00c6sir, Stra\u00dfe,\r"
          "\ufb01ne \u00bd 3 o'clock \U0001f3b5\u2028\u2028The end .\tYes ?\n\n\nNext song\n")


@pytest.fixture(scope="module", params=["bundled", "trained"])
def exported(request, tmp_path_factory, corpus, subprocess_env):
    """(our model, transformers' model and tokenizer) for the bundled model, and for a tiny model
    trained here with the other activation and no biases."""
    tmp = tmp_path_factory.mktemp(request.param)
    source = BUNDLED_MODEL
    if request.param == "trained":
        proc = train(*TINY, "--max-steps", 10, "--activation", "gelu_tanh", "--bias", "false", "--data", corpus,
                     "--out", tmp / "run", env=subprocess_env)
        assert proc.returncode == 0, proc.stderr
        source = tmp / "run" / "model"
    assert main([str(source), str(tmp / "hf")]) == 0
    return SimpleNamespace(
        lm=load_model(source), folder=tmp / "hf",
        model=transformers.AutoModelForCausalLM.from_pretrained(tmp / "hf").eval(),
        tokenizer=transformers.AutoTokenizer.from_pretrained(tmp / "hf"))


def test_writes_a_gpt2_folder(exported):
    assert sorted(p.name for p in exported.folder.iterdir()) == sorted(EXPORT_FILES)
    config = json.loads((exported.folder / "config.json").read_text())
    ours = exported.lm.model.config
    assert config["model_type"] == "gpt2"
    assert config["activation_function"] == {"gelu": "gelu", "gelu_tanh": "gelu_new"}[ours.activation]
    assert type(exported.model).__name__ == "GPT2LMHeadModel"
    # Conv1D keeps its weight as (in, out), the transpose of nn.Linear's
    assert exported.model.transformer.h[0].attn.c_attn.weight.shape == (ours.n_embd, 3 * ours.n_embd)
    assert exported.model.lm_head.weight.data_ptr() == exported.model.transformer.wte.weight.data_ptr()


def test_activations_map_to_transformers_exact_and_tanh_gelu(exported):
    x = torch.linspace(-6, 6, 1001)
    ours = exported.lm.model.blocks[0].mlp.gelu
    theirs = exported.model.transformer.h[0].mlp.act
    torch.testing.assert_close(theirs(x), ours(x), rtol=0, atol=1e-6)


def test_logits_match_ours(exported):
    ids = torch.randint(0, exported.lm.tokenizer.vocab_size, (2, exported.lm.context_length),
                        generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = exported.lm.model(ids)[0]
        theirs = exported.model(ids).logits
    assert (ours - theirs).abs().max() < 1e-4


@pytest.mark.parametrize("text", [TRICKY, "", "\n", "\r\n\r\n", "\u00b4`\u00b4", "".join(chr(c) for c in FOLDS)])
def test_tokenizer_encodes_and_decodes_as_ours(exported, text):
    ids = exported.lm.tokenizer.encode(text)
    assert exported.tokenizer(text).input_ids == ids
    assert exported.tokenizer.decode(ids) == exported.lm.tokenizer.decode(ids)


def test_tokenizer_agrees_on_every_character(exported):
    """Every character Unicode assigns (by Python's tables), spaced apart."""
    chars = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    text = " ".join(chars)
    if exported.tokenizer(text).input_ids != exported.lm.tokenizer.encode(text):
        differ = [c for c in chars if exported.tokenizer(c).input_ids != exported.lm.tokenizer.encode(c)]
        pytest.fail(f"{len(differ)} characters encode differently: " + " ".join(f"U+{ord(c):04X}" for c in differ[:20]))


def test_corpus_and_vocabulary_round_trip(exported, corpus_text):
    text = corpus_text[:20_000]
    ids = exported.tokenizer(text).input_ids
    assert ids == exported.lm.tokenizer.encode(text)
    assert exported.tokenizer.decode(ids) == exported.lm.tokenizer.decode(ids)
    vocabulary = "".join(exported.lm.tokenizer.chars) * 2  # line breaks and spaces among them
    assert exported.tokenizer.decode(exported.tokenizer(vocabulary).input_ids) == vocabulary


def test_greedy_generation_matches_ours(exported):
    prompt = "The river\n"
    new = exported.lm.context_length - len(prompt)  # transformers' GPT-2 stops at the context's end
    ours = "".join(exported.lm.stream(prompt, max_new_chars=new, temperature=0))
    inputs = exported.tokenizer(prompt, return_tensors="pt")
    out = exported.model.generate(**inputs, do_sample=False, max_new_tokens=new)
    assert exported.tokenizer.decode(out[0, inputs.input_ids.size(1):]) == ours


def test_bigram_is_refused_with_a_clear_message(tmp_path, capsys):
    assert main([str(ROOT / "assets" / "bigram"), str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bigram" in err and "Traceback" not in err
    assert not (tmp_path / "hf").exists()


def test_the_readmes_transformers_example_runs_on_an_export(tmp_path, subprocess_env):
    """As the README says, with the folder an export wrote for the Hub repo: a song after "The river"."""
    assert main([str(BUNDLED_MODEL), str(tmp_path / "OUT")]) == 0
    code = readme_example("AutoModelForCausalLM").replace('"USER/my-lyricgpt-transformers"', repr(str(tmp_path / "OUT")))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env, timeout=300,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("The river") and len(run.stdout) > 200  # its 200 new characters, and a line break


def test_a_mistyped_folder_is_named_as_a_folder_not_sought_on_the_hub(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # were it sought there, the message would say so at once
    assert main(["runs/nothing", "out"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: there is no model folder runs/nothing") and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_folder_with_other_files_is_left_alone(tiny_model_dir, tmp_path, capsys):
    before = {p.name: p.read_bytes() for p in tiny_model_dir.iterdir()}
    assert main([str(BUNDLED_MODEL), str(tiny_model_dir)]) == 2
    assert "already holds other files" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tiny_model_dir.iterdir()} == before


def test_an_earlier_export_is_replaced(tmp_path):
    folder = tmp_path / "hf"
    assert main([str(BUNDLED_MODEL), str(folder)]) == 0
    assert main([str(BUNDLED_MODEL), str(folder)]) == 0


def test_training_and_the_package_never_import_transformers(subprocess_env):
    """train.py and every lyricgpt module (lyricgpt.export too: tokenizers only once it exports)."""
    code = ("import pkgutil, sys, importlib, lyricgpt, train\n"
            "for m in pkgutil.iter_modules(lyricgpt.__path__): importlib.import_module('lyricgpt.' + m.name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'tokenizers')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
