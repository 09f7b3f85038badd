"""A compiled decoding step: one new character per row, through the same GPT, with fixed shapes.

On a CPU a step of the plain ``KVCache`` path costs several times the time it takes to read the
weights: ~130 small operations whose shapes change at every character (the cache grows), so nothing
can be compiled once. Here (the gpt-fast pattern) the cache always spans the whole context, one key
and one value tensor per layer (one 5-D tensor for all layers compiled 5x slower), each row writes
its own position and attends to every position under a mask. The shapes never change, so
``torch.compile(fullgraph=True, dynamic=False)`` makes the step one graph per batch size.

Batch sizes come in buckets (1, 2, 4, ... up to the decoder's rows): n songs step as the smallest
bucket that holds them, the rows past them stepping idle. A graph per bucket measured faster than
one graph with a dynamic batch (docs/benchmarks.md). ``warm_up`` compiles them all before anyone
waits; inductor keeps what it compiled on disk, so a restart compiles faster. Compiling takes
seconds (a minute for an engine's buckets), more than a song of a few hundred characters takes
without it, so only a model warmed up in this process decodes this way (``lyricgpt.decoding``).

The step runs ``GPT.network``, the same modules as ``GPT.forward``. A prefill (a prompt, or the
re-fill of a full cache) runs eagerly. ``LYRICGPT_COMPILE=0`` turns compilation off (see
``lyricgpt.decoding``); where it fails (no C++ compiler, an unsupported platform) the step runs
eagerly after a one-line warning.
"""

from __future__ import annotations

import functools
import os
import warnings
import weakref

import torch

from .model import GPT


class StaticCache:
    """Keys and values of every layer over the whole context, one tensor each per layer."""

    # Plain tensors, even when made under inference mode (as sampler.generate makes its cache): a graph
    # compiled for one kind of tensor is compiled again for the other, so a warm-up would not count.
    @torch.inference_mode(False)
    def __init__(self, model: GPT, batch_size: int):
        c, p = model.config, model.wte.weight
        # One position more than the context, never written: a window as long as the tensor would be
        # contiguous, and dynamo compiles a graph of its own for that (see FastDecoder.step).
        shape = (batch_size, c.n_head, c.context_length + 1, c.n_embd // c.n_head)
        self.keys = [torch.zeros(shape, dtype=p.dtype, device=p.device) for _ in range(c.n_layer)]
        self.values = [torch.zeros(shape, dtype=p.dtype, device=p.device) for _ in range(c.n_layer)]
        self.lengths = torch.zeros(batch_size, dtype=torch.long, device=p.device)  # positions filled, per row
        self.positions = torch.arange(c.context_length, device=p.device)
        self.context_length = c.context_length

    @property
    def length(self) -> int:
        """Positions filled in the longest row."""
        return int(self.lengths.max())

    def rows(self, start: int, stop: int, window: int | None = None) -> "StaticCache":
        """Rows start..stop-1 as a cache of their own that shares this one's memory; given ``window``,
        only their first ``window`` positions."""
        end = window or self.context_length
        view = StaticCache.__new__(StaticCache)
        view.keys = [k[start:stop, :, :end] for k in self.keys]
        view.values = [v[start:stop, :, :end] for v in self.values]
        view.lengths, view.positions = self.lengths[start:stop], self.positions[:end]
        view.context_length = self.context_length
        return view

    def copy_row(self, dst: int, src: int) -> None:
        """Move row ``src`` (its keys, values and length) into row ``dst``."""
        for k, v in zip(self.keys, self.values):
            k[dst], v[dst] = k[src], v[src]
        self.lengths[dst] = self.lengths[src]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this layer's new keys/values; return what the new positions attend to: a step's
        row, the whole context (``decode_step`` masks the rest); a prefill from empty, its own positions."""
        T = k.size(2)
        if T == 1:
            rows = torch.arange(k.size(0), device=k.device)
            self.keys[layer][rows, :, self.lengths] = k[:, :, 0]
            self.values[layer][rows, :, self.lengths] = v[:, :, 0]
            return self.keys[layer], self.values[layer]
        self.keys[layer][:, :, :T] = k
        self.values[layer][:, :, :T] = v
        return self.keys[layer][:, :, :T], self.values[layer][:, :, :T]


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
    # A graph per bucket and per model: dynamo's default of 8 graphs for one function would end
    # compiling at a batch cap of 128 and up (and for the second of two big engines in one process).
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    # cpp_wrapper: the graph's kernels are called from C++, not from a Python wrapper that checks
    # ~60 tensors' sizes at every step: 1.24x faster at batch 1, the same from batch 4 (docs/benchmarks.md).
    return torch.compile(decode_step, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})


_compile_failed = False
_warm: weakref.WeakSet = weakref.WeakSet()  # the models whose step is compiled in this process


def is_warm(model: GPT) -> bool:
    """Whether ``model``'s step has been compiled in this process (``FastDecoder.warm_up``)."""
    return model in _warm


def buckets(rows: int) -> list[int]:
    """The batch sizes a decoder of ``rows`` rows compiles: powers of two below it, and itself."""
    return [1 << i for i in range(rows.bit_length()) if 1 << i < rows] + [rows]


class FastDecoder:
    """Rows of text decoded with a ``StaticCache``: a row's prefill, then one token per row in use
    at a time (the interface of ``lyricgpt.decoding.PlainDecoder``; its ``cache`` copies rows too)."""

    def __init__(self, model: GPT, rows: int = 1):
        self.model = model
        self.cache = StaticCache(model, rows)
        self.buckets = buckets(rows)

    @property
    def lengths(self) -> torch.Tensor:
        """Positions filled, per row."""
        return self.cache.lengths

    def prefill(self, row: int, tokens: list[int]) -> torch.Tensor | None:
        """Empty ``row`` and read ``tokens`` into it from position 0; the logits after the last one
        (None for no tokens)."""
        if len(tokens) > self.cache.context_length:
            raise ValueError(f"{len(tokens)} positions exceed the context length {self.cache.context_length}")
        view = self.cache.rows(row, row + 1)
        view.lengths.zero_()
        if not tokens:
            return None
        idx = torch.tensor([tokens], device=view.lengths.device)
        if len(tokens) == 1:  # one token is a step from position 0 (``append`` tells them apart by T)
            return decode_step(self.model, view, idx[0])[0]
        logits = self.model.network(idx, torch.arange(len(tokens), device=idx.device), view)
        view.lengths += len(tokens)
        return logits[0, -1]

    def step(self, tokens: list[int]) -> torch.Tensor:
        """Rows 0..n-1 each read one more token; their next logits (n, vocab)."""
        n = len(tokens)
        size = next(b for b in self.buckets if b >= n)
        longest = int(self.cache.lengths[:n].max())
        if longest >= self.cache.context_length:
            raise ValueError(f"the cache is full (context length {self.cache.context_length}): prefill again")
        if size == 1:  # one row's cache is a sixth of the weights: its graph stays static
            cache = self.cache.rows(0, 1)
        else:
            # Many rows attend over the positions filled so far, not the whole context: their cache
            # is bigger than the weights, and reading all of it made a step at half the context as
            # slow as the plain one. The window's length is the graph's one dynamic size, so one
            # graph serves every length (at least 2: dynamo fixes sizes 0 and 1).
            cache = self.cache.rows(0, size, window=max(longest + 1, 2))
            for t in cache.keys + cache.values:
                torch._dynamo.mark_dynamic(t, 2)
            torch._dynamo.mark_dynamic(cache.positions, 0)
        ids = torch.tensor(tokens + [0] * (size - n), device=cache.lengths.device)
        logits = self._step(cache, ids)
        self.cache.lengths[n:size] = 0  # rows past the songs only filled the bucket: they stay empty
        return logits[:n]

    @torch.inference_mode()  # as the loops step: a graph traced with autograd on would not be used
    def warm_up(self) -> None:
        """Compile every bucket now, so that no song waits for it; the rows are left empty. Unless
        compilation failed, the model's decoders compile from now on (``is_warm``)."""
        for size in self.buckets:
            self.step([0] * size)
            self.cache.lengths.zero_()  # so that no row fills up, however many buckets
        if compile_enabled() and not _compile_failed:
            _warm.add(self.model)

    def _step(self, cache: StaticCache, tokens: torch.Tensor) -> torch.Tensor:
        global _compile_failed
        if _compile_failed or not compile_enabled():
            return decode_step(self.model, cache, tokens)
        try:
            return _compiled()(self.model, cache, tokens)
        except Exception as e:  # noqa: BLE001 - compilation is an optimisation: never fail to serve for it
            _compile_failed = True
            reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {reason[:200]}); decoding without it",
                          RuntimeWarning, stacklevel=3)
            return decode_step(self.model, cache, tokens)
