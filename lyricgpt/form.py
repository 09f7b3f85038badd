"""A song's form: a rhyme scheme, syllables per line and real words, kept character by character.

The model still writes every character. Before each one, the form says which characters may come
next, and the sampling rule (``sampler.draw``) draws among them by the model's own probabilities.
A line is a run of words; each word the model starts may be a word of the line's middle or its last
word, and a letter is allowed while it can still become either one:
- a middle word: a word the voice knows (with ``real_words``) that leaves room for one more;
- the last word: one that brings the line to its syllables and, where the scheme asks, rhymes with
  its partner (the first earlier line of the stanza with the same letter), or, where a later line
  must answer it, has rhymes enough in the voice's words (``lexicon.openers``).
A line break is allowed only after a last word; after the scheme's last line, a blank line.

The form's state is a function of the song's text alone (``Form.read``): it survives the cache's
re-fills, crosses to the engine's process as the song's text, and a song may continue from any text.

Never a dead end: where the form leaves the model less than ``MIN_WEIGHT`` of its probability, it
relaxes, in this order, and the song goes on: the syllables by one and then two more either way
(levels 1, 2), then the rhyme and the syllables (3), then the words too: only the stanza's shape
is kept (4). ``Step.relaxed`` says how far a character's step went.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch

from .lexicon import MAX_SYLLABLES, Lexicon, Node, vowel_groups, word_key

SCHEMES = {"none": "", "couplets": "AABB", "alternate": "ABAB", "ballad": "ABCB", "limerick": "AABBA"}
MIN_SCHEME, MAX_SCHEME = 2, 8
MIN_LINE_SYLLABLES, MAX_LINE_SYLLABLES = 4, 16  # a line's length where none is asked for
LIMITS = (MIN_LINE_SYLLABLES, MAX_LINE_SYLLABLES)  # and the syllables a line may be asked for
# A line that answers a rhyme keeps its partner's length within this many syllables (unless the
# syllables are asked for): rhyming lines of a ballad scan alike.
PARTNER_SLACK = 2
# A line asked for n syllables may end at n - SYLLABLE_SLACK to n + SYLLABLE_SLACK: songs scan so
# (a sung line takes a syllable more or less), and the exact count cost more in naturalness than it gained.
SYLLABLE_SLACK = 1
MIN_WEIGHT = 1e-4  # the model's probability the form must leave it, or it relaxes
LEVELS = 5  # 0: the whole form ... 4: the stanza's shape alone
REPEAT_WORDS = 3  # no run of this many words comes again within a line and the one before (a loop)


class FormError(ValueError):
    """A form that cannot be asked for; the message says why."""


@dataclass(frozen=True)
class FormSpec:
    """What a song's form asks for. The default is a free song."""

    rhyme: str = ""  # a scheme of capital letters that repeats stanza after stanza ("" for none)
    syllables: tuple[int, ...] = ()  # per line, repeating (() for free)
    real_words: bool = False

    def __post_init__(self):
        if self.rhyme and not (re.fullmatch(r"[A-Z]+", self.rhyme) and MIN_SCHEME <= len(self.rhyme) <= MAX_SCHEME):
            raise FormError(f"a rhyme scheme is {MIN_SCHEME} to {MAX_SCHEME} capital letters (like AABB), or none")
        if any(not LIMITS[0] <= n <= LIMITS[1] for n in self.syllables) or len(self.syllables) > MAX_SCHEME:
            raise FormError(f"syllables are 0 (free), or {LIMITS[0]} to {LIMITS[1]} a line, up to {MAX_SCHEME} "
                            f"in a pattern like 8,6")

    @property
    def free(self) -> bool:
        return not (self.rhyme or self.syllables or self.real_words)

    def describe(self) -> str:
        """The form in a few words, for a song's status line."""
        parts = [f"rhyme {self.rhyme}"] if self.rhyme else []
        parts += [f"syllables {','.join(map(str, self.syllables))}"] if self.syllables else []
        parts += ["real words"] if self.real_words else []
        return ", ".join(parts) or "free"


def parse_rhyme(value: object) -> str:
    """A scheme's letters from its letters or its plain name ("couplets"); "" for none."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FormError("the rhyme scheme must be text like AABB, or none")
    text = value.strip()
    if not text:
        raise FormError("the rhyme scheme is blank: give letters like AABB, or none")
    if text.lower() in SCHEMES:
        return SCHEMES[text.lower()]
    FormSpec(rhyme=text)  # raises with the reason
    return text


def parse_syllables(value: object) -> tuple[int, ...]:
    """Syllables per line from "0" (free), "8" or "8,6" (or a plain whole number)."""
    if value is None:
        return ()
    shape = "syllables must be 0 (free), a number like 8 or a pattern like 8,6"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FormError(shape)
    if isinstance(value, float):
        if not value.is_integer():
            raise FormError(shape)
        value = int(value)
    text = str(value).strip()
    if not re.fullmatch(r"\d{1,3}(\s*,\s*\d{1,3})*", text, re.ASCII):
        raise FormError(shape)
    pattern = tuple(int(n) for n in text.split(","))
    if pattern == (0,):
        return ()
    FormSpec(syllables=pattern)  # raises with the reason
    return pattern


@dataclass
class Line:
    """A finished line of the stanza: its last word and its syllables."""

    last_word: str
    syllables: int


class Form:
    """A form made concrete for one voice: its words (``lexicon``) and its characters (``chars``,
    the tokenizer's vocabulary). ``read`` gives the state after a text; ``allowed`` what may follow."""

    def __init__(self, spec: FormSpec, lexicon: Lexicon | None, chars: Sequence[str]):
        if lexicon is None and (spec.real_words or spec.rhyme):
            raise FormError("this form needs the voice's words, and none were given")
        self.spec, self.lexicon, self.chars = spec, lexicon, list(chars)
        bit = self._bit = {c: 1 << i for i, c in enumerate(self.chars)}
        self.all = (1 << len(self.chars)) - 1
        self.newline = bit.get("\n", 0)
        self.space = bit.get(" ", 0)
        self.joiners = self.space | bit.get("-", 0)  # a middle word is followed by one of these
        self.openings = bit.get('"', 0) | bit.get("(", 0)  # may start a word (and '"' end one)
        self.letters: dict[str, int] = {}  # a lower-case letter (or ') -> its characters, both cases
        for c in self.chars:
            if c.isalpha() or c == "'":
                self.letters[c.lower()] = self.letters.get(c.lower(), 0) | bit[c]
        self.any_letter = sum(self.letters.values())
        # Inside a word, lower case only: a capital there is a slip ("riVer"), not a new word.
        self.inner: dict[str, int] = {c: bit.get(c, 0) for c in self.letters}
        self._masks: dict[int, torch.Tensor] = {}
        self.stops = self.all & ~(self.any_letter | self.newline | self.joiners | bit.get("(", 0))  # , . ! ? " ...
        self.closers = bit.get('"', 0) | bit.get(")", 0)

    def bit_of(self, char: str) -> int:
        return self._bit.get(char, 0)

    def read(self, text: str) -> FormState:
        """The form's state after ``text``: what it knows of the stanza, the line and the word."""
        state = FormState(self)
        for char in text:
            state.push(char)
        return state

    def read_tokens(self, tokens: Sequence[int]) -> FormState:
        return self.read("".join(self.chars[t] for t in tokens))

    def mask(self, bits: int) -> torch.Tensor:
        """The characters of a bit mask as a boolean tensor over the vocabulary (kept: few masks recur)."""
        mask = self._masks.get(bits)
        if mask is None:
            if len(self._masks) > 4096:
                self._masks.clear()
            mask = self._masks[bits] = torch.tensor([bool(bits >> i & 1) for i in range(len(self.chars))])
        return mask


class FormState:
    """Where a song stands in its form; ``push`` each character as it is written."""

    def __init__(self, form: Form):
        self.form = form
        self.stanza: list[Line] = []  # the stanza's finished lines
        self.words: list[str] = []  # the line's finished words
        self.line_syllables = 0  # theirs
        self.word = ""  # the word being written, in lower case
        self.line_chars = 0  # characters of the line so far
        self.breaks = 1  # line breaks just written (a song starts as if after one)
        self.last = ""  # the last character
        self.opened = False  # the last character opened a quote
        self.clause = 1  # words since a sentence ended in this line (0: one just did)
        self.previous_words: list[str] = []  # the line before's words, for REPEAT_WORDS
        self.lines = 0  # lines finished in the whole song

    # -- reading

    def push_token(self, token: int) -> None:
        self.push(self.form.chars[token])

    def push(self, char: str) -> None:
        if char.isalpha() or char == "'":
            self.word += char.lower()
        else:
            self._end_word()
        if char in ".!?" or (char == '"' and not (self.last in " (\n" or not self.last)):
            self.clause = 0  # a sentence (or a quote) ends: the line's last word may not stand alone after it
        if char == "\n":
            self.clause = 1
            if self.line_chars:
                self.stanza.append(Line(self.words[-1] if self.words else "", self.line_syllables))
                self.previous_words = self.words
                self.lines += 1
            elif self.stanza:  # a blank line ends the stanza
                self.stanza = []
            self.words, self.line_syllables, self.line_chars = [], 0, 0
            self.breaks += 1
        else:
            self.line_chars += 1
            self.breaks = 0
        self.opened = char == '"' and (self.last in " (\n" or not self.last)
        self.last = char

    def _end_word(self) -> None:
        if self.word.strip("'"):
            self.words.append(self.word)
            self.line_syllables += self.syllables(self.word)
            self.clause += 1
        self.word = ""

    def syllables(self, word: str) -> int:
        lexicon = self.form.lexicon
        return lexicon.syllables(word) if lexicon else vowel_groups(word)

    @property
    def line_ended(self) -> bool:
        """Whether the text so far ends at the end of a line: where a song cut at its length may stop."""
        return self.last == "\n"

    @property
    def line_index(self) -> int:
        return len(self.stanza)

    # -- what may come next

    def allowed(self, level: int = 0) -> int:
        """The characters that may come next, as a bit mask over the vocabulary, at a relaxation
        ``level`` (0: the whole form; LEVELS - 1: the stanza's shape alone)."""
        form = self.form
        if form.spec.free:  # a free song keeps only out of loops (but for the last level, as every form)
            return form.all & ~self._repeats() if self.last in " \n-\"(" and level < LEVELS - 1 else form.all
        if not self.line_chars:
            return self._line_start()
        if level >= LEVELS - 1:
            return form.all
        return self._within_line(level)

    def _line_start(self) -> int:
        """What may start a line: a word, or (only where a stanza may end) a line break."""
        form, scheme = self.form, self.form.spec.rhyme
        starts = form.any_letter | form.openings
        if self.breaks >= 3 or not self.lines:  # after a song's end, or before its first line
            return starts
        if self.breaks == 2:  # after a blank line: a stanza, or the song's end
            return starts | form.newline
        if scheme and self.line_index % len(scheme) == 0:  # the stanza is whole: a blank line
            return form.newline
        return starts if scheme else starts | form.newline  # without a scheme, the model makes the stanzas

    def _within_line(self, level: int) -> int:
        form, spec, lexicon = self.form, self.form.spec, self.form.lexicon
        words = lexicon.trie if spec.real_words and lexicon else None  # None: any letters
        most_middle, low, high, last_words = self._line_targets(level)
        if last_words is None:
            last_words = words
        # Middle words leave room for the shortest last word ("pretty" has no rhyme of one syllable).
        shortest = (last_words.mask & -last_words.mask).bit_length() - 1 if last_words and last_words.mask else 1
        most_middle = min(most_middle, high - shortest)
        # The syllables a middle word may have (a bit mask), and a last word.
        middle = _bits(1, most_middle - self.line_syllables)
        final = _bits(low - self.line_syllables, high - self.line_syllables)
        if self.word:  # inside a word: a letter that can still make a middle or a last word, or the word's end
            middle_node, final_node = _walk(words, self.word), _walk(last_words, self.word)
            allowed = self._next_letters(middle_node, middle) | self._next_letters(final_node, final)
            as_middle = self._ends(middle_node, self.word, middle)
            as_final = self._ends(final_node, self.word, final)
            return (allowed | (form.joiners if as_middle else 0) | (form.stops if as_middle or as_final else 0)
                    | (form.newline if as_final else 0))
        if self.last in " -(" or self.opened:  # the start of a word
            if not self.clause and level == 0:  # not `sea." Witty.`: a rhyme standing alone after a sentence
                final = 0
            letters = self._next_letters(words, middle) | self._next_letters(last_words, final)
            letters &= ~self._repeats()
            return letters | (form.openings if self.last == " " and letters else 0)
        # After a stop (a comma, a full stop, a closing quote): a closing quote, or the next word, or the
        # line's end if its last word may end it. Not a run of stops: a line that wants to end where
        # its form does not let it would go on ";--A", as the model's wish to end finds a way.
        last = self.words[-1] if self.words else ""
        node = _walk(last_words, last)
        ends = bool(last) and low <= self.line_syllables <= high and node is not False and (node is None or bool(node.word))
        closers = 0 if self.form.bit_of(self.last) & form.closers else form.closers
        return closers | (form.space if self.line_syllables <= most_middle else 0) | (form.newline if ends else 0)

    def _line_targets(self, level: int) -> tuple[int, int, int, Node | None]:
        """The syllables the line may have before its last word (at most), with it (lowest, highest),
        and the trie its last word comes from (None: any word)."""
        spec, lexicon = self.form.spec, self.form.lexicon
        scheme, index = spec.rhyme, self.line_index
        target, slack, last_words = None, 0, None
        if scheme and level <= 2:
            letter = scheme[index % len(scheme)]
            start = index - index % len(scheme)
            partners = [self.stanza[start + i] for i in range(index % len(scheme)) if scheme[i] == letter]
            if partners:
                keys = lexicon.rhyme_keys(partners[0].last_word)
                last_words = lexicon.rhyme_trie(keys, tuple(sorted({p.last_word for p in partners})))
                target, slack = partners[0].syllables, PARTNER_SLACK
            elif letter in scheme[index % len(scheme) + 1:]:
                last_words = lexicon.openers
        if spec.syllables and level <= 2:
            target, slack = spec.syllables[index % len(spec.syllables)], SYLLABLE_SLACK
        if target is None:
            return MAX_LINE_SYLLABLES - 1, MIN_LINE_SYLLABLES, MAX_LINE_SYLLABLES, last_words
        # Middle words stop short of the target, so that the last word (the rhyme) comes where the
        # line should end, not wherever the model would like to go on.
        return target - 1 + level, max(1, target - slack - level), target + slack + level, last_words

    def _next_letters(self, node: Node | None | bool, syllables: int) -> int:
        """The letters that continue ``node`` towards a word with one of the ``syllables`` (a mask)."""
        if not syllables:
            return 0
        letters = self.form.inner if self.word else self.form.letters
        if node is None:  # any letters, while the word is not already too long to end
            return sum(letters.values()) if syllables >> min(self.syllables(self.word), MAX_SYLLABLES) else 0
        if node is False:  # no word of this trie starts so
            return 0
        return sum(letters.get(c, 0) for c, kid in node.kids.items() if kid.mask & syllables)

    def _ends(self, node: Node | None | bool, word: str, syllables: int) -> bool:
        """Whether ``word`` (at ``node`` of its trie) may end here, with one of the ``syllables``."""
        if node is False:
            return False
        if node is not None and node.word is None:
            return False
        return bool(syllables >> min(self.syllables(word), MAX_SYLLABLES) & 1)

    def _repeats(self) -> int:
        """First letters that would start a run of REPEAT_WORDS words already in this line or the one
        before: a loop ("the stars of the stars of the stars"), not a refrain."""
        recent = self.previous_words + self.words
        n = REPEAT_WORDS - 1
        if len(recent) < n:
            return 0
        tail = [word_key(w) for w in recent[-n:]]
        keys = [word_key(w) for w in recent]
        banned = 0
        for i in range(len(keys) - n):
            if keys[i:i + n] == tail:
                banned |= self.form.letters.get(keys[i + n][:1], 0)
        return banned


def _walk(trie: Node | None, word: str) -> Node | None | bool:
    """The trie's node for ``word``: None where any word goes (no trie), False where none does."""
    if trie is None:
        return None
    node = trie.walk(word)
    return False if node is None else node


def _bits(low: int, high: int) -> int:
    """A mask of the syllable counts low..high (MAX_SYLLABLES stands for every longer count)."""
    if high < max(low, 1):
        return 0
    low, high = max(low, 1), min(high, MAX_SYLLABLES)
    return ((1 << (high + 1)) - 1) & ~((1 << low) - 1) if low <= high else 0


def steer(probs: torch.Tensor, state: FormState) -> tuple[torch.Tensor, float, int]:
    """What the form lets a step draw from the model's probabilities ``probs`` (vocabulary): the
    mask of the first relaxation level that leaves the model MIN_WEIGHT, that weight, the level."""
    form = state.form
    for level in range(LEVELS):
        mask = form.mask(state.allowed(level))
        weight = float(probs[mask].sum())
        if weight >= MIN_WEIGHT or level == LEVELS - 1:
            break
    return mask, weight, level
