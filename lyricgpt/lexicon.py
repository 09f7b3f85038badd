"""The words a voice knows, their syllables and their rhymes, for the song forms of ``lyricgpt.form``.

A voice knows the words its training songs use at least twice (typos and one-off names are
left out). Syllables and rhymes come from the CMU Pronouncing Dictionary, shipped with the
package (``lyricgpt/data/cmudict.dict``, under CMU's BSD-style licence beside it): two words rhyme
when they share a *rhyming part*, the phones from the stressed vowel nearest the end, as the
``pronouncing`` package defines it (``tests/test_lexicon.py`` pins ours against it). A word the
dictionary lacks ("o'er", "mornin'") counts its syllables by vowel groups and rhymes with nothing.

Why the dictionary's file and not the ``pronouncing`` package at run time: ``pronouncing`` (MIT)
reads the file through the ``cmudict`` package, whose code is GPL-3.0; this project is MIT, and the
two rules it needs from ``pronouncing`` are a few lines each.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

CMUDICT = Path(__file__).resolve().parent / "data" / "cmudict.dict"
WORD = re.compile(r"[A-Za-z']+")  # what the form reads as one word, as it writes: letters and apostrophes
MIN_KNOWN = 2  # uses in the voice's songs that make a word its own
MIN_RHYME_USES = 5  # uses that make a word a rhyme the voice may close a line on (rarer ones read as odd)
MIN_OPENER_RHYMES = 4  # rhymes a word needs to open a rhyme that a later line must answer
MAX_SYLLABLES = 15  # a word's syllables as a bit of a mask (Node.mask); longer words count as this


def word_key(word: str) -> str:
    """How a word is looked up: lower case, without the quotes around it."""
    return word.lower().strip("'")


# Words that lean on the word after them: a line that ends on one for a rhyme ("As they blew into
# their") reads as cut off, though the dictionary finds the rhyme.
LEANING = frozenset("""a an the and or but nor if as than that which who whom whose of to in on at by for from
with into onto upon unto my your his her its our their thy thine mine's o oh i'm we you they he she it is""".split())


def rhyme_word(word: str, uses: int) -> bool:
    """Whether a line may end on ``word`` for a rhyme: a plain word of two letters or more ("a" and
    "o" rhyme with "day" and "go" by the dictionary, but not to the ear) that the voice often uses,
    and not one that leans on the next (LEANING)."""
    return uses >= MIN_RHYME_USES and len(word) >= 2 and word.isalpha() and word not in LEANING


def vowel_groups(word: str) -> int:
    """Syllables by vowel groups, for a word the dictionary lacks (a silent final e left out)."""
    word = word_key(word)
    groups = len(re.findall(r"[aeiouy]+", word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and groups > 1:
        groups -= 1
    return max(1, groups)


def rhyming_part(phones: str) -> str:
    """The phones from the stressed vowel nearest the end (``pronouncing.rhyming_part``)."""
    parts = phones.split()
    for i in range(len(parts) - 1, 0, -1):
        if parts[i][-1] in "12":
            return " ".join(parts[i:])
    return phones


def syllable_count(phones: str) -> int:
    """One syllable per vowel, and every CMU vowel carries a stress digit (``pronouncing.syllable_count``)."""
    return sum(phone[-1].isdigit() for phone in phones.split())


@functools.lru_cache(maxsize=1)
def read_cmudict(path: Path = CMUDICT) -> dict[str, tuple[str, ...]]:
    """Every word's pronunciations (phones), read once per process."""
    pronunciations: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(";;;"):
                continue
            word, _, phones = line.partition(" ")
            phones = phones.split("#")[0].strip()  # a few entries carry a comment
            pronunciations.setdefault(word.split("(")[0], []).append(phones)
    return {word: tuple(phones) for word, phones in pronunciations.items()}


class Node:
    """A node of a trie of words: the letters that may follow, and what ends here or below."""

    __slots__ = ("kids", "word", "mask")

    def __init__(self):
        self.kids: dict[str, Node] = {}
        self.word: str | None = None  # the word that ends here, if one does
        self.mask = 0  # bit s is set when a word here or below has s syllables

    def walk(self, letters: str) -> Node | None:
        node: Node | None = self
        for letter in letters:
            node = node.kids.get(letter)
            if node is None:
                return None
        return node


@dataclass
class Lexicon:
    """The words a voice knows (``counts``: uses in its songs), with their syllables and rhymes."""

    counts: dict[str, int]
    sources: tuple[str, ...] = ()  # the song files it was counted from, for pickling by reference
    cmu: dict[str, tuple[str, ...]] = field(default_factory=read_cmudict, repr=False)

    def __post_init__(self):
        self._syllables: dict[str, int] = {}
        self._keys: dict[str, frozenset[str]] = {}
        self._rhyme_tries: dict[tuple, Node] = {}
        self.trie = self.build_trie(self.counts)
        # The words a line may end on to rhyme, by rhyming part.
        self.rhymes_by_key: dict[str, list[str]] = {}
        for word, uses in self.counts.items():
            if rhyme_word(word, uses):
                for key in self.rhyme_keys(word):
                    self.rhymes_by_key.setdefault(key, []).append(word)

    @classmethod
    def from_songs(cls, paths: Iterable[str | Path]) -> Lexicon:
        """The words used at least MIN_KNOWN times in these song files."""
        paths = tuple(str(p) for p in paths)
        counts: Counter[str] = Counter()
        for path in paths:
            counts.update(w.lower() for w in WORD.findall(Path(path).read_text(encoding="utf-8", errors="replace")))
        return cls({w: n for w, n in counts.items() if n >= MIN_KNOWN and w.strip("'")}, paths)

    @classmethod
    def from_dictionary(cls) -> Lexicon:
        """Every plain word of the pronouncing dictionary, for a voice whose songs are not on this machine."""
        return cls({w: MIN_RHYME_USES for w in read_cmudict() if w.isalpha()})

    def __reduce__(self):
        # To the engine's process as the files it was counted from: it counts them again (about a
        # second) rather than receive a few MB of tries through its pipe.
        return (Lexicon.from_songs, (self.sources,)) if self.sources else (Lexicon, (self.counts,))

    def build_trie(self, words: Iterable[str]) -> Node:
        root = Node()
        for word in words:
            bit = 1 << min(self.syllables(word), MAX_SYLLABLES)
            node = root
            node.mask |= bit
            for letter in word:
                node = node.kids.setdefault(letter, Node())
                node.mask |= bit
            node.word = word
        return root

    def pronunciations(self, word: str) -> tuple[str, ...]:
        return self.cmu.get(word.lower()) or self.cmu.get(word_key(word)) or ()

    def syllables(self, word: str) -> int:
        """The word's syllables: by its first pronunciation, or by vowel groups."""
        if word not in self._syllables:
            phones = self.pronunciations(word)
            self._syllables[word] = syllable_count(phones[0]) if phones else vowel_groups(word)
        return self._syllables[word]

    def rhyme_keys(self, word: str) -> frozenset[str]:
        """The word's rhyming parts, one per pronunciation (none for a word the dictionary lacks)."""
        if word not in self._keys:
            self._keys[word] = frozenset(rhyming_part(p) for p in self.pronunciations(word))
        return self._keys[word]

    def rhymes(self, a: str, b: str) -> bool:
        """Whether two different words rhyme."""
        return word_key(a) != word_key(b) and bool(self.rhyme_keys(a) & self.rhyme_keys(b))

    def rhymes_for(self, keys: frozenset[str], unlike: Iterable[str] = ()) -> list[str]:
        """The rhyme words that share one of ``keys``, but none of the words ``unlike``."""
        left_out = {word_key(w) for w in unlike}
        found = {w for key in keys for w in self.rhymes_by_key.get(key, ())}
        return sorted(w for w in found if w not in left_out)

    @functools.cached_property
    def openers(self) -> Node:
        """A trie of the words a line may end on when a later line must rhyme with it: words with at
        least MIN_OPENER_RHYMES rhymes of their own, so that the later line has a choice."""
        return self.build_trie(w for w, uses in self.counts.items() if rhyme_word(w, uses)
                               and len(self.rhymes_for(self.rhyme_keys(w), [w])) >= MIN_OPENER_RHYMES)

    def rhyme_trie(self, keys: frozenset[str], unlike: tuple[str, ...]) -> Node:
        """A trie of ``rhymes_for(keys, unlike)``, kept for the next line that asks for the same."""
        if (keys, unlike) not in self._rhyme_tries:
            if len(self._rhyme_tries) >= 1024:  # a long-running server meets many rhymes
                self._rhyme_tries.clear()
            self._rhyme_tries[keys, unlike] = self.build_trie(self.rhymes_for(keys, unlike))
        return self._rhyme_tries[keys, unlike]


