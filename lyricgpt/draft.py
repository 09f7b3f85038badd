"""A song written together, as a ``Draft``: its text, and for each character whether the model wrote it
(then with its coloured HTML, so that the page still shows what the model weighed there) or the person
(plain). ``History`` keeps the drafts for Undo; the download says whose each line is.
"""

from __future__ import annotations

import difflib
import html
import itertools
import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from .song_request import song_lines

UNDO_STEPS = 50  # drafts kept for Undo
# An edit keeps the model's characters in runs of at least this many: a shorter run that the edit left
# (an "e" in a line the person typed over) is the person's now.
KEEP_RUN = 3
# What Share holds for a song written together.
NO_LINK = ("A song written together has no link: a link writes a song again from its settings, and this one "
           "holds your words and your choices. Download keeps it, with whose lines are whose.")


@dataclass(frozen=True)
class Draft:
    """A song's text and, for each character, its HTML if the model wrote it, or None if the person did."""

    text: str = ""
    marks: tuple[str | None, ...] = ()

    def replaced(self, start: int, end: int, text: str, marks: Sequence[str | None]) -> Draft:
        """The draft with text[start:end] replaced by ``text``, whose characters have ``marks``."""
        return Draft(self.text[:start] + text + self.text[end:], self.marks[:start] + tuple(marks) + self.marks[end:])

    def edited(self, text: str) -> Draft:
        """The draft after the person made its text ``text``: the model's characters that the edit left
        (in lines it left as they were, or in runs of KEEP_RUN or more) stay the model's, and every
        character the person typed is theirs."""
        if text == self.text:
            return self
        marks: list[str | None] = [None] * len(text)
        old, new = self.text.split("\n"), text.split("\n")
        old_at, new_at = _starts(old), _starts(new)
        # Line by line first (quick, and a match never runs from one line into another), then, where lines
        # changed, character by character.
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
            if tag == "equal":
                for i, j in zip(range(i1, i2), range(j1, j2)):  # each line, and its line break if both have one
                    n = len(old[i]) + (i + 1 < len(old) and j + 1 < len(new))
                    marks[new_at[j]:new_at[j] + n] = self.marks[old_at[i]:old_at[i] + n]
            elif tag == "replace":
                a, b = old_at[i1], new_at[j1]
                # (autojunk: for a long run of changed lines, as when every line break goes, a few hundredths
                # of a second where matching every character took seconds)
                by_char = difflib.SequenceMatcher(None, self.text[a:old_at[i2] - 1], text[b:new_at[j2] - 1])
                for i, j, n in by_char.get_matching_blocks():
                    if n >= KEEP_RUN:
                        marks[b + j:b + j + n] = self.marks[a + i:a + i + n]
        return Draft(text, tuple(marks))

    def as_html(self) -> str:
        """The song as the page's panel shows it: the model's characters coloured, the person's plain."""
        return "".join(mark if mark is not None else f'<span class="seed">{html.escape(char)}</span>'
                       for char, mark in zip(self.text, self.marks))

    @property
    def model_chars(self) -> int:
        return sum(mark is not None for mark in self.marks)

    def whose_lines(self) -> list[tuple[str, str]]:
        """Each line of words with who wrote it: "you", "LyricGPT", or "both" (one changed the other's)."""
        whose = []
        for start, end in song_lines(self.text):
            by = {mark is None for mark in self.marks[start:end]}
            whose.append(("both" if len(by) == 2 else "you" if True in by else "LyricGPT", self.text[start:end]))
        return whose


def _starts(lines: list[str]) -> list[int]:
    """Where each of a text's lines starts in it, and where one after the last would."""
    return [0, *itertools.accumulate(len(line) + 1 for line in lines)]


@dataclass(frozen=True)
class History:
    """A song's drafts, the newest last, for Undo."""

    drafts: tuple[Draft, ...] = (Draft(),)

    @property
    def draft(self) -> Draft:
        return self.drafts[-1]

    def then(self, draft: Draft) -> History:
        return self if draft == self.draft else History((*self.drafts, draft)[-UNDO_STEPS:])

    def undone(self) -> History:
        return History(self.drafts[:-1]) if len(self.drafts) > 1 else self


# One character of serving.stream_song's HTML: a span (a rhyme letter is an empty one), or a bare
# character (the model's, with colours off), escaped.
_PIECE = re.compile(r'<span class="rhyme-letter"[^>]*></span>|<span[^>]*>[^<]*</span>|&#?\w+;|[^<&]')


def song_draft(colours: str) -> Draft:
    """The draft of a song the page wrote, from its HTML (serving.stream_song): its first line's
    characters (class "seed") are the person's, the rest the model's, each rhyme letter with the line
    break it comes before (or the song's last character)."""
    text, marks, letter = [], [], ""
    for piece in _PIECE.findall(colours):
        if piece.startswith('<span class="rhyme-letter"'):
            letter += piece
            continue
        text.append(html.unescape(re.sub(r"<[^>]*>", "", piece)))
        spanned = piece if piece.startswith("<span") else f"<span>{piece}</span>"  # a span a character, for song.js
        marks.append(None if piece.startswith('<span class="seed">') else letter + spanned)
        letter = ""
    if letter and marks and marks[-1] is not None:  # the last line's, whose line break is not shown
        marks[-1] += letter
    return Draft("".join(text), tuple(marks))


def summary(draft: Draft) -> str:
    """Whose lines a song's are, in a few words, for its status."""
    counts = Counter(who for who, _ in draft.whose_lines())
    lines = sum(counts.values())
    parts = [f"{counts[who]} {name}" for who, name in [("you", "yours"), ("LyricGPT", "LyricGPT's"), ("both", "both")]
             if counts[who]]
    return f"Written together: {lines} line{'s' * (lines != 1)}" + (f" ({', '.join(parts)})" if parts else "")


def keepsake(draft: Draft, voice: str) -> str:
    """A song written together as a text file: the song, then who wrote each of its lines."""
    whose = [f"{n:>3}  {who:<8}  {line}" for n, (who, line) in enumerate(draft.whose_lines(), 1)]
    return (f"You and LyricGPT ({voice}) wrote this song together. Under it: who wrote each line.\n\n"
            f"{draft.text.strip(chr(10))}\n\n\n"
            "Whose lines: LyricGPT's, yours, or both (one of you changed or went on with the other's)\n"
            + "\n".join(whose) + "\n")


def keepsake_name(draft: Draft) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", draft.text.lower()).strip("-")[:40].strip("-") or "song"
    return f"{words}-together.txt"
