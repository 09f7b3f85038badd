"""A training run's settings: the dataclass, the presets, and the checks made before any work starts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from .checkpoint import CheckpointError
from .model import ACTIVATIONS, CONFIGS, BigramConfig, GPTConfig


@dataclass
class TrainConfig:
    data: str = "assets/lyrics.txt"
    out: str = "runs/lyricgpt"
    model: str = "gpt"  # "gpt" or "bigram"
    # model shape
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    context_length: int = 256  # songs repeat their refrains a stanza or more apart
    dropout: float = 0.0
    bias: bool = True
    activation: str = "gelu"  # see GPTConfig
    # optimisation; one optimiser step sees batch_size * grad_accum * world_size windows
    batch_size: int = 16  # 16 x 256 = 4,096 characters a step
    grad_accum: int = 1
    optimizer: str = "muon"  # "muon": Muon for the blocks' matrices, AdamW for the rest; or "adamw"
    lr: float = 2e-3
    muon_lr: float = 0.02  # Muon's peak learning rate; the schedule scales it with lr
    min_lr_ratio: float = 0.0  # the decay ends at min_lr_ratio x the peak
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    warmup_steps: int = 100
    schedule: str = "wsd"  # "cosine" or "wsd" (warmup, stable, then linear decay)
    decay_fraction: float = 0.6  # wsd: the final share of training spent decaying
    # how long: whichever comes first; the schedule is planned for it. The bundled recipe names its
    # work, not a clock, so that it gives the same model on any machine: the 6,301 steps that its
    # hour held on the machine that trained it (docs/training-recipe.md).
    max_steps: int | None = 6301
    max_minutes: float | None = None
    eval_interval: int = 2000
    seed: int = 1337
    device: str = "auto"  # auto, cpu, cuda, mps
    dtype: str = "auto"  # auto, bfloat16, float32 (autocast precision of the forward pass)
    compile: str = "auto"  # auto, on, off
    sample_chars: int = 500
    voice: str | None = None  # the model's name on the page (its card's ``voice:``); None: named by its data
    # fine-tuning: start from a trained model (its shape, weights and vocabulary), see finetune.py
    init_from: str | None = None  # a model folder or Hub repo id
    replay: float = 0.0  # share of each batch drawn from the base model's corpus, against forgetting
    replay_data: str | None = None  # that corpus (default: the one the base model's card names)
    patience: int = 0  # stop after this many evaluations without a better validation score (0: never)


PRESETS: dict[str, dict] = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, context_length=64, dropout=0.0, batch_size=32,
                 optimizer="adamw", lr=3e-3, weight_decay=0.1, decay_fraction=0.2, warmup_steps=20, max_steps=300,
                 eval_interval=100, sample_chars=200),
    "bundled": dict(),  # the dataclass defaults are the bundled model's recipe (docs/training-recipe.md)
    "gpt2-124m": dict(n_layer=12, n_head=12, n_embd=768, context_length=1024, dropout=0.1,
                      batch_size=16, grad_accum=4, lr=6e-4, warmup_steps=500, max_steps=20000,
                      eval_interval=500, optimizer="adamw", weight_decay=0.1, beta2=0.95, schedule="cosine",
                      activation="gelu_tanh"),
}


class TrainingError(RuntimeError):
    """Something that stops training, with a message for the user."""


# What a resumed run may change; anything else would make it a different run.
RESUMABLE_CHANGES = ("out", "data", "max_steps", "max_minutes", "device", "eval_interval", "sample_chars", "voice")


def saved_model_config(state: dict) -> dict:
    """The checkpoint's model config, settings added since it was saved at their defaults (the
    model config's defaults are what older runs trained with, e.g. GPT-2's tanh GELU)."""
    try:
        return asdict(CONFIGS[state["model_config"]["architecture"]](**state["model_config"]))
    except (KeyError, TypeError):
        raise CheckpointError("the checkpoint's model settings are not LyricGPT's") from None


def resumed_config(state: dict, changes: dict) -> TrainConfig:
    """The saved run's settings, with the ``changes`` a resume allows."""
    saved = dict(state["train_config"])
    model_config = saved_model_config(state)
    if "activation" in model_config:  # a run from before the setting trained as its model says
        saved.setdefault("activation", model_config["activation"])
    fixed = sorted(k for k, v in changes.items() if k not in RESUMABLE_CHANGES and v != saved.get(k))
    if fixed:
        raise TrainingError("--resume continues the saved run, whose settings cannot change: "
                            + ", ".join("--" + k.replace("_", "-") for k in fixed))
    saved.update(changes)
    return TrainConfig(**saved)


def check_config(cfg: TrainConfig) -> None:
    """Refuse settings that would crash, hang or quietly do nothing, before any work starts."""
    # NaN fails every comparison, so it is refused along with the values out of range.
    rules = {
        "model": (lambda v: v in ("gpt", "bigram"), "gpt or bigram"),
        "optimizer": (lambda v: v in ("adamw", "muon"), "adamw or muon"),
        "activation": (lambda v: v in ACTIVATIONS, " or ".join(sorted(ACTIVATIONS))),
        "muon_lr": (lambda v: 0 < v < math.inf, "above 0"),
        "schedule": (lambda v: v in ("cosine", "wsd"), "cosine or wsd"),
        "compile": (lambda v: v in ("auto", "on", "off"), "auto, on or off"),
        **{name: (lambda v: v >= 1, "at least 1") for name in
           ("n_layer", "n_head", "n_embd", "context_length", "batch_size", "grad_accum", "eval_interval")},
        "warmup_steps": (lambda v: v >= 0, "at least 0"),
        "sample_chars": (lambda v: v >= 0, "at least 0"),
        "max_steps": (lambda v: v is None or v >= 0, "at least 0 (0: no limit)"),
        "max_minutes": (lambda v: v is None or 0 <= v < math.inf, "at least 0 (0: no limit)"),
        "lr": (lambda v: 0 < v < math.inf, "above 0"),
        "weight_decay": (lambda v: 0 <= v < math.inf, "at least 0"),
        "grad_clip": (lambda v: 0 <= v < math.inf, "at least 0 (0: off)"),
        "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "min_lr_ratio": (lambda v: 0 <= v <= 1, "in [0, 1]"),
        "replay": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "patience": (lambda v: v >= 0, "at least 0 (0: never stop early)"),
        "decay_fraction": (lambda v: 0 < v <= 1, "in (0, 1]"),
    }
    for name, (ok, rule) in rules.items():
        value = getattr(cfg, name)
        if not ok(value):
            raise TrainingError(f"--{name.replace('_', '-')} must be {rule}, got {value!r}")
    if not cfg.max_steps and not cfg.max_minutes:
        raise TrainingError("give --max-steps or --max-minutes (or both)")
    if cfg.model == "gpt" and cfg.n_embd % cfg.n_head:
        raise TrainingError(f"--n-embd ({cfg.n_embd}) must be a multiple of --n-head ({cfg.n_head})")
    if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise TrainingError(f"--out {cfg.out} is a file, not a folder")


# What a run writes into --out, which a new run there would overwrite.
RUN_FILES = ("ckpt_last.pt", "ckpt_best.pt", "metrics.jsonl", "loss.png", "model")


def check_new_out(out: str) -> None:
    """Refuse to start a new run over an earlier run's files: it would overwrite them without a word."""
    found = [name for name in RUN_FILES if (Path(out) / name).exists()]
    if found:
        raise TrainingError(f"--out {out} already holds a run ({', '.join(found)}). Continue it with "
                            f"`python train.py --out {out} --resume`, or train into another --out "
                            "(or delete that folder first)")


def make_model_config(cfg: TrainConfig, vocab_size: int) -> GPTConfig | BigramConfig:
    if cfg.model == "bigram":
        return BigramConfig(vocab_size=vocab_size, context_length=cfg.context_length)
    return GPTConfig(vocab_size=vocab_size, context_length=cfg.context_length, n_layer=cfg.n_layer,
                     n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout, bias=cfg.bias,
                     activation=cfg.activation)
