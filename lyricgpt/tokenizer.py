"""A character-level tokenizer, and the one text normalisation that training and sampling share."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

MAX_FILE_BYTES = 1 << 20  # a vocabulary of a few thousand characters fits in a few kB
MAX_VOCAB = 10_000
FORMAT = "lyricgpt-char-tokenizer"

# Folds that Unicode's compatibility decomposition (NFKD) does not make.
FOLDS = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\t": " ",
    "\u00df": "ss", "\u00e6": "ae", "\u00c6": "AE", "\u0153": "oe", "\u0152": "OE",
    "\u00f8": "o", "\u00d8": "O", "\u0142": "l", "\u0141": "L", "\u0111": "d", "\u0110": "D",
    "\u2028": "\n", "\u2029": "\n",
})


def normalize(text: str) -> str:
    """Fold typography and accents to plain letters and make line endings '\\n'.

    NFKD splits 'é' into 'e' + a combining accent, which is then dropped; ligatures and
    full-width forms become their plain letters. Characters with no fold are kept as they are
    (the vocabulary decides whether they can be encoded). Applying it twice changes nothing.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.translate(FOLDS)


class TokenizerError(ValueError):
    """A tokenizer file that cannot be used."""


@dataclass(frozen=True)
class Encoding:
    """What the model reads from a text: ids, the text they spell, and what had to be dropped."""

    ids: list[int]
    text: str
    dropped: dict[str, int]  # characters outside the vocabulary (after normalisation), with counts

    @property
    def dropped_count(self) -> int:
        return sum(self.dropped.values())


class CharTokenizer:
    """Maps each character of a fixed, sorted alphabet to an id.

    Policy for characters outside the alphabet: after normalisation they are dropped, and
    ``encode_with_report`` says which ones and how often, so a caller can tell its user.
    """

    def __init__(self, chars: list[str]):
        self.chars = list(chars)
        self._ids = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        # Sorted, not set order: set order changes between runs, and ids must not.
        return cls(sorted(set(normalize(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return char in self._ids

    def encode_with_report(self, text: str) -> Encoding:
        ids, kept, dropped = [], [], Counter()
        for c in normalize(text):
            i = self._ids.get(c)
            if i is None:
                dropped[c] += 1
            else:
                ids.append(i)
                kept.append(c)
        return Encoding(ids, "".join(kept), dict(dropped))

    def encode(self, text: str) -> list[int]:
        return self.encode_with_report(text).ids

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def save(self, path: str | Path) -> None:
        data = {"format": FORMAT, "version": 1, "chars": self.chars}
        Path(path).write_text(json.dumps(data, ensure_ascii=True, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "CharTokenizer":
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError as e:
            raise TokenizerError(f"cannot read tokenizer file {path.name}: {e.strerror}") from None
        if size > MAX_FILE_BYTES:
            raise TokenizerError(f"tokenizer file {path.name} is {size} bytes; the limit is {MAX_FILE_BYTES}")
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TokenizerError(f"tokenizer file {path.name} is not valid JSON: {e}") from None
        return cls(_validated_chars(data, path.name))


def _validated_chars(data: object, name: str) -> list[str]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TokenizerError(f"{name} is not a LyricGPT tokenizer file (expected \"format\": \"{FORMAT}\")")
    if data.get("version") != 1:
        raise TokenizerError(f"{name} has tokenizer version {data.get('version')!r}; this code reads version 1")
    chars = data.get("chars")
    if not isinstance(chars, list) or not 0 < len(chars) <= MAX_VOCAB:
        raise TokenizerError(f"{name}: \"chars\" must be a list of 1 to {MAX_VOCAB} characters")
    if not all(isinstance(c, str) and len(c) == 1 for c in chars):
        raise TokenizerError(f"{name}: every entry of \"chars\" must be a single character")
    if chars != sorted(set(chars)):
        raise TokenizerError(f"{name}: \"chars\" must be sorted and without repeats")
    return chars
