"""Rows of text being decoded: fill a row with a prompt, then step every row in use by one token.

Both loops decode through a decoder: ``sampler.generate`` (one song, one row) and
``batching.BatchSampler`` (many songs, a row each). ``make_decoder`` chooses, in one place, between
the compiled step of ``lyricgpt.fast_step`` and the plain one here: the model's own forward pass
with its growing ``KVCache``, which any model has and which needs no compiler.

Compiling costs more than it saves for a song or two (a model card's three samples took 4.8 s
compiled, 1.1 s plain; 19 s with inductor's cache empty), so a model decodes compiled only once a
process that will serve it for long has called ``warm_up`` (the engine does, at its start).
"""

from __future__ import annotations

import torch

from .fast_step import FastDecoder, compile_enabled, is_warm
from .model import GPT


class PlainDecoder:
    """Rows decoded by ``model(idx, cache=...)``: every model, no compilation."""

    def __init__(self, model: torch.nn.Module, rows: int = 1):
        self.model = model
        self.cache = model.new_cache(rows)
        self.device = next(model.parameters()).device

    @property
    def lengths(self) -> torch.Tensor:
        """Positions filled, per row."""
        return self.cache.lengths

    def prefill(self, row: int, tokens: list[int]) -> torch.Tensor | None:
        """Empty ``row`` and read ``tokens`` into it; the logits after the last one (None for no tokens)."""
        view = self.cache.rows(row, row + 1)
        view.reset()
        if not tokens:
            return None
        logits, _ = self.model(torch.tensor([tokens], device=self.device), cache=view)
        return logits[0, -1]

    def step(self, tokens: list[int]) -> torch.Tensor:
        """Rows 0..n-1 each read one more token; their next logits (n, vocab)."""
        idx = torch.tensor(tokens, device=self.device)[:, None]
        logits, _ = self.model(idx, cache=self.cache.rows(0, len(tokens)))
        return logits[:, -1]


def warm_up(model: torch.nn.Module, rows: int) -> None:
    """Compile ``model``'s step now for every batch size up to ``rows``, where it can be (a GPT,
    unless ``LYRICGPT_COMPILE=0``); from then on its decoders in this process use it."""
    if isinstance(model, GPT) and compile_enabled():
        FastDecoder(model, rows).warm_up()


def make_decoder(model: torch.nn.Module, rows: int = 1) -> PlainDecoder | FastDecoder:
    """The compiled decoder for a model warmed up in this process (unless ``LYRICGPT_COMPILE=0``),
    the plain one otherwise."""
    if isinstance(model, GPT) and compile_enabled() and is_warm(model):
        return FastDecoder(model, rows)
    return PlainDecoder(model, rows)
