"""Writing a song together: the model offers lines, and the person picks, rewrites and writes their own.

A song written together is a ``Draft`` (lyricgpt.draft): whose each character is, and Undo's history.

The ways the model writes into a draft, each on ``lyricgpt.rows.write_rows`` (texts side by side):
candidate lines (``offer_lines``: the i-th from the request's seed + i), for the song's next line or in
place of one of its lines (a ``Slot``); and the song continued from all of it (``continue_song``). The model reads the
last context window of the words before; the song's form (lyricgpt.form) reads all of them, so that a
candidate keeps the scheme of the stanza it goes into.
"""

from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass
from typing import Iterator

from .draft import Draft
from .engine import Engine
from .form import FormSpec
from .lm import LyricModel
from .rows import Row, write_rows
from .sampler import VERSE_GRACE, SamplingSettings, SongEnd, Step
from .serving import coloured, seed_notes, settings_text, song_status, spelled_seed_line, stop_note, update_interval
from .song_request import MAX_SONG_TEXT, InputError, LinesRequest, Request, parse_line, show_value, song_lines
from .takes import write_song

# A candidate's length before its form finishes its line (within sampler.LINE_GRACE): past the lines of
# the corpus (99% are under 58 characters, the longest 91).
MAX_LINE_CHARS = 80
PAGE_CANDIDATES = 4  # the page's Next line, Four more and Rewrite each write this many


def model_ids(lm: LyricModel, text: str) -> list[int]:
    """What the model and the form read of a song's text: its numbers as words, the characters it knows."""
    return lm.tokenizer.encode(spelled_seed_line(lm, text)[0]) or lm.start_ids()


# -- candidate lines


@dataclass(frozen=True)
class Slot:
    """Where a candidate line goes in a song's text: in place of text[start:end] (nothing, for the next
    line), after ``lead``; ``before``: what the model and the form read first."""

    start: int
    end: int
    lead: str
    before: str


def slot(lm: LyricModel, text: str, line: int | None, form: FormSpec) -> Slot:
    """The slot of the song's next line (``line`` None), or of its line ``line`` (1 for the first,
    blank lines not counted): written from the lines before it, the lines after it kept. A line starts a
    stanza where the form asks for one (a blank line the model reads, and the next line brings)."""
    if line is None:
        lead = "\n" if text and not text.endswith("\n") else ""
        lead += "\n" if _stanza_due(lm, form, text + lead) else ""
        return Slot(len(text), len(text), lead, text + lead)
    start, end = song_lines(text)[parse_line(line, text) - 1]
    before = text[:start]
    return Slot(start, end, "", before + ("\n" if _stanza_due(lm, form, before) else ""))


def _stanza_due(lm: LyricModel, spec: FormSpec, text: str) -> bool:
    """Whether the form wants a blank line after ``text``: a stanza of its rhyme scheme is whole."""
    if not spec.rhyme:  # only a scheme's stanzas end by themselves (form.FormState._line_start)
        return False
    form = lm.form(spec)
    state = form.read_tokens(model_ids(lm, text))
    return not state.line_chars and state.allowed() == form.newline


def line_end(lm: LyricModel) -> SongEnd:
    """A candidate ends with its line: at its first line break, which it may not start with."""
    newline = lm.tokenizer.encode("\n")
    if not newline:
        raise InputError("this voice writes no line breaks, so it cannot write a line")
    return SongEnd(tuple(newline), min_new_tokens=1)


@dataclass(frozen=True)
class Candidate:
    """A candidate line: its seed, its text so far (its line break left off), and once it is done each
    character's HTML."""

    seed: int
    text: str
    marks: tuple[str, ...]
    done: bool


@dataclass(frozen=True)
class Offer:
    """Candidate lines by ``voice`` in ``form``: for the song's next line (``line`` None), or in place of its
    line ``line``."""

    line: int | None
    voice: str
    form: FormSpec
    candidates: tuple[Candidate, ...]
    status: str

    @property
    def next_seed(self) -> int:
        """The seed of the first of the next candidates ("Four more")."""
        return max(c.seed for c in self.candidates) + 1

    def chosen(self, lm: LyricModel, draft: Draft, index: int) -> Draft:
        """The draft with candidate ``index`` in its place, found in the draft as it is now: the person may
        have changed it since the candidates were asked for."""
        candidate = self.candidates[index]
        place = slot(lm, draft.text, self.line, self.form)
        return draft.replaced(place.start, place.end, place.lead + candidate.text,
                              (None,) * len(place.lead) + candidate.marks)


def offer_lines(lm: LyricModel, asked: LinesRequest, line: int | None, voice: str,
                engine: Engine | None = None) -> Iterator[Offer]:
    """Write ``asked.count`` candidate lines for the song's next line (``line`` None) or in place of its
    line ``line``, side by side; yield the offer as they grow, the last time all written."""
    place = slot(lm, asked.text, line, asked.form)
    settings = SamplingSettings(asked.temperature, asked.top_k, asked.top_p)
    seeds = range(asked.seed, asked.seed + asked.count)
    named = f"seed {asked.seed}" if asked.count == 1 else f"seeds {asked.seed}-{seeds[-1]}"
    if line is None:
        where, then = "the next line", "add it to the song"
    else:
        start, end = song_lines(asked.text)[line - 1]
        where, then = f"line {line} ({show_value(asked.text[start:end])})", "put it in that line's place"
    # What the model reads differently, of what it reads: the last context window.
    notes = "".join(f" · {note}" for note in seed_notes(lm, place.before[-lm.context_length:], "the song"))
    for rows in write_rows(lm, model_ids(lm, place.before), seeds, MAX_LINE_CHARS, settings, line_end(lm),
                           asked.form, engine, lambda: update_interval(engine)):
        candidates = tuple(_candidate(lm, row) for row in rows)
        busy = f" · LyricGPT is busy: {len(rows)} of {asked.count}" if len(rows) < asked.count else ""
        status = (f"Candidates for {where}: click one to {then}" if all(c.done for c in candidates) else
                  f"Writing candidates for {where}")
        yield Offer(line, voice, asked.form, candidates, status + settings_text(asked, named) + busy + notes)


def _candidate(lm: LyricModel, row: Row) -> Candidate:
    chars = [lm.tokenizer.chars[step.token] for step in row.steps]
    n = len(chars) - (chars[-1:] == ["\n"])  # the line break that ends it is no part of it
    # Its characters' HTML once it is written, the only time it can be chosen: not at every update.
    marks = tuple(coloured(c, s) for c, s in zip(chars[:n], row.steps)) if row.done else ()
    return Candidate(row.seed, "".join(chars[:n]), marks, row.done)


def cards_html(offer: Offer | None) -> str:
    """The candidates as the page shows them: side by side, each a button that takes it once it is written."""
    if offer is None:
        return ""
    cards = [f'<button type="button" class="candidate" data-index="{i}" title="seed {c.seed}"'
             f'{"" if c.done else " disabled"}>{html.escape(c.text)}</button>' for i, c in enumerate(offer.candidates)]
    return f'<div class="candidates">{"".join(cards)}</div>'


# The candidates' cards: a grid that puts four side by side in the song's column, two by two on a phone.
CARDS_CSS = """
#candidates .candidates { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 0.5em; }
#candidates .candidate { text-align: left; white-space: pre-wrap; font: 0.95em/1.4 ui-monospace, monospace;
                         min-height: 3em; padding: 0.4em 0.6em; border: 1px solid #999; border-radius: 6px;
                         background: #fff; color: #111; cursor: pointer; }
#candidates .candidate:hover:not(:disabled) { border-color: #4338ca; background: #eef2ff; }
#candidates .candidate:disabled { border-style: dashed; color: #555; cursor: progress; }
"""
# The cards' script (the panel's js_on_load): a click on a written card is the panel's click, with its index.
CARDS_JS = """
element.addEventListener('click', (e) => {
  const card = e.target.closest && e.target.closest('.candidate:not(:disabled)');
  if (card) trigger('click', {index: Number(card.dataset.index)});
});
"""


# -- the song continued


@dataclass(frozen=True)
class Continued:
    """An update of a song being continued: the HTML for the panel, the status, and at the end the draft."""

    added: str
    status: str
    draft: Draft | None = None


def continue_song(lm: LyricModel, draft: Draft, request: Request, engine: Engine | None = None,
                  stop: threading.Event | None = None) -> Iterator[Continued]:
    """Write on from the whole of ``draft`` as serving.stream_song writes on from a first line: to
    ``request.length``, or with ``request.end_with_song`` where the model ends the song (its end not
    shown), or at Stop, the time limit or MAX_SONG_TEXT. The first update's HTML draws the draft anew
    (the page may show an older one) with the first characters; the others bring the new characters,
    after a mark of how many of the model's came before them (serving.added_html)."""
    room = MAX_SONG_TEXT - len(draft.text)
    if room < 1:
        raise InputError(f"the song is as long as a song may be here ({MAX_SONG_TEXT:,} characters): "
                         "make room in its text, or save it with Download")
    end = lm.song_end(by=request.length) if request.end_with_song else None
    marker = "".join(lm.tokenizer.chars[t] for t in end.marker) if end else ""
    settings = SamplingSettings(request.temperature, request.top_k, request.top_p)
    notes = seed_notes(lm, draft.text, "the song")
    chars, sent, start = lm.tokenizer.chars, 0, time.monotonic()
    # A character at a time, or with takes (lyricgpt.takes) a line at a time, as a song from a first line.
    chunks = write_song(lm, model_ids(lm, draft.text), request.length + (VERSE_GRACE if end else 0), settings,
                        request.seed, end, request.form, request.takes, engine, lambda: update_interval(engine))
    steps: list[Step] = []
    try:
        while True:
            chunk = next(chunks, None)
            done = chunk is None
            steps += chunk or []
            new = "".join(chars[step.token] for step in steps)
            full = len(new) >= room
            stopped = stop_note(time.monotonic() - start, stop) or ("reached the song's limit" if full else None)
            ended = done and bool(end) and new.endswith(marker)
            last = done or bool(stopped)
            # Line breaks wait for a character after them: they may begin the song's end, which is not shown.
            if last:
                shown = (new[:len(new) - len(marker)] if ended else new)[:room]
            else:
                shown = new.rstrip("\n") if end else new
            if len(shown) == sent and not last:  # an update always brings something new (so each mark after
                continue                          # the first is above 0, which would start a new song)
            part = "".join(coloured(c, s) for c, s in zip(shown[sent:], steps[sent:]))
            why = [stopped or ("the model ended the song" if ended else "reached the length")] if last else []
            status = "Continued: " + song_status(len(shown), request, len(new) / max(time.monotonic() - start, 1e-9),
                                                 notes + why)
            added = f"<!--{draft.model_chars + sent}-->{part}" if sent else f"<!--0 redraw-->{draft.as_html()}{part}"
            if last:
                marks = [coloured(c, s) for c, s in zip(shown, steps)]
                yield Continued(added, status, draft.replaced(len(draft.text), len(draft.text), shown, marks))
                return
            yield Continued(added, status)
            sent = len(shown)
    finally:
        chunks.close()
