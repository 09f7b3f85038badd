"""The optimisers (AdamW, or Muon for the blocks' matrices with AdamW for the rest) and the learning-rate schedule."""

from __future__ import annotations

import math

import torch

from .muon import Muon
from .runtime import bf16_is_fast
from .train_config import TrainConfig, TrainingError


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> "torch.optim.Optimizer | OptimizerPair":
    """AdamW for every parameter; or, with ``--optimizer muon``, Muon for the blocks' weight matrices."""
    # Weight decay on matrices (and embeddings) only: decaying biases and LayerNorm gains only hurts.
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    # Muon orthogonalises each update, which suits the matrices inside the blocks; the embedding
    # table (also the tied output head) and the 1-D gains and biases stay with AdamW, as in
    # modded-nanoGPT and nanochat.
    hidden = [p for n, p in params if cfg.optimizer == "muon" and p.dim() == 2 and n.startswith("blocks.")]
    rest = [(n, p) for n, p in params if not any(p is h for h in hidden)]
    adamw = torch.optim.AdamW([
        {"params": [p for _, p in rest if p.dim() >= 2], "weight_decay": cfg.weight_decay, "peak_lr": cfg.lr},
        {"params": [p for _, p in rest if p.dim() < 2], "weight_decay": 0.0, "peak_lr": cfg.lr},
    ], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda")
    if not hidden:
        return adamw
    muon = Muon([{"params": hidden, "peak_lr": cfg.muon_lr}], lr=cfg.muon_lr, weight_decay=cfg.weight_decay,
                ns_dtype=torch.bfloat16 if bf16_is_fast(device) else torch.float32)
    return OptimizerPair(muon, adamw)


class OptimizerPair:
    """Two optimisers stepped as one, so that the loop and checkpoints need not know there are two."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    def step(self, closure=None) -> None:
        for o in self.optimizers:
            o.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"parts": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        if len(state.get("parts", ())) != len(self.optimizers):
            raise ValueError("the checkpoint was saved with another --optimizer")
        for o, s in zip(self.optimizers, state["parts"]):
            o.load_state_dict(s)


def lr_at(cfg: TrainConfig, step: int, progress: float) -> float:
    """Learning rate for ``step``, where ``progress`` in [0, 1] is the share of the planned run done.

    Warmup counts steps; the decay follows progress, so a run planned in minutes decays on time.
    """
    warmup = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    p = min(max(progress, 0.0), 1.0)
    if cfg.schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * p))
    elif cfg.schedule == "wsd":
        decay = min(1.0, (1.0 - p) / cfg.decay_fraction)
    else:
        raise TrainingError(f"unknown schedule {cfg.schedule!r}; use cosine or wsd")
    return cfg.lr * warmup * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * decay)


def progress_of(cfg: TrainConfig, step: int, elapsed_s: float) -> float:
    parts = []
    if cfg.max_steps:
        parts.append(step / cfg.max_steps)
    if cfg.max_minutes:
        parts.append(elapsed_s / (60.0 * cfg.max_minutes))
    return max(parts)
