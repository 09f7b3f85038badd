"""train.py as a user runs it: its flags, what a run leaves behind, and how it refuses bad input."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import stat

import pytest
from PIL import Image

import train
from lyricgpt import Bigram, load_model
from lyricgpt.checkpoint import load_checkpoint
from lyricgpt.data import read_corpus, train_val_split
from lyricgpt.evaluate import score_text
from lyricgpt.sampler import DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from lyricgpt.train_config import PRESETS, TrainConfig
from lyricgpt.training import SAMPLE_SEED_LINES, read_metrics
from training_runs import ROOT, TINY, assert_same_tensors, train as run_train, weights_of

METRIC_KEYS = {"step", "train_loss", "val_loss", "val_bits_per_char", "lr", "tokens_per_s", "elapsed_s"}


def test_help_documents_every_setting_and_preset(capsys):
    with pytest.raises(SystemExit) as exit_:
        train.parse_args(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for field in dataclasses.fields(TrainConfig):
        assert f"--{field.name.replace('_', '-')} " in text, field.name
        assert "".join(train.HELP[field.name].split()) in "".join(text.split()), field.name  # lines wrap
    for preset in PRESETS:
        assert preset in text
    for flag in ("--preset", "--resume", "--stop-at-step", "--push-to-hub", "--private"):
        assert flag in text


def test_no_arguments_print_the_usage_instead_of_training(monkeypatch, capsys):
    monkeypatch.setattr(train, "Trainer", lambda *a, **k: pytest.fail("train.py with no arguments started training"))
    with pytest.raises(SystemExit) as exit_:
        train.main([])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ") and "--data TEXT" in err and "--resume" in err
    assert "error: --data is required" in err


def test_budget_help_says_what_stops_the_run(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # unwrapped
    steps = text[text.index("--max-steps MAX_STEPS"):text.index("--max-minutes MAX_MINUTES")]
    minutes = text[text.index("--max-minutes MAX_MINUTES"):text.index("--eval-interval")]
    assert "or sooner if the time budget runs out first; 0: no step budget" in steps
    assert "(default: 6301; --preset gpt2-124m: 20000, tiny: 300" in steps
    assert "or sooner if the step budget runs out first; 0: no time budget" in minutes
    assert "A time budget given without --max-steps replaces the preset's step budget" in minutes
    assert "(default: none" in minutes

    def budgets(*flags):
        cfg = train.build_config(train.parse_args(["--data", "songs.txt", *flags]))
        return cfg.max_steps, cfg.max_minutes

    # What the help says, done:
    assert budgets() == (6301, None)
    assert budgets("--max-minutes", "60") == (None, 60.0)  # a time budget alone plans the schedule
    assert budgets("--max-steps", "100", "--max-minutes", "60") == (100, 60.0)  # the first one reached stops it
    assert budgets("--max-steps", "100", "--max-minutes", "0") == (100, None)
    assert budgets("--preset", "tiny") == (300, None)
    assert budgets("--preset", "tiny", "--max-minutes", "0") == (300, None)  # 0 is no time budget, not no limit
    assert budgets("--preset", "tiny", "--max-minutes", "2") == (None, 2.0)  # the preset's step budget goes
    assert budgets("--preset", "tiny", "--max-minutes", "2", "--max-steps", "50") == (50, 2.0)


def test_bundled_recipe_runs_the_bundled_models_steps_with_its_settings():
    """`python train.py --data assets/lyrics.txt` trains for the steps that the bundled model's hour
    held, with every other setting its model card records (the run's folder aside)."""
    card = (ROOT / "assets" / "model" / "README.md").read_text(encoding="utf-8")
    steps = int(re.search(r"Trained for ([\d,]+) steps", card).group(1).replace(",", ""))
    recorded = json.loads(re.search(r"```json\n(.*?)\n```", card, re.S).group(1))["training"]
    cfg = train.build_config(train.parse_args(["--data", "assets/lyrics.txt"]))
    assert (cfg.max_steps, cfg.max_minutes) == (steps, None)
    differ = {name for name, value in recorded.items() if getattr(cfg, name) != value}
    assert differ == {"out", "max_steps", "max_minutes"}


def test_first_line_says_what_the_run_will_do(tiny_run, corpus):
    proc, out = tiny_run
    first = proc.stdout.splitlines()[0]
    assert first == (f"Training a gpt model (1 layer of width 32, context 32, adamw) on {corpus} for 20 steps; "
                     f"checkpoints and the model go to {out}")


def test_model_folder_files_have_one_ordinary_mode(tiny_run):
    """Every file as open() makes it under the run's umask, 022: the weights too, which safetensors
    would leave at 0600."""
    _, out = tiny_run
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in (out / "model").iterdir()}
    assert "model.safetensors" in modes
    assert set(modes.values()) == {"0o644"}, modes


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_saved_weights_follow_the_umask(umask, tiny_lm, tmp_path):
    previous = os.umask(umask)
    try:
        tiny_lm.save(tmp_path)
    finally:
        os.umask(previous)
    assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {0o666 & ~umask}


def test_metrics_has_one_record_per_evaluation(tiny_run):
    _, out = tiny_run
    metrics = read_metrics(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [10, 20]
    for m in metrics:
        assert METRIC_KEYS <= set(m)
        assert all(math.isfinite(m[k]) for k in METRIC_KEYS)
        assert m["val_bits_per_char"] == pytest.approx(m["val_loss"] / math.log(2), abs=1e-4)
        assert m["tokens_per_s"] > 0 and m["lr"] > 0
        assert m["tokens_seen"] == m["step"] * 8 * 32
    assert metrics[0]["elapsed_s"] <= metrics[1]["elapsed_s"]


def test_progress_shows_loss_speed_and_one_line_per_evaluation(tiny_run):
    proc, out = tiny_run
    eval_lines = [line for line in proc.stdout.splitlines() if re.match(r"step \d+: train loss", line)]
    assert [line.split(":")[0] for line in eval_lines] == ["step 10", "step 20"]
    for line, m in zip(eval_lines, read_metrics(out / "metrics.jsonl")):
        assert f"val loss {m['val_loss']:.4f} ({m['val_bits_per_char']:.3f} bits/char, disjoint windows)" in line
        assert "tokens/s" in line
    # Not a terminal, so plain lines (see test_training), ending with the last step's.
    assert re.search(r"^step 20/20: loss \d\.\d+, [\d,]+ tok/s, 100%", proc.stderr, re.M), proc.stderr
    assert "\r" not in proc.stderr


def test_final_line_says_which_checkpoint_and_scoring(tiny_run, corpus):
    proc, out = tiny_run
    best = load_checkpoint(out / "ckpt_best.pt")["step"]
    _, val_text = train_val_split(read_corpus(corpus), min_chars=32 + 1)
    bpc = score_text(load_model(out / "model"), val_text)["bits_per_char"]
    assert proc.stdout.splitlines()[-1] == (
        f"model written to {out / 'model'}: the best checkpoint (step {best} of 20), validation {bpc:.4f} "
        "bits/char scored with overlapping windows: every character after the first 16 sees at least 16 "
        "characters of context")


def test_loss_plot_is_a_png(tiny_run):
    _, out = tiny_run
    for path in (out / "loss.png", out / "model" / "loss.png"):
        with Image.open(path) as image:
            assert image.format == "PNG"
            image.verify()


def test_checkpoints_hold_the_last_and_the_best_step(tiny_run):
    _, out = tiny_run
    metrics = read_metrics(out / "metrics.jsonl")
    last, best = load_checkpoint(out / "ckpt_last.pt"), load_checkpoint(out / "ckpt_best.pt")
    assert last["step"] == 20
    best_metric = min(metrics, key=lambda m: m["val_loss"])
    assert best["step"] == best_metric["step"]
    assert best["best_val_loss"] == pytest.approx(best_metric["val_loss"], abs=1e-5)


def test_model_folder_holds_the_best_checkpoint(tiny_run, corpus):
    _, out = tiny_run
    lm = load_model(out / "model")
    assert set(lm.tokenizer.chars) == set(read_corpus(corpus))
    assert_same_tensors(weights_of(out / "model"), weights_of(out / "ckpt_best.pt"))
    assert len("".join(lm.stream("Love", 10, seed=1))) == 10


def test_model_card_describes_the_run(tiny_run, corpus):
    _, out = tiny_run
    card = (out / "model" / "README.md").read_text(encoding="utf-8")
    lm = load_model(out / "model")
    last = load_checkpoint(out / "ckpt_last.pt")
    assert "train.py --preset tiny" in card and "--max-steps 20" in card
    assert f"{last['tokens_seen']:,} tokens" in card
    _, val_text = train_val_split(read_corpus(corpus), min_chars=32 + 1)
    assert f"**{score_text(lm, val_text)['bits_per_char']:.4f} bits per character**" in card
    config = json.loads(re.search(r"```json\n(.*?)\n```", card, re.S).group(1))
    assert config["training"] == last["train_config"]
    assert config["model"]["n_embd"] == 32 and config["training"]["dropout"] == 0.1
    assert "![Loss curve](loss.png)" in card
    assert f"Temperature {DEFAULT_TEMPERATURE:g}, top-p off (the app's defaults)" in card
    for seed_line in SAMPLE_SEED_LINES:  # each sample is what the model writes after its seed line, at the app's defaults
        sample = "".join(lm.stream(seed_line, 20, temperature=DEFAULT_TEMPERATURE, top_p=DEFAULT_TOP_P,
                                     seed=config["training"]["seed"]))
        assert f"```\n{seed_line}{sample}\n```" in card


def test_bigram_trains_with_the_same_loop(corpus, tmp_path, subprocess_env):
    out = tmp_path / "out"
    proc = run_train(*TINY, "--model", "bigram", "--data", corpus, "--out", out, "--max-steps", 20,
                     env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    metrics = read_metrics(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [10, 20]
    assert metrics[1]["val_loss"] < metrics[0]["val_loss"]
    assert isinstance(load_model(out / "model").model, Bigram)


def test_time_budget_on_the_default_corpus(tmp_path, subprocess_env):
    """--max-minutes alone plans the schedule: training stops on time with the learning rate decayed."""
    out = tmp_path / "out"
    proc = run_train(*TINY, "--data", ROOT / "assets" / "lyrics.txt", "--out", out, "--max-minutes", 0.05,
                     "--warmup-steps", 1, "--eval-interval", 10**6, env=subprocess_env)  # one evaluation, the last
    assert proc.returncode == 0, proc.stderr
    metrics = read_metrics(out / "metrics.jsonl")
    cfg = PRESETS["tiny"]
    final = metrics[-1]
    assert " for 0.05 minutes;" in proc.stdout.splitlines()[0]  # the preset's 300 steps are not a budget
    assert load_checkpoint(out / "ckpt_last.pt")["train_config"]["max_steps"] is None
    assert final["lr"] == pytest.approx(cfg["lr"] * TrainConfig.min_lr_ratio, rel=1e-3)
    assert load_model(out / "model").tokenizer.vocab_size > 40  # the real corpus's alphabet


# ----------------------------------------------------------------------------- refusals


def refuse(argv: list[str], capsys) -> str:
    """Run train.py's main in this process; it must exit 2 with an "error:" line and no traceback."""
    try:
        code = train.main(argv)
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    return err


# Each makes bad data in a folder; returns its path and what the message must say.

def bad_text(folder):
    (folder / "bad.txt").write_bytes("Song one\n".encode() + b"\xff\xfe oops\n")
    return folder / "bad.txt", ["bad.txt", "not UTF-8"]


def empty_text(folder):
    (folder / "empty.txt").write_text("\n \n")
    return folder / "empty.txt", ["empty.txt", "empty"]


def no_txt_folder(folder):
    (folder / "lyrics").mkdir()
    (folder / "lyrics" / "notes.md").write_text("Love love love\n" * 100)
    return folder / "lyrics", ["lyrics", "no .txt files"]


def missing(folder):
    return folder / "nowhere.txt", ["nowhere.txt", "no such file"]


def too_short(folder):
    (folder / "short.txt").write_text("A short song\nwith two lines\n")
    return folder / "short.txt", ["too short", "--context-length"]


@pytest.mark.parametrize("make", [bad_text, empty_text, no_txt_folder, missing, too_short])
def test_bad_data_is_refused_before_any_work(make, tmp_path, capsys):
    data, says = make(tmp_path)
    out = tmp_path / "out"
    err = refuse([*TINY, "--data", str(data), "--out", str(out), "--max-steps", "5"], capsys)
    assert all(part in err for part in says), err
    assert not out.exists()


BAD_FLAGS = [
    (["--max-steps", "-5"], "max-steps"),
    (["--max-minutes", "-1"], "max-minutes"),
    (["--max-minutes", "nan"], "max-minutes"),
    (["--n-embd", "33"], "--n-embd (33) must be a multiple of --n-head (2)"),
    (["--n-head", "0"], "n-head"),
    (["--n-layer", "0"], "n-layer"),
    (["--context-length", "0"], "context-length"),
    (["--batch-size", "0"], "batch-size"),
    (["--grad-accum", "0"], "grad-accum"),
    (["--eval-interval", "0"], "eval-interval"),
    (["--lr", "-1"], "lr"),
    (["--lr", "inf"], "lr"),
    (["--dropout", "1.5"], "dropout"),
    (["--beta2", "1"], "beta2"),
    (["--min-lr-ratio", "2"], "min-lr-ratio"),
    (["--schedule", "wsd", "--decay-fraction", "0"], "decay-fraction"),
    (["--warmup-steps", "-1"], "warmup-steps"),
    (["--device", "tpu"], "tpu"),
    (["--dtype", "fp8"], "fp8"),
    (["--schedule", "linear"], "linear"),
    (["--model", "rnn"], "rnn"),
    (["--compile", "maybe"], "maybe"),
    (["--max-steps", "ten"], "--max-steps"),
    (["--bias", "perhaps"], "--bias"),
    (["--stop-at-step", "-1"], "stop-at-step"),
]


@pytest.mark.parametrize("flags, named", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flag_values_are_refused_before_any_work(flags, named, tmp_path, capsys):
    out = tmp_path / "out"
    err = refuse([*TINY, "--data", str(ROOT / "assets" / "lyrics.txt"), "--out", str(out),
                  "--max-steps", "5", *flags], capsys)
    assert named in err
    assert not out.exists()


def test_bad_flag_in_a_real_process_gives_no_traceback(tmp_path, subprocess_env):
    proc = run_train(*TINY, "--data", ROOT / "assets" / "lyrics.txt", "--out", tmp_path / "out", "--max-steps", -5,
                     "--eval-interval", 0, env=subprocess_env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_push_without_a_token_is_refused_before_training(tmp_path, subprocess_env, corpus):
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir()
    env = {**subprocess_env, "HF_HOME": str(hf_home)}
    env.pop("HUGGING_FACE_HUB_TOKEN", None)
    out = tmp_path / "out"
    proc = run_train(*TINY, "--data", corpus, "--out", out, "--max-steps", 5, "--push-to-hub", "someone/lyrics",
                     env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:") and "token" in proc.stderr and "HF_TOKEN" in proc.stderr
    assert not out.exists()


def test_push_to_a_malformed_repo_id_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    err = refuse([*TINY, "--data", str(ROOT / "assets" / "lyrics.txt"), "--out", str(out), "--max-steps", "5",
                  "--push-to-hub", "not a repo"], capsys)
    assert "USER/REPO" in err
    assert not out.exists()


def test_resume_without_a_checkpoint_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    err = refuse(["--out", str(out), "--resume"], capsys)
    assert str(out / "ckpt_last.pt") in err
    assert list(out.iterdir()) == []


def test_a_new_run_over_an_earlier_one_is_refused_and_points_to_resume(tiny_run, corpus, capsys):
    out = tiny_run[1]
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    err = refuse([*TINY, "--data", str(corpus), "--out", str(out), "--max-steps", "5"], capsys)
    assert f"--out {out} already holds a run (ckpt_last.pt, ckpt_best.pt, metrics.jsonl, loss.png, model)" in err
    assert f"python train.py --out {out} --resume" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing touched


def test_resuming_over_a_metrics_file_of_something_else_gets_a_message(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "ckpt_last.pt").write_bytes((tiny_run[1] / "ckpt_last.pt").read_bytes())
    (out / "metrics.jsonl").write_text("step,loss\n1,2.5\n")
    err = refuse(["--out", str(out), "--resume"], capsys)
    assert f"{out / 'metrics.jsonl'} is not a train.py record (line 1)" in err


def test_a_mistyped_base_folder_is_named_as_a_folder_not_a_hub_repo(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    err = refuse(["--data", str(corpus), "--init-from", "assets/nosuchmodel", "--out", str(tmp_path / "out")], capsys)
    assert "there is no model folder assets/nosuchmodel" in err and "Hub" in err and "reach" not in err


def test_out_folder_that_cannot_be_made_is_refused(corpus, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = refuse([*TINY, "--data", str(corpus), "--out", str(blocker / "out"), "--max-steps", "5"], capsys)
    assert str(blocker) in err
