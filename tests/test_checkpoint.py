"""Training checkpoints: refused when damaged or foreign, and never left half-written by a crash
or a full disk."""

from __future__ import annotations

import pathlib
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import train
from lyricgpt.checkpoint import FORMAT, CheckpointError, load_checkpoint, save_checkpoint
from conftest import child_env
from training_runs import TINY, train as run_train, tree_digest


@pytest.fixture(scope="module")
def stopped_run(corpus, tmp_path_factory):
    """A run stopped at step 10 of 20: ckpt_last.pt, ckpt_best.pt, metrics.jsonl and loss.png."""
    out = tmp_path_factory.mktemp("stopped") / "out"
    proc = run_train(*TINY, "--data", corpus, "--out", out, "--max-steps", 20, "--stop-at-step", 10, env=child_env())
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def run_copy(stopped_run, tmp_path):
    return shutil.copytree(stopped_run, tmp_path / "out")


def test_round_trip_leaves_no_temporary_file(tmp_path):
    state = {"step": 7, "model": {"w": torch.randn(3, 4)}, "rng": torch.get_rng_state(), "chars": ["a", "\n"],
             "best": float("inf"), "cuda_rng": None}
    save_checkpoint(state, tmp_path / "ckpt.pt")
    back = load_checkpoint(tmp_path / "ckpt.pt")
    assert back["step"] == 7 and back["chars"] == ["a", "\n"] and back["best"] == float("inf")
    assert torch.equal(back["model"]["w"], state["model"]["w"]) and torch.equal(back["rng"], state["rng"])
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


class Payload:
    """Unpickling this touches a file: what any code could do, had the loader not refused it."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def corrupted(path: pathlib.Path) -> str:
    rng = random.Random(0)
    path.write_bytes(bytes(rng.getrandbits(8) for _ in range(path.stat().st_size)))
    return "corrupted"


def truncated(path: pathlib.Path) -> str:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return "truncated"


def empty(path: pathlib.Path) -> str:
    path.write_bytes(b"")
    return "truncated"


def foreign(path: pathlib.Path) -> str:
    torch.save({"epoch": 3, "state_dict": {"w": torch.zeros(2)}}, path)
    return "not a LyricGPT training checkpoint"


def newer_version(path: pathlib.Path) -> str:
    torch.save({"format": FORMAT, "version": 2}, path)
    return "version 2"


def arbitrary_object(path: pathlib.Path) -> str:
    torch.save({"format": FORMAT, "version": 1, "step": Payload(path.with_name("pwned"))}, path)
    return "not a checkpoint"


DAMAGES = [corrupted, truncated, empty, foreign, newer_version, arbitrary_object]


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_checkpoint_is_refused_and_nothing_changes(damage, run_copy, capsys):
    ckpt = run_copy / "ckpt_last.pt"
    reason = damage(ckpt)
    before = tree_digest(run_copy)
    assert train.main(["--out", str(run_copy), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {ckpt}") and reason in err and "Traceback" not in err
    assert tree_digest(run_copy) == before
    assert not (run_copy / "pwned").exists()


def test_load_refuses_what_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "folder.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a LyricGPT training checkpoint"):
        load_checkpoint(tmp_path / "list.pt")


# Rewrites the checkpoint forever, each time with a large tensor filled with the generation number,
# so that a kill lands in the middle of a write and a mixed-up file would show.
SAVE_FOREVER = """
import sys, torch
from lyricgpt.checkpoint import load_checkpoint, save_checkpoint
state = load_checkpoint(sys.argv[1])
for generation in range(1, 1_000_000):
    state["generation"], state["padding"] = generation, torch.full((8_000_000,), float(generation))
    save_checkpoint(state, sys.argv[1])
"""


def test_kill_while_saving_keeps_the_previous_checkpoint(run_copy, subprocess_env):
    ckpt = run_copy / "ckpt_last.pt"
    original = ckpt.stat().st_mtime_ns
    proc = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(ckpt)], env=subprocess_env)
    deadline = time.monotonic() + 300
    while ckpt.stat().st_mtime_ns == original:  # until the first rewrite lands (or starts, if not atomic)
        assert proc.poll() is None, "the saving process died on its own"
        assert time.monotonic() < deadline, "the saving process made no progress"
        time.sleep(0.005)
    # Then kill it at some moment of the writes that follow: it spends most of its time writing.
    time.sleep(random.Random(0).uniform(0.1, 0.5))
    proc.kill()
    proc.wait()

    state = load_checkpoint(ckpt)
    assert state["generation"] >= 1
    assert torch.all(state["padding"] == state["generation"])
    assert state["step"] == 10

    resumed = run_train("--out", run_copy, "--resume", env=subprocess_env)
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(ckpt)["step"] == 20
    assert not list(run_copy.glob("*.tmp"))  # a completed save leaves no temporary file


def test_full_disk_keeps_the_previous_checkpoint(run_copy, subprocess_env):
    ckpt = run_copy / "ckpt_last.pt"
    good = ckpt.read_bytes()
    limit = len(good) // 2  # room for the metrics and the plot, not for a checkpoint

    def small_files() -> None:  # runs in the child before train.py starts
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so that write() fails with EFBIG instead

    proc = run_train("--out", run_copy, "--resume", env=subprocess_env, preexec_fn=small_files)
    assert proc.returncode == 2, proc.stderr
    assert f"error: could not write checkpoint {ckpt}" in proc.stderr
    assert "previous checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    assert ckpt.read_bytes() == good
    assert not list(run_copy.glob("*.tmp"))
