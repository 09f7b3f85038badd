"""The training loop's promises: a stopped and resumed run is the run that never stopped, Ctrl-C
keeps the work, and two processes under torchrun train the model that one process would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lyricgpt import load_model
from lyricgpt.checkpoint import load_checkpoint
from lyricgpt.progress import ProgressBar
from lyricgpt.runtime import setup_runtime
from lyricgpt.train_config import PRESETS, TrainConfig
from lyricgpt.training import read_metrics
from training_runs import (ROOT, TINY, TWENTY_STEPS, assert_same_tensors, start_train, train, wait_for,
                           weights_of)

TIMING = {"tokens_per_s", "elapsed_s"}  # the only things two runs of one plan may disagree on


def without_timing(metrics: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in TIMING} for m in metrics]


def test_stopped_and_resumed_run_equals_the_straight_run(tiny_run, corpus, tmp_path, subprocess_env):
    _, straight_run = tiny_run
    out = tmp_path / "out"
    stopped = train(*TWENTY_STEPS, "--data", corpus, "--out", out, "--stop-at-step", 10, env=subprocess_env)
    assert stopped.returncode == 0, stopped.stderr
    assert f"python train.py --out {out} --resume" in stopped.stdout
    assert load_checkpoint(out / "ckpt_last.pt")["step"] == 10
    assert not (out / "model").exists()

    resumed = train("--out", out, "--resume", env=subprocess_env)  # the plan comes from the checkpoint
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("Resuming at step 10: training a gpt model (1 layer of width 32, ")
    assert f"on {corpus} for 20 steps;" in resumed.stdout.splitlines()[0]

    expected, got = load_checkpoint(straight_run / "ckpt_last.pt"), load_checkpoint(out / "ckpt_last.pt")
    assert got["step"] == 20
    assert_same_tensors(got["model"], expected["model"])
    for state, expected_state in zip(got["optimizer"]["state"].values(), expected["optimizer"]["state"].values()):
        assert_same_tensors(state, expected_state)
    assert_same_tensors(weights_of(out / "model"), weights_of(straight_run / "model"))
    assert "--stop-at-step 10" in (out / "model" / "README.md").read_text()  # the command that started it
    assert without_timing(read_metrics(out / "metrics.jsonl")) == without_timing(
        read_metrics(straight_run / "metrics.jsonl"))


def test_a_signal_during_a_stop_at_step_run_still_exits_130(corpus, tmp_path, subprocess_env):
    out, log = tmp_path / "out", tmp_path / "log"
    proc = start_train(*TINY, "--data", corpus, "--out", out, "--max-steps", 100_000, "--stop-at-step", 90_000,
                       env=subprocess_env, log=log)
    wait_for(out / "ckpt_last.pt", proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=600) == 130
    assert f"interrupted at step {load_checkpoint(out / 'ckpt_last.pt')['step']}" in log.read_text()


def test_a_muon_run_resumes_exactly_too(corpus, tmp_path, subprocess_env):
    """Muon for the blocks' matrices and AdamW for the rest: both optimisers' state survives a resume."""
    args = [*TINY, "--data", corpus, "--max-steps", 20, "--optimizer", "muon"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert train(*args, "--out", straight, env=subprocess_env).returncode == 0
    assert train(*args, "--out", stopped, "--stop-at-step", 10, env=subprocess_env).returncode == 0
    resumed = train("--out", stopped, "--resume", env=subprocess_env)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = load_checkpoint(straight / "ckpt_last.pt"), load_checkpoint(stopped / "ckpt_last.pt")
    assert got["train_config"]["optimizer"] == "muon" and len(got["optimizer"]["parts"]) == 2
    assert got["optimizer"]["parts"][0]["state"], "Muon kept no momentum: it trained nothing"
    assert_same_tensors(got["model"], expected["model"])
    for part, expected_part in zip(got["optimizer"]["parts"], expected["optimizer"]["parts"]):
        for state, expected_state in zip(part["state"].values(), expected_part["state"].values()):
            assert_same_tensors(state, expected_state)


# A constant learning rate, so that a resume may shorten the plan without changing the steps.
LONG = [*TINY, "--dropout", 0.1, "--warmup-steps", 0, "--min-lr-ratio", 1]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_saves_and_resumes_exactly(sig, corpus, tmp_path, subprocess_env):
    out, log = tmp_path / "out", tmp_path / "log"
    proc = start_train(*LONG, "--data", corpus, "--out", out, "--max-steps", 100_000, env=subprocess_env, log=log)
    wait_for(out / "ckpt_last.pt", proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=600) == 130
    step = load_checkpoint(out / "ckpt_last.pt")["step"]
    output = log.read_text()
    assert f"interrupted at step {step}" in output and f"python train.py --out {out} --resume" in output
    assert "Traceback" not in output

    resumed = train("--out", out, "--resume", "--max-steps", step + 10, env=subprocess_env)
    assert resumed.returncode == 0, resumed.stderr
    load_model(out / "model")

    reference = tmp_path / "reference"
    straight = train(*LONG, "--data", corpus, "--out", reference, "--max-steps", step + 10, env=subprocess_env)
    assert straight.returncode == 0, straight.stderr
    assert_same_tensors(weights_of(out / "ckpt_last.pt"), weights_of(reference / "ckpt_last.pt"))

    def evaluations(folder):  # the training loss of the first one after a resume averages fewer steps
        return [(m["step"], m["val_loss"], m["tokens_seen"]) for m in read_metrics(folder / "metrics.jsonl")]

    assert evaluations(out) == evaluations(reference)


def test_two_processes_train_the_model_that_one_would(corpus, tmp_path, subprocess_env):
    """torchrun with 2 processes (gloo on CPU) against one process accumulating 2 micro-batches:
    the same global batch, so the same losses and weights up to float rounding."""
    args = [*TINY, "--data", corpus, "--max-steps", 20, "--dropout", 0]
    weights, ddp_out, single_out = tmp_path / "weights", tmp_path / "ddp", tmp_path / "single"
    weights.mkdir()
    ddp = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                            str(ROOT / "tests" / "ddp_worker.py"), str(weights), *map(str, args), "--out", str(ddp_out)],
                           cwd=ROOT, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        stdout, stderr = ddp.communicate(timeout=600)
    finally:
        if ddp.poll() is None:  # timed out: take the workers down with torchrun
            os.killpg(ddp.pid, signal.SIGKILL)
    assert ddp.returncode == 0, stderr[-3000:]
    single = train(*args, "--grad-accum", 2, "--out", single_out, env=subprocess_env)
    assert single.returncode == 0, single.stderr

    rank0, rank1 = weights_of(weights / "rank0.safetensors"), weights_of(weights / "rank1.safetensors")
    assert_same_tensors(rank0, rank1)
    assert_same_tensors(rank0, weights_of(ddp_out / "ckpt_last.pt"))
    assert_same_tensors(rank0, weights_of(single_out / "ckpt_last.pt"), rtol=1e-4, atol=1e-6)

    ddp_metrics, single_metrics = read_metrics(ddp_out / "metrics.jsonl"), read_metrics(single_out / "metrics.jsonl")
    assert [m["step"] for m in ddp_metrics] == [10, 20]  # rank 1 wrote no records of its own
    for got, expected in zip(ddp_metrics, single_metrics):
        assert got["tokens_seen"] == expected["tokens_seen"]
        for key in ("train_loss", "val_loss"):
            assert got[key] == pytest.approx(expected[key], rel=1e-4, abs=2e-5)
    assert stdout.count("model written to") == 1 and "2 process(es)" in stdout
    load_model(ddp_out / "model")


@pytest.mark.parametrize("every_s, lines", [(0.0, 3), (3600.0, 1)])
def test_progress_in_a_log_is_a_plain_line_every_so_often(every_s, lines, capsys, monkeypatch):
    """Where stderr is no terminal (capsys), progress is printed as lines, at most one per
    LINE_EVERY_S and always the last step's, instead of a bar that tqdm would redraw every 30 s."""
    monkeypatch.setattr(ProgressBar, "LINE_EVERY_S", every_s)
    bar = ProgressBar(TrainConfig(max_steps=3, max_minutes=None), enabled=True, initial_step=0)
    for step in (1, 2, 3):
        bar.update(step, loss=2.0 / step, tok_s=1000.0 * step, progress=step / 3, elapsed_s=float(step))
    bar.close()
    printed = capsys.readouterr().err.splitlines()
    assert len(printed) == lines and "\r" not in "".join(printed)
    assert printed[-1] == "step 3/3: loss 0.667, 3,000 tok/s, 100%, eta 0:00"


def test_time_estimate_is_printed_once_the_speed_is_known(capsys):
    """ESTIMATE_AFTER_S into this process's training, one line: the whole run and what is left."""
    bar = ProgressBar(TrainConfig(max_steps=120), enabled=True, initial_step=0)
    printed = []
    for step in range(1, 7):  # 10 s a step on the run's clock
        bar.update(step, loss=2.0, tok_s=1000.0, progress=step / 120, elapsed_s=10.0 * step)
        printed.append([line for line in capsys.readouterr().out.splitlines() if "time estimate" in line])
    bar.close()
    # 30 s after the first step; at 10 s a step, 120 steps take 20 minutes, 19.3 of them still to go
    estimate = "time estimate for this machine, at its speed so far: about 20 minutes in all, about 19 minutes to go"
    assert printed == [[], [], [], [estimate], [], []]


def test_a_time_budget_covers_the_evaluations_too(corpus, tmp_path, monkeypatch):
    """On a clock where a step takes 0.2 s and an evaluation 3 s, a 30-second run ends, its final
    evaluation included, within its 30 seconds: every evaluation's time counts as it happens, and
    the time the last one took is kept back for the final one."""
    import types

    import train
    from lyricgpt import training

    now = [0.0]
    monkeypatch.setattr(training, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    args = train.parse_args([*TINY, "--data", str(corpus), "--out", str(tmp_path / "out"), "--max-minutes", "0.5"])
    cfg = train.build_config(args)
    trainer = training.Trainer(cfg, setup_runtime(cfg))
    step, evaluate = trainer.train_step, trainer.evaluate

    def timed(work, seconds):
        def run():
            now[0] += seconds
            return work()
        return run

    monkeypatch.setattr(trainer, "train_step", timed(step, 0.2))
    monkeypatch.setattr(trainer, "evaluate", timed(evaluate, 3.0))
    trainer.run()
    assert 30.0 - 3.2 <= now[0] <= 30.0 + 1e-9
    assert read_metrics(tmp_path / "out" / "metrics.jsonl")[-1]["lr"] == pytest.approx(
        PRESETS["tiny"]["lr"] * TrainConfig.min_lr_ratio, rel=1e-3)
