"""The voices the page sings in: models loaded with the serving fallback, each with a name that says
what it learned from, its own example first lines, and a bigram baseline from the same songs.

A model folder may carry:
- in its card's front matter, ``voice: <what it learned from>`` (else the card's training data names it);
- ``examples.txt``: example first lines, one a line (else the page's own).

The bigram is counted from the training songs of the data named in the voice's card and scored on
that data's validation songs, split as train.py splits them, so that its bits/char and the voice's
card figure are measured on the same songs. Without that data there is no comparison, and the page
says why: a bigram scored on other songs would not be like with like.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .data import CorpusError, read_corpus, split_as_trained
from .evaluate import score_text
from .lm import CARD_NAME, EXAMPLES_NAME, LyricModel, card_training_data, card_training_settings
from .model import Bigram, BigramConfig
from .serving import EXAMPLE_LINES, LoadedModel, markdown_text, load_for_serving, public_message
from .song_request import InputError, show_value
from .tokenizer import CharTokenizer

log = logging.getLogger(__name__)

MAX_EXAMPLES = 8
MAX_EXAMPLE_CHARS = 200
MAX_CARD_CHARS = 64 * 1024  # train.py's cards are a few kB; a card is not read past this


@dataclass
class Baseline:
    """A voice's bigram baseline, or why it has none."""

    lm: LyricModel | None
    note: str  # the label above the bigram's song, or the reason there is none


@dataclass
class Voice:
    """One model the page can sing with."""

    name: str  # what it learned from: the chooser shows it, /generate's ``voice`` names it
    served: LoadedModel
    examples: list[str]
    data: Path | None  # the songs it learned from, when they are on this machine
    fine_tuned: bool = False  # trained with --init-from, whose validation songs are split another way
    _baseline: Baseline | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def lm(self) -> LyricModel:
        return self.served.lm

    @property
    def label(self) -> str:
        """The chooser's text: the name, and the bits/char on the voice's own validation songs."""
        bpc = self.lm.val_bits_per_char
        return f"{self.name} · {bpc:.3f} bits/char" if bpc else self.name

    @property
    def heading(self) -> str:
        """The line above the voice's song (markdown)."""
        bpc = self.lm.val_bits_per_char
        figure = f": {bpc:.3f} bits per character on its validation songs" if bpc else ""
        return f"**GPT, {markdown_text(self.name)}**{figure}"

    def baseline(self) -> Baseline:
        """The bigram from the same songs, counted at first use (seconds for the bundled corpus)."""
        with self._lock:
            if self._baseline is None:
                self._baseline = self._count_baseline()
            return self._baseline

    def _count_baseline(self) -> Baseline:
        if self.data is None:
            return Baseline(None, "No bigram baseline for this voice: the songs it learned from are not on this "
                                  "server, and a bigram scored on other songs would not compare like with like.")
        try:
            train, val = split_as_trained(read_corpus(self.data), self.lm.context_length + 1, self.fine_tuned)
        except (CorpusError, OSError) as e:
            log.warning("no bigram for the voice %r: %s", self.name, e)
            return Baseline(None, f"No bigram baseline for this voice: {public_message(str(e))}")
        bigram = count_bigram(self.lm.tokenizer, train, self.lm.context_length)
        bigram.lexicon = self.lm.lexicon  # the same songs, so the same words for its forms
        bpc = score_text(bigram, val)["bits_per_char"]
        return Baseline(bigram, f"**Bigram baseline**, counted from the same training songs: {bpc:.3f} bits per "
                                f"character on the same validation songs")


def find_voice(voices: list[Voice], wanted: object) -> Voice:
    """The voice named ``wanted`` (its name or its whole label, in any case); blank means the first."""
    if wanted is None or (isinstance(wanted, str) and not wanted.strip()):
        return voices[0]
    if isinstance(wanted, str):
        for voice in voices:
            if wanted.strip().casefold() in (voice.name.casefold(), voice.label.casefold()):
                return voice
    names = ", ".join(repr(v.name) for v in voices)
    raise InputError(f"there is no voice {show_value(wanted)}; choose one of: {names}")


def count_bigram(tokenizer: CharTokenizer, text: str, context_length: int) -> LyricModel:
    """The tutorial's bigram model in closed form: each row of its table is the log of the add-one
    smoothed counts of the characters that follow that character in ``text`` (the table that
    training it by gradient descent approaches), with the voice's own tokenizer."""
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    size = tokenizer.vocab_size
    counts = torch.bincount(ids[:-1] * size + ids[1:], minlength=size * size).view(size, size).double() + 1
    model = Bigram(BigramConfig(vocab_size=size, context_length=context_length))
    with torch.no_grad():
        model.table.weight.copy_((counts / counts.sum(1, keepdim=True)).log())
    return LyricModel(model, tokenizer, source="bigram")


def load_voices(sources: list[str | None], revision: str | None, bundled: list[Path], timeout: float,
                root: Path) -> tuple[list[Voice], list[str]]:
    """The voices to serve, and a note for each model that could not be served as itself.

    With no ``sources``, the ``bundled`` folders that exist (the first must). Each source that fails
    falls back to ``bundled[0]`` with a message, as a single model does; a fallback that repeats a
    voice already there is left out, its message kept. Relative data paths in a card are looked up
    from the working folder, then from ``root`` (where train.py is usually run).
    """
    if not sources:  # None: load_for_serving's name for the bundled model
        sources = [None] + [str(b) for b in bundled[1:] if b.exists()]
    voices: list[Voice] = []
    notes: list[str] = []
    for source in sources:
        served = load_for_serving(source, revision, bundled[0], timeout)
        if served.fallback_reason and any(v.lm.folder == served.lm.folder for v in voices):
            notes.append(f"Left out one model because {served.fallback_reason}")
            continue
        card, settings = _card(served.lm.folder), card_training_settings(served.lm.folder)
        data = card_training_data(settings, root)
        name = _unique(_front_matter(card, "voice") or (f"songs of {data.name}" if data else served.source),
                       [v.name for v in voices])
        voices.append(Voice(name, served, _examples(served.lm.folder), data, fine_tuned=bool(settings.get("init_from"))))
    return voices, notes


def model_line(voices: list[Voice], notes: list[str], chosen: Voice) -> str:
    """The page's line about the models (markdown): the chosen voice's, then every other model that
    could not be served as itself, so that no failure goes unsaid whichever voice is chosen."""
    others = [f"Another voice fell back to the bundled model because {v.served.fallback_reason}"
              for v in voices if v is not chosen and v.served.fallback_reason]
    return " ".join([chosen.served.describe()] + [markdown_text(n) + "." for n in others + notes])


def _unique(name: str, taken: list[str]) -> str:
    n, candidate = 1, name
    while candidate.casefold() in (t.casefold() for t in taken):
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def _card(folder: Path | None) -> str:
    card = folder / CARD_NAME if folder else None
    if card is None or not card.is_file():
        return ""
    with open(card, encoding="utf-8", errors="replace") as f:
        return f.read(MAX_CARD_CHARS)


def _front_matter(card: str, key: str) -> str | None:
    match = re.match(r"---\n(.*?)\n---\n", card, re.S)
    value = match and re.search(rf"^{key}:[ \t]*(.+)$", match.group(1), re.M)
    return value.group(1).strip().strip("\"'")[:MAX_EXAMPLE_CHARS] if value else None


def _examples(folder: Path | None) -> list[str]:
    """The folder's own example first lines, or the page's."""
    path = folder / EXAMPLES_NAME if folder else None
    if path is None or not path.is_file():
        return list(EXAMPLE_LINES)
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read(MAX_EXAMPLES * (MAX_EXAMPLE_CHARS + 1) * 4)  # enough for the lines we show, even with blanks
    lines = [line.strip()[:MAX_EXAMPLE_CHARS] for line in text.splitlines()]
    return [line for line in lines if line][:MAX_EXAMPLES] or list(EXAMPLE_LINES)
