"""Looking inside the model: at a point in a song, what it was choosing between, and what it
was looking at. Each is one forward pass over the window the model read there, computed on demand."""

from __future__ import annotations

import torch

from .lm import LyricModel
from .sampler import TOP_N


def window_ids(lm: LyricModel, text: str, window: int | None = None) -> list[int]:
    """The tokens the model read after ``text``: its last ``window`` characters (default: up to a
    context). A song from a blank first line starts from the line break it was given instead."""
    ids = lm.tokenizer.encode(text)
    if window is None:
        return ids[-lm.context_length:] or lm.start_ids()
    if not 1 <= window <= lm.context_length:
        raise ValueError(f"the window must be between 1 and the context length {lm.context_length}, got {window}")
    if len(ids) < window:
        ids = lm.start_ids() + ids
    if len(ids) < window:
        raise ValueError(f"the window of {window} characters is longer than the text before it")
    return ids[-window:]


def _input(lm: LyricModel, ids: list[int]) -> torch.Tensor:
    return torch.tensor([ids], device=next(lm.model.parameters()).device)


@torch.inference_mode()
def next_char_odds(lm: LyricModel, text: str, window: int | None = None, n: int = TOP_N) -> list[tuple[str, float]]:
    """The ``n`` likeliest next characters after ``text``, with the model's probabilities."""
    ids = window_ids(lm, text, window)
    logits, _ = lm.model(_input(lm, ids))
    top = torch.topk(logits[0, -1].float().softmax(-1), min(n, lm.tokenizer.vocab_size))
    return [(lm.tokenizer.chars[i], p) for i, p in zip(top.indices.tolist(), top.values.tolist())]


@torch.inference_mode()
def attention_map(lm: LyricModel, text: str, window: int | None = None) -> dict:
    """How strongly the model, choosing the character after ``text``, attended to each character of
    its window: ``weights[layer][head][position]``, each row summing to 1. A bigram model has none."""
    ids = window_ids(lm, text, window)
    weights: list[torch.Tensor] = []
    lm.model(_input(lm, ids), attention_weights=weights)
    return {"chars": [lm.tokenizer.chars[i] for i in ids],
            "weights": [w[0, :, -1].float().tolist() for w in weights]}  # each layer: (heads, positions)
