"""Streaming generation with a key/value cache.

Each step feeds one new character through the model, which reuses the keys and values it
stored for the characters before it, so a step costs O(context) instead of O(context^2).
When the cache reaches the context length (the end of the learned position table), it is
re-filled from the most recent characters and generation carries on. The cache and the step live
in a decoder (``lyricgpt.decoding``): the compiled step of ``lyricgpt.fast_step`` for a model
warmed up in this process, the model's own forward pass otherwise.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from .decoding import make_decoder
from .form import Form, FormState, steer


TOP_N = 5  # alternatives kept per step, for the page's "what the model weighed" view
# The settings the page starts with and a model card's samples are drawn at, chosen by reading
# the bundled model's samples (docs/training-recipe.md).
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 1.0  # off
# Before this many new characters a song's end is not drawn (SongEnd). At the page's defaults 7 of
# the bundled model's 30 songs ended within 100 characters (0 to 93: a line or two, not a song); the
# corpus's shortest 5% of songs are under 138. With 150, 28 of 30 end on their own, median 493
# characters (the corpus's: 470); the ends the rule keeps off are mostly weak (median 19%), and
# 200 leaves more songs unended (25 of 30) and longer (median 870). benchmarks/song_end.py.
MIN_SONG_CHARS = 150
# A song with a form that reaches its length finishes its line first, within this many more characters.
LINE_GRACE = 200
# A song that may end on its own and reaches its length ends at its next stanza break (SongEnd.by),
# within this many more characters (then at the end of a line).
VERSE_GRACE = 400


@dataclass(frozen=True)
class Step:
    token: int
    prob: float  # the probability the model gave this token, before temperature, top-k and top-p
    sampled_prob: float  # its probability in the distribution it was drawn from (1 when greedy)
    top: tuple[tuple[int, float], ...]  # the model's TOP_N likeliest tokens, with their probabilities
    window: int  # how many tokens the model read to choose it (its attention window)
    form_weight: float = 1.0  # the model's probability that the song's form left it to draw from
    relaxed: int = 0  # how far the form relaxed at this step (0: not at all; lyricgpt.form)


@dataclass(frozen=True)
class SamplingSettings:
    """How a song draws each character from the model's probabilities."""

    temperature: float = 1.0  # 0 is greedy decoding
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self):
        if self.temperature < 0 or not math.isfinite(self.temperature):
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class SongEnd:
    """Where a song ends: when the model writes ``marker`` (as between the songs it learned from).

    Before ``min_new_tokens`` new tokens the marker's last token is not drawn where it would end the
    song, so a song that would end after a line or two goes on instead. After ``by`` new tokens it
    is drawn wherever it would end the song (for lyrics: the first stanza break after the song's
    length), so that a song stops where a song may stop, not in the middle of a verse.
    """

    marker: tuple[int, ...]
    min_new_tokens: int = 0
    by: int | None = None

    def __post_init__(self):
        if not self.marker:
            raise ValueError("a song's end needs at least one token")
        if self.min_new_tokens < 0:
            raise ValueError(f"min_new_tokens must be >= 0, got {self.min_new_tokens}")

    def after(self, produced: int) -> SongEnd:
        """The same end for the rest of a song that has ``produced`` new tokens already."""
        return SongEnd(self.marker, max(0, self.min_new_tokens - produced),
                       None if self.by is None else max(0, self.by - produced))

    def reached(self, recent: Sequence[int]) -> bool:
        """Whether the tokens so far (prompt included) end with the marker."""
        return tuple(recent[-len(self.marker):]) == self.marker

    def rule(self, recent: Sequence[int], produced: int) -> tuple[int, bool] | None:
        """What the next draw must do after ``produced`` new tokens: None (anything), or the marker's
        last token and whether it must come (after ``by``) or must not (before ``min_new_tokens``),
        where it would end the song."""
        head = self.marker[:-1]
        if tuple(recent[len(recent) - len(head):]) != head:
            return None
        if produced < self.min_new_tokens:
            return self.marker[-1], False
        if self.by is not None and produced >= self.by:
            return self.marker[-1], True
        return None


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """Scale logits by temperature and mask (to -inf) whatever top-k and top-p exclude."""
    # Subtracting the maximum first keeps a tiny temperature from overflowing to inf - inf = nan;
    # and the maxima stay 0 (not 0 / 0) when the temperature underflows to 0 in the logits' dtype.
    shifted = logits - logits.max(-1, keepdim=True).values
    logits = torch.where(shifted == 0, shifted, shifted / temperature)
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k).values[..., -1, None]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the tokens ranked above it already reach top_p; the first always stays
        # (even for a top_p that rounds to 0 in the logits' dtype).
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= top_p
        drop_sorted[..., 0] = False
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, -math.inf)
    return logits


def make_rng(seed: int | None) -> random.Random:
    """A private random stream: seeded calls reproduce, and no call touches a global RNG."""
    return random.Random(seed)  # None: fresh entropy from the operating system


def draw(logits: torch.Tensor, settings: Sequence[SamplingSettings], uniforms: Sequence[float],
         ends: Sequence[tuple[int, bool] | None] | None = None,
         forms: Sequence[FormState | None] | None = None) -> list[tuple[int, float, float, int]]:
    """The sampling rule, shared by every loop: each row's next token from its logits (rows,
    vocabulary), by that row's settings and its own uniform number in [0, 1); with the token's
    probability in the distribution it was drawn from (after temperature, top-k and top-p), and
    what the row's form (``forms``) left of the model's probability and how far it relaxed.
    A row's end rule (``SongEnd.rule``), if any, bans or forces its token; a character the row's form
    does not allow (``lyricgpt.form``) is never drawn: the model chooses among the rest by its own odds.

    The token is where the uniform number falls in the cumulative distribution. One number per
    row, from the row's own stream, is what keeps a song's text independent of the other rows.
    """
    # On the CPU, where the tokens are going anyway; the running sum is in float64, where
    # u * total stays below the total for every u < 1, so no token of weight 0 can be drawn.
    logits = logits.float().cpu()
    steered = [(0, 1.0, 0)] * len(settings)  # each row's (mask, weight, level); 0: no form
    if forms and any(forms):
        probs = logits.softmax(-1)
        steered = [steer(probs[row], state) if state else (0, 1.0, 0) for row, state in enumerate(forms)]
        allowed = torch.stack([mask if state else torch.ones(logits.size(-1), dtype=torch.bool)
                               for (mask, _, _), state in zip(steered, forms)])
        # Out of place (as below): the caller's logits still say what the model itself weighed.
        logits = logits.masked_fill(~allowed, -math.inf)
    for row, end in enumerate(ends or ()):
        if end is not None:
            token, forced = end
            keep = torch.arange(logits.size(-1)) == token
            if forced or torch.isfinite(logits[row][~keep]).any():  # a ban never leaves nothing to draw
                # A due end is drawn even where the row's form would not have it: the song is over.
                row_logits = torch.where(keep, 0.0, -math.inf) if forced else logits[row].masked_fill(keep, -math.inf)
                logits = logits.index_put((torch.tensor(row),), row_logits)
    rows_of: dict[SamplingSettings, list[int]] = {}
    for row, setting in enumerate(settings):
        rows_of.setdefault(setting, []).append(row)
    if len(rows_of) == 1:  # the usual case: every row on the same settings, one filter for all
        (setting,) = rows_of
        filtered = filter_logits(logits, setting.temperature, setting.top_k, setting.top_p)
    else:
        filtered = torch.empty_like(logits)
        for setting, rows in rows_of.items():
            index = torch.tensor(rows)
            filtered[index] = filter_logits(logits[index], setting.temperature, setting.top_k, setting.top_p)
    weights = filtered.softmax(-1)
    cumulative = weights.double().cumsum(-1)
    threshold = torch.tensor(uniforms, dtype=torch.float64)[:, None] * cumulative[:, -1:]
    tokens = (cumulative <= threshold).sum(-1)
    greedy = torch.tensor([s.temperature == 0 for s in settings])
    tokens = torch.where(greedy, logits.argmax(-1), tokens)
    sampled = torch.where(greedy, 1.0, weights.gather(-1, tokens[:, None])[:, 0])
    return [(token, prob, weight, level)
            for token, prob, (_, weight, level) in zip(tokens.tolist(), sampled.tolist(), steered)]


def describe(logits: torch.Tensor, drawn: list[tuple[int, float, float, int]], windows: list[int]) -> list[Step]:
    """Each row's step, with what the model weighed there: its probability for the token drawn and
    its TOP_N likeliest tokens. ``logits`` is (rows, vocabulary); one softmax serves every row."""
    probs = logits.float().softmax(-1)
    top = torch.topk(probs, min(TOP_N, probs.size(-1)))
    tokens = torch.tensor([token for token, *_ in drawn], device=probs.device)
    picked = probs[torch.arange(len(drawn), device=probs.device), tokens].tolist()
    return [Step(token, prob, sampled, tuple(zip(ids, values)), window, weight, level)
            for (token, sampled, weight, level), prob, ids, values, window
            in zip(drawn, picked, top.indices.tolist(), top.values.tolist(), windows)]


def choose(logits: torch.Tensor, settings: SamplingSettings, rng: random.Random, window: int,
           end: tuple[int, bool] | None = None, form: FormState | None = None) -> Step:
    """Draw the next token from one position's logits, and say what the model weighed."""
    return describe(logits[None], draw(logits[None], [settings], [rng.random()], [end], [form]), [window])[0]


def length_reached(produced: int, max_new_tokens: int, form: FormState | None) -> bool:
    """Whether a song has reached its length: a song with a form finishes its line first (within
    LINE_GRACE more characters), so that it never stops in the middle of a word."""
    return produced >= max_new_tokens and (form is None or form.line_ended or produced >= max_new_tokens + LINE_GRACE)


def refill_length(context: int, refill_keep: int | None = None) -> int:
    """How many recent tokens re-fill a full cache (default: half the context).

    A re-fill recomputes every token it keeps, so keeping half costs one token of prefill per
    character written, where three quarters cost three; and a character still sees at least half
    the context, as in evaluation (measured: docs/benchmarks.md).
    """
    keep = refill_keep if refill_keep is not None else max(1, context // 2)
    if not 1 <= keep <= context:
        raise ValueError(f"refill_keep must be between 1 and the context length {context}")
    return keep


@torch.inference_mode()
def generate(model: torch.nn.Module, prompt: list[int], max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             refill_keep: int | None = None, end: SongEnd | None = None, form: Form | None = None) -> Iterator[Step]:
    """Yield ``max_new_tokens`` sampled tokens one at a time, as soon as each is sampled; fewer if
    ``end`` is given and the model ends the song first (its last token is the end's). Given a
    ``form`` (``lyricgpt.form``), every token keeps it, and the song finishes its line after its length.

    ``prompt`` must hold at least one token; only its last context window is read.
    ``temperature=0`` is greedy decoding. ``refill_keep`` is how many recent tokens re-fill the
    cache when it is full (default: half the context).
    """
    if not prompt:
        raise ValueError("the prompt needs at least one token")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    settings = SamplingSettings(temperature, top_k, top_p)
    context = model.config.context_length
    keep = refill_length(context, refill_keep)
    rng = make_rng(seed)
    recent = list(prompt[-context:])  # the tokens a re-fill would read
    decoder = make_decoder(model)  # one row: compiled if the model is warmed up (lyricgpt.decoding)

    state = form.read_tokens(prompt) if form else None  # the whole prompt: the form reads the stanza
    if max_new_tokens == 0:
        return
    logits = decoder.prefill(0, recent)
    rule = end.rule(recent, 0) if end else None
    produced = 0
    while True:
        length = int(decoder.lengths[0])
        step = choose(logits, settings, rng, window=length, end=rule, form=state)
        yield step
        produced += 1
        recent.append(step.token)
        if state:
            state.push_token(step.token)
        if length_reached(produced, max_new_tokens, state) or (end and end.reached(recent)):
            return

        rule = end.rule(recent, produced) if end else None
        if length == context:  # the position table ends here: re-fill from the recent window
            recent = recent[-keep:]
            logits = decoder.prefill(0, recent)
        else:
            logits = decoder.step([step.token])[0]
        del recent[:-context]
