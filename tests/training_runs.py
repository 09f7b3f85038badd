"""Running train.py in child processes on a small made-up corpus, for the training tests."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent

# A model small enough that a run of a few dozen steps takes about a second on one CPU thread.
TINY = ["--preset", "tiny", "--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--context-length", "32",
        "--batch-size", "8", "--eval-interval", "10", "--sample-chars", "20", "--dtype", "float32",
        "--device", "cpu"]
# The shared finished run (conftest's ``tiny_run``); dropout, so that a resume must restore the random state too.
TWENTY_STEPS = [*TINY, "--max-steps", 20, "--dropout", 0.1]

WORDS = ("love night heart fire rain dance baby road home light dream tears sky "
         "you me we hold run stay gone blue gold cold river summer").split()


def write_corpus(path: Path, n_songs: int = 300, seed: int = 0) -> Path:
    """Made-up songs (the same every time), two blank lines apart as in assets/lyrics.txt."""
    rng = random.Random(seed)
    songs = []
    for _ in range(n_songs):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7))).capitalize()
                 for _ in range(rng.randint(3, 6))]
        songs.append("\n".join(lines))
    path.write_text("\n\n\n".join(songs) + "\n", encoding="utf-8")
    return path


def train(*args, env: dict[str, str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python train.py ARGS`` to the end; its output is captured as text."""
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def start_train(*args, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``python train.py ARGS`` in the background, its output going to ``log``."""
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *map(str, args)], cwd=ROOT, env=env,
                                stdout=f, stderr=subprocess.STDOUT)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 600) -> None:
    """Poll until ``path`` exists, failing at once if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}) before {path} appeared")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    """The weights in a model folder, a safetensors file or a training checkpoint."""
    from lyricgpt import load_model
    from lyricgpt.checkpoint import load_checkpoint

    if path.is_dir():
        return load_model(path).model.state_dict()
    if path.suffix == ".safetensors":
        return load_file(str(path))
    return load_checkpoint(path)["model"]


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], rtol: float = 0.0,
                        atol: float = 0.0) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        if rtol == atol == 0.0:
            assert torch.equal(a[name], b[name]), f"{name} differs"
        else:
            torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=atol, msg=f"{name} differs")


def tree_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by relative path: to show that nothing changed."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
