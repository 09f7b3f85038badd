"""Serving lyrics to people: model loading with a fallback, and the song stream (its requests: song_request.py).

This is everything the web app does apart from drawing the page, so that it can be tested
without a browser and so that ``lyricgpt`` never needs gradio.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .engine import Engine
from .hub import looks_like_repo_id
from .lm import LyricModel, load_model
from .numbers import spell_numbers
from .sampler import SamplingSettings, Step, length_reached
from .song_request import Request, shorten, show_value
from .takes import write_song

log = logging.getLogger(__name__)

TIME_LIMIT_S = 60.0        # a song that takes longer ends there, so one request cannot hold a worker
# A song's updates when it is alone: smooth to the eye, and each update costs the server and the
# browser work per update, not per character (60 a second took the page 1.45x /generate's time for
# a 2,000-character song, 30 a second 1.13x: docs/benchmarks.md).
UPDATE_EVERY_S = 1 / 30
# Each update costs gradio ~1.3 ms on its event loop, shared by every stream: with many songs in
# flight, each one is updated less often so that all of them together stay under this rate.
MAX_UPDATES_PER_S = 120
STATUS_EVERY_S = 0.25      # the chars/s figure changes too fast to read when updated per character
# The page's example first lines (its length, temperature and top-p are song_request.DEFAULT_LENGTH,
# sampler.DEFAULT_TEMPERATURE and DEFAULT_TOP_P; benchmarks/voice.py samples with them all).
EXAMPLE_LINES = ["I walked out in the morning rain", "Baby, don't you cry tonight",
                 "Down by the river where the old mill stands", "We were young and the city was ours"]

# Probability buckets for the colour view: (lowest probability, CSS class, legend text).
PROB_BUCKETS = [
    (0.9, "p4", "90% or more"),
    (0.5, "p3", "50-90%"),
    (0.2, "p2", "20-50%"),
    (0.05, "p1", "5-20%"),
    (0.0, "p0", "under 5%"),
]
# The page's own CSS. The song panels' colours are here rather than in each panel's css_template:
# gradio rewrites a panel's <style> at every update, and the browser then styles the whole song again
# (a 2,000-character song's styling took 0.8 s of the page's 2.9 s: docs/benchmarks.md).
PAGE_CSS = """
.lyrics .song { white-space: pre-wrap; font-family: ui-monospace, monospace; line-height: 1.5; }
.lyrics .song span { color: #111; }
.lyrics .song .seed { color: inherit; opacity: 0.7; }
.lyrics .p4 { background: #c7ebc3; } .lyrics .p3 { background: #e6f2b6; } .lyrics .p2 { background: #fde9a8; }
.lyrics .p1 { background: #fcc99a; } .lyrics .p0 { background: #f7a1a1; }
.lyrics .legend span { padding: 0 0.4em; margin-right: 0.3em; border-radius: 3px; }
/* Where the song's form steered the model (serving.STEERED), and each rhymed line's letter at its end:
   drawn from an attribute, so that the letter is no part of the song's text (Copy takes textContent). */
.lyrics .steered { text-decoration: underline dotted #333 2px; text-underline-offset: 0.2em; }
.lyrics .song .rhyme-letter::after { content: attr(data-letter); margin-left: 1ch; font-size: 0.75em; color: #888;
                                     font-family: ui-sans-serif, sans-serif; user-select: none; }
#song.plain .song span { background: none; }
#song .song span[data-top] { cursor: pointer; }
#song .song .line { content-visibility: auto; contain-intrinsic-size: auto 1.5em; }  /* lay out the lines in view */
/* A line too long for the panel goes on indented, so that one line of the song never looks like two. */
#song .song .line { padding-left: 2ch; text-indent: -2ch; }
/* On a phone the page's script brings the panel into view as a song starts (song.js): the panel is
   short enough to fit under its heading, and takes its height at once, so that the page can scroll there. */
@media (max-width: 640px) {
  #song .html-container { max-height: min(560px, 55svh) !important; }
  #song .html-container:has(.song:not(:empty)) { min-height: min(560px, 55svh); }
}
#song .song span.attended { background: rgba(37, 99, 235, calc(0.85 * var(--attention))) !important; }
#song .song span.selected { outline: 2px solid #1d4ed8; border-radius: 2px; }
.inspect-bar[hidden] { display: none; }
.inspect-bar { display: flex; flex-wrap: wrap; gap: 0.3em 1em; align-items: center; font-size: 0.9em; margin: 0.3em 0; }
.inspect-bar select { padding: 0.1em 2em 0.1em 0.4em; }  /* room for the menu's arrow */
/* The two menus move to the next line together (at 1280 px Head wrapped alone), and wrap only where
   even a line of their own is too narrow for both (a phone). */
.inspect-bar .menus { display: inline-flex; flex-wrap: wrap; gap: 0.3em 1em; flex-shrink: 0; max-width: 100%; }
.inspect-bar label { white-space: nowrap; }
.inspect-bar .copy-song { border: 1px solid #999; border-radius: 4px; padding: 0.1em 0.8em; }
.alt-tip { position: fixed; z-index: 1000; max-width: min(280px, calc(100vw - 16px)); background: #fff; color: #111;
           border: 1px solid #999; border-radius: 6px; padding: 0.4em 0.6em; font-size: 0.85em;
           box-shadow: 0 2px 8px rgba(0, 0, 0, 0.2); pointer-events: none; }
.alt-tip table { border-collapse: collapse; margin: 0.2em 0; }
.alt-tip td { padding: 0 0.6em 0 0; font-family: ui-monospace, monospace; }
.alt-tip tr.drawn { font-weight: bold; }
.alt-title, .alt-odds { font-size: 0.9em; }
"""


@dataclass(frozen=True)
class LoadedModel:
    """The model being served, how to describe it to people, and why we fell back, if we did."""

    lm: LyricModel
    source: str
    fallback_reason: str | None = None

    def describe(self) -> str:
        config = self.lm.model.config
        params = sum(p.numel() for p in self.lm.model.parameters())
        shape = (f"{config.n_layer} layers x {config.n_embd} wide" if hasattr(config, "n_layer") else "bigram")
        text = (f"**Model:** {config.architecture.upper()} ({shape}, {config.context_length}-character context, "
                f"{params / 1e6:.2f} M parameters) from {markdown_text(self.source)}")
        if self.fallback_reason:
            text += f". Fell back to the bundled model because {markdown_text(self.fallback_reason)}"
        return text


def markdown_text(text: str) -> str:
    """Shown as written: an error message's model_name or *.png must not turn into italics."""
    return re.sub(r"([\\`*_\[\]<>~])", r"\\\1", text)


def load_for_serving(source: str | None, revision: str | None, bundled: Path, timeout: float) -> LoadedModel:
    """Load ``source`` (Hub repo id or folder); on any failure log why and serve ``bundled`` instead.

    A failure to load the bundled model itself is not caught: there is nothing left to serve.
    """
    if not source:
        return LoadedModel(load_model(bundled), "the bundled model")
    if Path(source).exists() or not looks_like_repo_id(source):  # the order load_model tries them in
        where = f"folder {folder_name(source)}"
    else:
        where = f"Hub repo {source}" + (f" at revision {revision}" if revision else "")
    try:
        lm = load_model(source, revision=revision, timeout=timeout)
    except (ValueError, RuntimeError, OSError, MemoryError) as e:  # ModelError, WeightsError, HubError, ...
        log.warning("could not load the model from %s (%s: %s); serving the bundled model %s instead",
                    source, type(e).__name__, e, bundled)
        reason = public_message(f"{where} could not be loaded: {e}")
        return LoadedModel(load_model(bundled), "the bundled model", reason)
    log.info("serving the model from %s", source)
    return LoadedModel(lm, where)


def folder_name(source: str) -> str:
    """Enough of a folder's path to tell models apart (every trained one is called "model"),
    without the server's absolute paths: relative to the working folder, or its last three parts."""
    path = Path(source)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return ".../" + "/".join(path.parts[-3:])


_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])(?:/[^\s/'\"]+)+/([^\s/'\"]+)")


def public_message(text: str) -> str:
    """A message fit for the page: absolute server paths shortened to their last part."""
    return _ABSOLUTE_PATH.sub(r"\1", text)


@dataclass(frozen=True)
class Update:
    """One step of a song in the making, ready to show."""

    lyric: str     # the seed line as the model read it, then the new characters so far
    colours: str   # the same as HTML, each new character coloured by its probability (when colour is on)
    status: str
    added: str     # what this update adds to ``colours``, after a mark of how many characters came before


def added_html(before: int, html: str) -> str:
    """The HTML of characters new in an update, marked with how many came before them (0: a new song),
    so that the page can append it and tell a new song from the next part of the last one."""
    return f"<!--{before}-->{html}"


def spelled_seed_line(lm: LyricModel, seed_line: str) -> tuple[str, list[tuple[str, str]]]:
    """The seed line with its numbers in words where the model knows no digits (its songs had none),
    and the (as written, as words) pairs."""
    if all(digit in lm.tokenizer for digit in "0123456789"):
        return seed_line, []
    return spell_numbers(seed_line)


def seed_notes(lm: LyricModel, seed_line: str, name: str = "the seed line") -> list[str]:
    """What the model will read differently from a seed line (or another text: ``name``), or not at all,
    in words for its writer."""
    seed_line, spelled = spelled_seed_line(lm, seed_line)
    notes = []
    if spelled:
        listed = ", ".join(f"{shorten(written)} as {show_value(words)}" for written, words in spelled[:10])
        notes.append(f"numbers written as words, as the model has never read a digit: {listed}")
    full = lm.tokenizer.encode_with_report(seed_line)
    if full.dropped:
        listed = ", ".join(f"{c!r} x{n}" for c, n in sorted(full.dropped.items(), key=lambda kv: -kv[1])[:10])
        notes.append(f"left out {full.dropped_count} character(s) the model does not know: {listed}")
    if len(full.ids) > lm.context_length:
        notes.append(f"{name} is longer than the model's {lm.context_length}-character window; "
                     f"it reads only the last {lm.context_length} characters")
    return notes


def prob_class(prob: float) -> str:
    return next(cls for low, cls, _ in PROB_BUCKETS if prob >= low)


def coloured(char: str, step: Step) -> str:
    """One new character as HTML: coloured by its probability, carrying what the model weighed.

    ``data-top`` lists the model's likeliest tokens as "id permille" pairs; ``data-prob`` is the
    character's own per-mille, and ``data-drawn`` its per-mille in the distribution it was drawn
    from (after temperature, top-k and top-p); ``data-window`` is how many characters the model
    read to choose it. Where the song's form left the model less than STEERED of its probability,
    the character is marked ``steered`` and ``data-form`` says how much (per mille).
    """
    top = ",".join(f"{token} {round(prob * 1000)}" for token, prob in step.top)
    steered = step.form_weight < STEERED
    return (f'<span class="{prob_class(step.prob)}{" steered" if steered else ""}" title="{step.prob:.0%}" '
            f'data-top="{top}" data-prob="{round(step.prob * 1000)}" data-drawn="{round(step.sampled_prob * 1000)}" '
            + (f'data-form="{round(step.form_weight * 1000)}" ' if steered else "")
            + f'data-window="{step.window}">{html.escape(char)}</span>')


STEERED = 0.5  # a character drawn where the form left the model less than this is marked as steered


def legend() -> str:
    spans = "".join(f'<span class="{cls}">{text}</span>' for _, cls, text in PROB_BUCKETS)
    steered = (f'<span class="steered">dotted</span> the song\'s form steered it: it left the model less than '
               f'{STEERED:.0%} of its probability')
    return (f'<div class="legend">How likely the model found each character: {spans}<br>{steered} · plain: '
            f'your own words</div>')


def update_interval(engine: Engine | None) -> float:
    """Seconds between one song's updates: UPDATE_EVERY_S, or longer when many songs share the server."""
    singing = engine.singing if engine is not None else 1
    return max(UPDATE_EVERY_S, singing / MAX_UPDATES_PER_S)


def stream_song(lm: LyricModel, request: Request, colour: bool = True, stop: threading.Event | None = None,
                clock: Callable[[], float] = time.monotonic, engine: Engine | None = None) -> Iterator[Update]:
    """Yield the song as it is sampled: an Update for the first character, then at most one per
    ``update_interval``, and one for the last. That is ``request.length`` characters and on to the end
    of the line (with ``request.end_with_song``, of the verse: ``lm.song_plan``), unless the model ends
    the song first (its end, two blank lines, is not shown), or ``stop`` is set or the time limit
    passes (the last Update's status says which). Every song keeps its form (``request.form``), a free
    song too (out of loops), and each line of a rhymed song shows its rhyme letter.

    With an ``engine`` the song is one row of its batch (a song in takes, a row a take: lyricgpt.takes);
    without, this generator samples it alone.
    Either way, closing the generator ends the song's work at once.
    """
    prompt = lm.read_prompt(spelled_seed_line(lm, request.seed_line)[0])
    prompt_ids = prompt.ids or lm.start_ids()
    settings = SamplingSettings(request.temperature, request.top_k, request.top_p)
    lyric = prompt.text
    # One span per character, the seed line's too, so that the page can shade any of them.
    colours = "".join(f'<span class="seed">{html.escape(c)}</span>' for c in prompt.text)
    notes = seed_notes(lm, request.seed_line)
    chars = lm.tokenizer.chars
    # At its length a song that may end ends at its next stanza break; any song finishes its line.
    end, most = lm.song_plan(request.length, request.end_with_song)
    form = lm.form(request.form)
    state = form.read_tokens(prompt_ids)  # the song's place in its form, for the rhyme letters and the length
    scheme = request.form.rhyme
    relaxed = 0
    chunks = write_song(lm, prompt_ids, most, settings, request.seed, end, request.form, request.takes, engine,
                        lambda: update_interval(engine))
    # Line breaks are held back (as text and as HTML) until a character follows them: they may be the
    # start of the song's end, which is not shown. So the page's song only ever grows.
    held = ("", "")
    start = last_update = last_status = clock()
    n = 0
    shown_n, shown_html = 0, 0  # characters and HTML already sent
    try:
        for chunk in chunks:
            for step in chunk:
                n += 1
                relaxed += step.relaxed > 0
                char = chars[step.token]
                piece = coloured(char, step) if colour else html.escape(char)
                if scheme and char == "\n" and state.line_chars:
                    # The line's rhyme letter, after it, at once: nothing is held back before a line's
                    # break, and a line break that begins the song's end (held back) still ends a line.
                    colours += f'<span class="rhyme-letter" data-letter="{scheme[state.line_index % len(scheme)]}"></span>'
                state.push(char)
                if end is not None and char == "\n":
                    held = (held[0] + char, held[1] + piece)
                else:  # += appends in place (CPython): lyric = lyric + ... would copy the whole song each time
                    lyric += held[0] + char
                    colours += held[1] + piece
                    held = ("", "")
            now = clock()
            early_end = stop_note(now - start, stop)
            if early_end:
                notes.append(early_end)
            last = bool(early_end) or length_reached(n, most, state)
            if last:  # not the song's end: what was held back is part of the song
                lyric, colours, held = lyric + held[0], colours + held[1], ("", "")
                notes += [] if early_end else ["reached the length"]
            shown = len(lyric) - len(prompt.text)
            if last or shown_n == 0 or now - last_status >= STATUS_EVERY_S:
                status, last_status = song_status(shown, request, n / max(now - start, 1e-9), notes, relaxed), now
            # The engine's chunks come paced already; the solo path is paced here. An update always
            # brings something new, so the first one holds the first character shown.
            if last or (shown > shown_n and (shown_n == 0 or engine is not None
                                             or now - last_update >= UPDATE_EVERY_S)):
                last_update = now
                yield Update(lyric, colours, status, added_html(shown_n, colours[shown_html:]))
                shown_n, shown_html = shown, len(colours)
            if last:
                return
        if end is not None:  # the model ended the song: its end is what was held back
            notes.append("the model ended the song")
            status = song_status(shown, request, n / max(clock() - start, 1e-9), notes, relaxed)
            yield Update(lyric, colours, status, added_html(shown_n, colours[shown_html:]))
    finally:
        chunks.close()  # ends the song's work at once: frees its rows in the engine


def stop_note(elapsed: float, stop: threading.Event | None) -> str | None:
    """Why a song stops early, ``elapsed`` seconds in: Stop, or the time limit; None: it goes on."""
    if stop is not None and stop.is_set():
        return "stopped"
    if elapsed > TIME_LIMIT_S:
        return f"stopped at {TIME_LIMIT_S:g} s, the time limit"
    return None


def song_status(done: int, request: Request, rate: float, notes: list[str], relaxed: int = 0) -> str:
    """A song's status line: how far it got and how fast, every setting that wrote it, ``notes``, and
    at how many characters (``relaxed``) its form relaxed."""
    text = (f"{done} of {request.length} characters" if done <= request.length else
            f"{done} characters ({request.length}, then to the end of the "
            f"{'verse' if request.end_with_song else 'line'})") + f" at {rate:,.0f} chars/s"
    notes = notes + [f"the form relaxed at {relaxed} character(s)"] if relaxed else notes
    settings = settings_text(request, f"seed {request.seed}", request.takes)
    return text + settings + "".join(f" · {note}" for note in notes)


def settings_text(request, seeds: str, takes: int = 1) -> str:
    """The settings a status names, each after " · ": the temperature, top-k, top-p, ``seeds`` (not at
    temperature 0, where every seed writes the same: it plays no part) and the form (a Request, or a
    lyricgpt.song_request.LinesRequest) with its ``takes`` of each line."""
    text = f" · temperature {request.temperature:g} · top-k {request.top_k or 'off'}"
    text += f" · top-p {'off' if request.top_p is None else f'{request.top_p:g}'}"
    text += f" · {seeds}" if request.temperature > 0 else ""
    if request.form.free:
        return text
    return text + f" · form: {request.form.describe()}" + (f", {takes} takes a line" if takes > 1 else "")
