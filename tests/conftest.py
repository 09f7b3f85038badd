"""Shared fixtures: small real models and the default corpus, built once per test session."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "assets" / "lyrics.txt"
BUNDLED_MODEL = ROOT / "assets" / "model"

# Two test processes on two cores must not each spin two OpenMP threads.
torch.set_num_threads(1)
# Nothing a test does may touch the user's Hugging Face cache or token. Set before any test
# imports huggingface_hub, which reads these at import time.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="lyricgpt-test-hf-home-")
os.environ.pop("HF_TOKEN", None)
# Compiling the decoding step takes seconds per model and batch size: the suite's many small models
# decode plainly (here and in the processes it starts); tests/test_fast_step.py turns it on and
# pins the compiled step, the solo loop and the batch against this plain path.
os.environ["LYRICGPT_COMPILE"] = "0"


@pytest.fixture(scope="session")
def corpus_text() -> str:
    return CORPUS.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def corpus_lexicon():
    """The default corpus's words, with their syllables and rhymes (lyricgpt.lexicon), for song forms.
    Counted from the file, so that it reaches an engine's process as the same words."""
    from lyricgpt.lexicon import Lexicon

    return Lexicon.from_songs([CORPUS])


@pytest.fixture(scope="session")
def tiny_lm(corpus_text):
    """An untrained (random) 2-layer GPT with the corpus's tokenizer."""
    from lyricgpt import CharTokenizer, GPT, GPTConfig, LyricModel

    tok = CharTokenizer.from_text(corpus_text)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, context_length=32, n_layer=2, n_head=2, n_embd=32))
    return LyricModel(model, tok, source="tiny")


@pytest.fixture(scope="session")
def slow_model_dir(tiny_lm, tmp_path_factory) -> Path:
    """A model wide and deep enough that a 2000-character song takes many seconds: time to press
    Stop, or to find every place in the engine taken."""
    from lyricgpt import GPT, GPTConfig, LyricModel

    torch.manual_seed(0)
    config = GPTConfig(vocab_size=tiny_lm.tokenizer.vocab_size, context_length=256, n_layer=8, n_head=4, n_embd=256)
    folder = tmp_path_factory.mktemp("slow-model")
    LyricModel(GPT(config), tiny_lm.tokenizer).save(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_lm, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_lm.save(folder)
    return folder


def readme_example(marker: str) -> str:
    """The README's Python example that holds ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    return next(block for block in blocks if marker in block)


def child_env() -> dict[str, str]:
    """Environment for child processes: the repo importable, one thread each, no real Hub."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env.pop("HF_TOKEN", None)
    return env


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """A small made-up song file for training runs (training_runs.write_corpus)."""
    from training_runs import write_corpus

    return write_corpus(tmp_path_factory.mktemp("corpus") / "songs.txt")


@pytest.fixture(scope="session")
def tiny_run(corpus, tmp_path_factory):
    """(process, out folder) of one finished train.py run of training_runs.TWENTY_STEPS on ``corpus``,
    shared by the CLI and the resume tests."""
    from training_runs import TWENTY_STEPS, train

    out = tmp_path_factory.mktemp("run") / "out"
    proc = train(*TWENTY_STEPS, "--data", corpus, "--out", out, env=child_env(),
                 umask=0o022)  # the usual umask, so that the files' modes are known
    assert proc.returncode == 0, proc.stderr
    return proc, out


@pytest.fixture(scope="session")  # session-wide so that module-scoped servers can use it
def subprocess_env() -> dict[str, str]:
    """``child_env()``, shared by every test: copy it ({**subprocess_env, ...}) before changing anything."""
    return child_env()


@pytest.fixture(scope="session")
def second_voice_dir(tiny_run, tmp_path_factory) -> Path:
    """A second voice for the app: ``tiny_run``'s model (its card names its songs, so it has a bigram
    of its own), with example first lines of its own."""
    import shutil

    folder = tmp_path_factory.mktemp("second-voice") / "model"
    shutil.copytree(tiny_run[1] / "model", folder)
    (folder / "examples.txt").write_text("Cold river road\n\nBlue summer night\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def ending_lm(tiny_lm):
    """A bigram over the corpus's characters that writes a line break three times in ten, so that
    its songs end (two blank lines) soon after the shortest length a song may have."""
    import math

    from lyricgpt import LyricModel
    from lyricgpt.model import Bigram, BigramConfig

    tok = tiny_lm.tokenizer
    model = Bigram(BigramConfig(vocab_size=tok.vocab_size, context_length=64))
    with torch.no_grad():
        model.table.weight.zero_()
        model.table.weight[:, tok.encode("\n")[0]] = math.log(0.3 / 0.7 * (tok.vocab_size - 1))
    return LyricModel(model, tok, source="ending")


@pytest.fixture(scope="session")
def ending_model_dir(ending_lm, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ending-model")
    ending_lm.save(folder)
    return folder
