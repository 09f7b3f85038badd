"""GPT-2, as published, at character scale; and the bigram baseline it is measured against.

Both models share one interface, so that training, sampling and evaluation accept either:
``forward(idx, targets=None, cache=None, attention_weights=None) -> (logits, loss)``,
``config.context_length`` and ``new_cache(batch_size)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .weights import HubModule

IGNORE_INDEX = -1  # targets with this value are not scored (see data.scoring_windows)


@dataclass
class GPTConfig:
    vocab_size: int = 66
    context_length: int = 256  # how many characters the model sees at once
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0
    bias: bool = True
    # The MLP's nonlinearity: GPT-2's tanh approximation of GELU, or "gelu", the exact (erf) one,
    # which is the same curve to within 0.001 and runs 2.5x faster in bf16 on a CPU.
    activation: str = "gelu_tanh"
    architecture: str = field(default="gpt")


@dataclass
class BigramConfig:
    vocab_size: int = 66
    context_length: int = 256  # only sets the training window; the model looks at one character
    architecture: str = field(default="bigram")


class KVCache:
    """Keys and values of every layer for the characters seen so far, preallocated to the context.

    One row per sequence. Rows may hold different numbers of characters (songs in a batch that
    started at different times), so each row keeps its own length.
    """

    def __init__(self, n_layer: int, batch_size: int, n_head: int, head_dim: int,
                 context_length: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        shape = (n_layer, batch_size, n_head, context_length, head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.lengths = torch.zeros(batch_size, dtype=torch.long, device=device)  # positions filled, per row
        self.context_length = context_length

    @property
    def length(self) -> int:
        """Positions filled in the longest row (in a one-row cache: its length)."""
        return int(self.lengths.max()) if len(self.lengths) else 0

    def rows(self, start: int, stop: int) -> "KVCache":
        """Rows start..stop-1 as a cache of their own that shares this one's memory."""
        view = KVCache.__new__(KVCache)
        view.keys, view.values = self.keys[:, start:stop], self.values[:, start:stop]
        view.lengths, view.context_length = self.lengths[start:stop], self.context_length
        return view

    def copy_row(self, dst: int, src: int) -> None:
        """Move row ``src`` (its keys, values and length) into row ``dst``."""
        self.keys[:, dst], self.values[:, dst] = self.keys[:, src], self.values[:, src]
        self.lengths[dst] = self.lengths[src]

    def padding_mask(self, new: int) -> torch.Tensor | None:
        """For a step of ``new`` characters: which stored positions each row must not attend to
        (those past its own length), as a (batch, 1, 1, positions) mask; None when rows are level."""
        if bool((self.lengths == self.lengths[0]).all()):
            return None
        positions = torch.arange(self.length + new, device=self.lengths.device)
        return (positions >= (self.lengths + new)[:, None])[:, None, None, :]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this layer's new keys/values after each row's own; return every row's keys/values
        up to the longest row (shorter rows are padded, see ``padding_mask``)."""
        T = k.size(2)
        if T == 1:  # one new character per row, each at its row's own position
            rows = torch.arange(len(self.lengths), device=k.device)
            self.keys[layer, rows, :, self.lengths] = k[:, :, 0]
            self.values[layer, rows, :, self.lengths] = v[:, :, 0]
        else:  # a prefill: rows level, as they are after a reset
            start = int(self.lengths[0])
            self.keys[layer, :, :, start:start + T] = k
            self.values[layer, :, :, start:start + T] = v
        end = self.length + T
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, n: int) -> None:
        """Mark n more positions as filled in every row, once every layer has stored them."""
        self.lengths += n

    def reset(self) -> None:
        self.lengths.zero_()


class Dropout(nn.Module):
    """nn.Dropout with a cheaper random mask on a CPU.

    torch's CPU dropout draws one random number per element: 14% of a training step here. This
    draws 64 random bits at a time and reads them as four 16-bit numbers, measured 3x faster.
    The drop probability is rounded to a multiple of 1/65536.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)  # already one fused kernel on accelerators
        dropped = round(self.p * 65536)
        words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-2**63, None)  # all 64 bits
        lanes = words.view(torch.int16)[:x.numel()].view(x.shape)  # uniform in [-32768, 32767]
        keep = (lanes >= dropped - 32768).to(x.dtype)
        return x * keep * (65536 / (65536 - dropped))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
              padding: torch.Tensor | None = None, weights: list | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) v; with ``causal``, position t attends to positions <= t only.

    ``padding`` masks (True) keys a row must not see; ``weights``, if a list, receives the
    attention probabilities (batch, heads, queries, keys), for looking inside the model.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if causal:
        T = q.size(-2)
        future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    if padding is not None:
        scores = scores.masked_fill(padding, float("-inf"))
    # Under bf16 autocast the softmax stays in bf16; torch computes it in float32 inside and
    # rounds once, exactly as the matmul that follows would round a float32 result anyway.
    probs = scores.softmax(-1)
    if weights is not None:
        weights.append(probs)
    return probs @ v


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_embd must be a multiple of n_head"
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                padding: torch.Tensor | None = None, weights: list | None = None) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_dim)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            # A prefill starts from an empty cache (plain causal mask). A single new character
            # attends to everything before it, so it needs no causal mask, only the padding mask
            # of rows that are shorter than others.
            assert T == 1 or cache.length == 0, "a cache only takes a prefill or one character at a time"
            k, v = cache.append(layer, k, v)
        # No dropout on the attention probabilities (residual dropout remains): it measured 2x slower.
        if x.device.type == "cpu" or padding is not None or weights is not None:
            # the plain form trains 2x faster than the fused kernel on a CPU
            y = attention(q, k, v, causal=T > 1, padding=padding, weights=weights)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


ACTIVATIONS = {"gelu_tanh": lambda: nn.GELU(approximate="tanh"), "gelu": nn.GELU}


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = ACTIVATIONS[config.activation]()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                padding: torch.Tensor | None = None, weights: list | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer, padding, weights)
        return x + self.mlp(self.ln_2(x))


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats over the scored targets (float32 even under autocast)."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1),
                           ignore_index=IGNORE_INDEX)


class GPT(HubModule):
    """GPT-2: token + position embeddings, n_layer blocks, a final LayerNorm, a tied output head."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.context_length, config.n_embd)
        self.drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as in GPT-2

        self.apply(self._init_weights)
        # GPT-2 scales the projections that write into the residual stream by 1/sqrt(2 * n_layer),
        # so that the stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int = 1) -> KVCache:
        c = self.config
        p = self.wte.weight
        return KVCache(c.n_layer, batch_size, c.n_head, c.n_embd // c.n_head, c.context_length,
                       device=p.device, dtype=p.dtype)

    def network(self, idx: torch.Tensor, pos: torch.Tensor, cache=None, padding: torch.Tensor | None = None,
                attention_weights: list | None = None) -> torch.Tensor:
        """The network itself: logits for the tokens ``idx`` at positions ``pos``. ``cache`` is a
        ``KVCache`` or anything with its ``append`` (the static cache of lyricgpt.fast_step)."""
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, padding, attention_weights)
        return self.lm_head(self.ln_f(x))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None,
                attention_weights: list | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits for every position of ``idx`` (and the loss, given targets).

        With a ``cache``, ``idx`` continues each row from where the cache left it. A list given as
        ``attention_weights`` receives every layer's attention probabilities.
        """
        B, T = idx.size()
        start = cache.lengths[:, None] if cache is not None else 0  # each row's first new position
        if cache is not None and cache.length + T > self.config.context_length:
            raise ValueError(f"{cache.length + T} positions exceed the context length {self.config.context_length}")
        if cache is None and T > self.config.context_length:
            raise ValueError(f"{T} positions exceed the context length {self.config.context_length}")
        pos = start + torch.arange(T, device=idx.device)
        padding = cache.padding_mask(T) if cache is not None else None
        logits = self.network(idx, pos, cache, padding, attention_weights)
        if cache is not None:
            cache.advance(T)
        loss = cross_entropy(logits, targets) if targets is not None else None
        return logits, loss


class Bigram(HubModule):
    """The tutorial's baseline: each character's logits for the next one, read from a table."""

    def __init__(self, config: BigramConfig):
        super().__init__()
        self.config = config
        self.table = nn.Embedding(config.vocab_size, config.vocab_size)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int = 1) -> KVCache:
        # Nothing to remember but the position, so the sampler can treat both models alike.
        return KVCache(0, batch_size, 0, 0, self.config.context_length, device=self.table.weight.device)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None,
                attention_weights: list | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        # No attention: a bigram looks at one character, so ``attention_weights`` stays empty.
        if cache is not None:
            cache.advance(idx.size(1))
        logits = self.table(idx)
        loss = cross_entropy(logits, targets) if targets is not None else None
        return logits, loss


CONFIGS = {"gpt": GPTConfig, "bigram": BigramConfig}
MODELS = {"gpt": GPT, "bigram": Bigram}


def build_model(config: GPTConfig | BigramConfig) -> GPT | Bigram:
    return MODELS[config.architecture](config)
