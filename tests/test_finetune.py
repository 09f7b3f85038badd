"""Fine-tuning (train.py --init-from): it starts from the base model, keeps its best checkpoint on the
songbook's own validation songs, is never worse than the base, and refuses bad input clearly."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import child_env
from lyricgpt import load_model
from lyricgpt.data import first_lines, read_corpus, split_as_trained
from lyricgpt.finetune import SHAPE, grow_vocabulary
from lyricgpt.training import EXAMPLES_SHOWN, read_metrics
from lyricgpt.voices import load_voices
from training_runs import ROOT, assert_same_tensors, train, weights_of, write_corpus

# A short fine-tuning run of conftest's tiny model: the recipe, with fewer and smaller steps.
SHORT = ["--max-steps", 12, "--eval-interval", 3, "--batch-size", 4, "--sample-chars", 20, "--dtype", "float32",
         "--device", "cpu"]
VOICE = "Cold rivers: songs of mine"


@pytest.fixture(scope="module")
def base(tiny_run):
    return tiny_run[1] / "model"


@pytest.fixture(scope="module")
def songbook(tmp_path_factory):
    """Twelve songs of another songwriter, who likes a character the base model never saw."""
    path = write_corpus(tmp_path_factory.mktemp("songbook") / "mine.txt", n_songs=12, seed=7)
    path.write_text(path.read_text().replace("love", "love \u266a"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def finetuned(base, songbook, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "out"
    proc = train("--data", songbook, "--init-from", base, "--out", out, *SHORT, "--voice", VOICE, env=child_env())
    assert proc.returncode == 0, proc.stderr
    return proc, out


def test_the_model_is_a_voice_with_its_name_and_first_lines_of_its_held_out_songs(finetuned, songbook):
    _, out = finetuned
    (voice,), _ = load_voices([str(out / "model")], None, [out / "model"], timeout=2, root=ROOT)
    assert voice.name == VOICE  # as --voice gave it, colon and all
    train_text, val_text = split_as_trained(read_corpus(songbook), voice.lm.context_length + 1, fine_tuned=True)
    assert voice.examples == first_lines(val_text, EXAMPLES_SHOWN) != []
    assert not set(voice.examples) & set(first_lines(train_text, 1000))  # lines it learned would be recited


def test_fine_tuning_starts_from_the_base_model_and_says_what_it_did(base, songbook, finetuned):
    proc, out = finetuned
    base_lm, lm = load_model(base), load_model(out / "model")
    for setting in SHAPE[1:]:
        assert getattr(lm.model.config, setting) == getattr(base_lm.model.config, setting)
    assert lm.tokenizer.chars == sorted(base_lm.tokenizer.chars + ["\u266a"])
    assert f"Fine-tuning {base}" in proc.stdout and "characters the base model never saw" in proc.stdout
    assert "the base model scores" in proc.stdout
    card = (out / "model" / "README.md").read_text()
    assert f"fine-tuned from `{base}`" in card and f"Songbook: `{songbook}`" in card
    assert "| the songbook's validation songs" in card and "what it forgot" in card  # both before and after
    assert f"--init-from {base}" in card  # the exact command
    assert card.count('After "The river"') == 2  # the same first line, before and after


def test_the_first_checkpoint_is_the_base_model_and_early_stopping_keeps_the_best(base, finetuned):
    _, out = finetuned
    metrics = read_metrics(out / "metrics.jsonl")
    best = torch.load(out / "ckpt_best.pt", weights_only=False)
    scores = {m["step"]: m["val_loss"] for m in metrics}
    if best["step"] == 0:  # the base was never beaten
        assert min(scores.values()) >= best["base_val_loss"]
    else:
        assert scores[best["step"]] == min(scores.values()) < best["base_val_loss"]
    assert_same_tensors(weights_of(out / "model"), best["model"])


def test_patience_stops_the_run_once_the_validation_songs_stop_improving(base, songbook, tmp_path):
    out = tmp_path / "out"
    proc = train("--data", songbook, "--init-from", base, "--out", out, *SHORT, "--max-steps", 300,
                 "--eval-interval", 1, "--patience", 2, "--lr", "0.05", env=child_env())
    assert proc.returncode == 0, proc.stderr
    scores = [m["val_loss"] for m in read_metrics(out / "metrics.jsonl")]
    best = torch.load(out / "ckpt_best.pt", weights_only=False)["base_val_loss"]
    for s in scores:
        best = min(best, s)
    assert len(scores) < 300 and min(scores[-2:]) >= best  # the last two were no better: it stopped there


def test_a_fine_tuning_that_never_beats_the_base_writes_the_base_unchanged(base, songbook, tmp_path):
    out = tmp_path / "out"
    # Plain text with nothing new in it, and a learning rate that wrecks the model at its first step.
    plain = tmp_path / "plain.txt"
    plain.write_text(songbook.read_text().replace(" \u266a", ""), encoding="utf-8")
    proc = train("--data", plain, "--init-from", base, "--out", out, *SHORT, "--max-steps", 3,
                 "--eval-interval", 1, "--lr", "5", "--warmup-steps", 0, env=child_env())
    assert proc.returncode == 0, proc.stderr
    assert "fine-tuning never beat the base model" in proc.stdout
    assert_same_tensors(weights_of(out / "model"), weights_of(base))
    assert (out / "model" / "tokenizer.json").read_text() == (base / "tokenizer.json").read_text()
    assert "this is the base model, unchanged" in (out / "model" / "README.md").read_text()


def test_new_characters_get_rows_that_leave_the_old_ones_alone(tiny_lm):
    grown, new = grow_vocabulary(tiny_lm, "a new song \u266a with \u2605")
    assert new == ["\u2605", "\u266a"]
    old_rows = tiny_lm.model.wte.weight
    rows = grown.model.wte.weight
    for i, c in enumerate(tiny_lm.tokenizer.chars):
        assert torch.equal(rows[grown.tokenizer.chars.index(c)], old_rows[i])
    for c in new:
        torch.testing.assert_close(rows[grown.tokenizer.chars.index(c)], old_rows.mean(dim=0))
    assert grown.model.lm_head.weight is grown.model.wte.weight  # still tied
    # The known characters' logits are unchanged: only the new ones join the softmax.
    text = tiny_lm.tokenizer.encode("Down by the river")
    ids = torch.tensor([text]), torch.tensor([[grown.tokenizer.chars.index(tiny_lm.tokenizer.chars[i]) for i in text]])
    with torch.no_grad():
        before, _ = tiny_lm.model(ids[0])
        after, _ = grown.model(ids[1])
    keep = [grown.tokenizer.chars.index(c) for c in tiny_lm.tokenizer.chars]
    torch.testing.assert_close(after[..., keep], before, rtol=1e-5, atol=1e-5)
    assert grow_vocabulary(tiny_lm, "river")[1] == []


@pytest.mark.parametrize("case, expected", [
    ("missing folder", "--init-from no/such/folder/here"),
    ("bigram", "is a bigram model"),
    ("one song", "the songbook holds 1 song; fine-tuning needs at least 2"),
    ("empty file", "is empty"),
    ("binary file", "is not UTF-8 text"),
    ("another shape", "drop --n-layer 3"),
    ("a preset", "--preset and --init-from do not go together"),
])
def test_bad_input_gets_a_clear_message(case, expected, base, songbook, tmp_path):
    data, init, extra = songbook, base, []
    if case == "missing folder":
        init = "no/such/folder/here"
    elif case == "bigram":
        init = ROOT / "assets" / "bigram"
    elif case == "one song":
        data = tmp_path / "one.txt"
        data.write_text("Just the one song\nwith two lines\n")
    elif case == "empty file":
        data = tmp_path / "empty.txt"
        data.write_text("")
    elif case == "binary file":
        data = tmp_path / "song.mp3"
        data.write_bytes(bytes(range(256)) * 8)
    elif case == "another shape":
        extra = ["--n-layer", 3]
    elif case == "a preset":
        extra = ["--preset", "tiny"]
    proc = train("--data", data, "--init-from", init, "--out", tmp_path / "out", *SHORT, *extra, env=child_env())
    assert proc.returncode == 2, proc.stdout
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "model").exists()


def test_a_hub_that_cannot_be_reached_gets_a_clear_message(songbook, tmp_path):
    env = {**child_env(), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_CACHE": str(tmp_path / "cache")}
    proc = train("--data", songbook, "--init-from", "someone/their-model", "--out", tmp_path / "out", *SHORT,
                 env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--init-from someone/their-model" in proc.stderr



def test_evaluate_scores_the_songbook_songs_that_the_card_reports(finetuned, songbook, capsys):
    """A fine-tuned model's validation songs are whole songs of the songbook (songbook_split), and
    `python -m lyricgpt.evaluate MODEL SONGBOOK --val-split` scores those, as the card says."""
    from lyricgpt.evaluate import main as evaluate

    _, out = finetuned
    assert evaluate([str(out / "model"), str(songbook), "--val-split", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)["bits_per_char"]
    assert f"val_bits_per_char: {scored:.4f}" in (out / "model" / "README.md").read_text()
