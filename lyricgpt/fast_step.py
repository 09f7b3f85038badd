"""A compiled decoding step: one new character per row, through the same GPT, with fixed shapes.

On a CPU a step of the plain ``KVCache`` path costs several times the time it takes to read the
weights: ~130 small operations whose shapes change at every character (the cache grows), so nothing
can be compiled once. Here (the gpt-fast pattern) the cache always spans the whole context, one key
and one value tensor per layer (one 5-D tensor for all layers compiled 5x slower), each row writes
its own position and attends to every position under a mask. The shapes never change, so
``torch.compile(fullgraph=True, dynamic=False)`` makes the step one graph per batch size.

The step runs ``GPT.network``, the same modules as ``GPT.forward``. A prefill (a prompt, or the
re-fill of a full cache) runs eagerly. ``LYRICGPT_COMPILE=0`` turns compilation off; where it
fails (no C++ compiler, an unsupported platform) the step runs eagerly after a one-line warning.
"""

from __future__ import annotations

import functools
import os
import warnings

import torch

from .model import GPT


class StaticCache:
    """Keys and values of every layer over the whole context, one tensor each per layer."""

    def __init__(self, model: GPT, batch_size: int):
        c, p = model.config, model.wte.weight
        shape = (batch_size, c.n_head, c.context_length, c.n_embd // c.n_head)
        self.keys = [torch.zeros(shape, dtype=p.dtype, device=p.device) for _ in range(c.n_layer)]
        self.values = [torch.zeros(shape, dtype=p.dtype, device=p.device) for _ in range(c.n_layer)]
        self.lengths = torch.zeros(batch_size, dtype=torch.long, device=p.device)  # positions filled, per row
        self.positions = torch.arange(c.context_length, device=p.device)
        self.context_length = c.context_length

    @property
    def length(self) -> int:
        """Positions filled in the longest row."""
        return int(self.lengths.max())

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this layer's new keys/values; return what the new positions attend to: a step's
        row, the whole context (``step`` masks the rest); a prefill from empty, its own positions."""
        T = k.size(2)
        if T == 1:
            rows = torch.arange(k.size(0), device=k.device)
            self.keys[layer][rows, :, self.lengths] = k[:, :, 0]
            self.values[layer][rows, :, self.lengths] = v[:, :, 0]
            return self.keys[layer], self.values[layer]
        self.keys[layer][:, :, :T] = k
        self.values[layer][:, :, :T] = v
        return self.keys[layer][:, :, :T], self.values[layer][:, :, :T]

    def reset(self) -> None:
        self.lengths.zero_()


def decode_step(model: GPT, cache: StaticCache, tokens: torch.Tensor) -> torch.Tensor:
    """Each row's logits for the token after ``tokens`` (one per row), at the row's own position."""
    pos = cache.lengths[:, None]
    later = (cache.positions > pos)[:, None, None, :]  # (rows, 1, 1, context): not written yet
    logits = model.network(tokens[:, None], pos, cache, later)
    cache.lengths += 1
    return logits[:, 0]


def compile_enabled() -> bool:
    return os.environ.get("LYRICGPT_COMPILE", "1") != "0"


@functools.cache
def _compiled():
    return torch.compile(decode_step, fullgraph=True, dynamic=False)


_compile_failed = False


class FastDecoder:
    """A prompt's prefill and then one character per row at a time, with a ``StaticCache``."""

    def __init__(self, model: GPT, batch_size: int = 1):
        self.model = model
        self.cache = StaticCache(model, batch_size)

    @property
    def length(self) -> int:
        return self.cache.length

    def prefill(self, idx: torch.Tensor) -> torch.Tensor:
        """Empty the cache and read ``idx`` (rows, T), every row from position 0; logits (rows, T, vocab)."""
        T = idx.size(1)
        if T > self.cache.context_length:
            raise ValueError(f"{T} positions exceed the context length {self.cache.context_length}")
        self.cache.reset()
        logits = self.model.network(idx, torch.arange(T, device=idx.device), self.cache)
        self.cache.lengths += T
        return logits

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Each row's next logits (rows, vocab) after one more token per row (rows,)."""
        global _compile_failed
        if self.cache.length >= self.cache.context_length:
            raise ValueError(f"the cache is full (context length {self.cache.context_length}): prefill again")
        if _compile_failed or not compile_enabled():
            return decode_step(self.model, self.cache, tokens)
        try:
            return _compiled()(self.model, self.cache, tokens)
        except Exception as e:  # noqa: BLE001 - compilation is an optimisation: never fail to serve for it
            _compile_failed = True
            reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {reason[:200]}); decoding without it",
                          RuntimeWarning, stacklevel=2)
            return decode_step(self.model, self.cache, tokens)
