"""A song request: its settings checked for a person's mistakes, and the link and file that write it again."""

from __future__ import annotations

import json
import math
import re
import secrets
import urllib.parse
from dataclasses import dataclass, replace
from typing import Iterable, Mapping

from .form import FormError, FormSpec, parse_rhyme, parse_syllables
from .sampler import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, LINE_GRACE, VERSE_GRACE
from .takes import MAX_TAKES

MAX_LENGTH = 2000          # characters per song: bounds the work one request can ask for
MAX_TEMPERATURE = 2.0      # above this the samples are noise
MAX_SEED = 2**63 - 1
# Characters of any text a caller sends (a first line, the text to look inside at), checked before any
# work: eight times the model's 256-character window, and a song's link stays under MAX_LINK.
MAX_TEXT = 2000
# A song written together (lyricgpt.cowrite), as text: room for any song the page writes (its first
# line, its length and the grace after it), which the person may then go on with.
MAX_SONG_TEXT = MAX_TEXT + MAX_LENGTH + VERSE_GRACE + LINE_GRACE
MAX_CANDIDATES = 8  # candidate lines one request may ask for
# A song's link, in characters: half of what the server takes (httpx, inside gradio, refuses a URL of
# over 65,536), leaving room for a host that adds its own address and keys, as a Space's frame does.
MAX_LINK = 32_768
DEFAULT_LENGTH = 400  # the page's starting length
DEFAULT_FORM = FormSpec()  # the page's starting form
# The page's starting form, and a request's where it names none: a free song. Rhymed songs in takes
# read better, but cost 2-3x the CPU (6-7x with 16 at once) and come a line at a time (docs/forms.md).
DEFAULT_RHYME, DEFAULT_SYLLABLES, DEFAULT_REAL_WORDS = "none", "0", False
# Takes of each line for a song with a form (lyricgpt.takes): with 4, every scheme's songs are within 0.10
# bits/char of free songs by PPMd (docs/forms.md). A link without the key predates takes: 1, as then.
DEFAULT_TAKES, LINK_TAKES = 4, 1
RANDOM_SEED_WORDS = {"", "random", "randomize", "randomise"}
SWITCH_WORDS = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}


class InputError(ValueError):
    """A request setting that cannot be used; the message is meant for the person who sent it."""


@dataclass(frozen=True)
class Request:
    """A checked request. ``seed`` is always concrete, so every song can be written again."""

    seed_line: str
    length: int
    temperature: float
    top_k: int | None
    top_p: float | None
    seed: int
    end_with_song: bool = True  # the song ends where the model ends it, or at ``length``
    form: FormSpec = FormSpec()  # its rhyme scheme, syllables and words (lyricgpt.form)
    takes: int = DEFAULT_TAKES  # of each line, one kept (lyricgpt.takes); a free song is written in one


def parse_request(seed_line: object, temperature: object, length: object, top_k: object = 0,
                  top_p: object = 1.0, seed: object = "", vocab_size: int = 10_000,
                  end_with_song: object = True, rhyme: object = DEFAULT_RHYME,
                  syllables: object = DEFAULT_SYLLABLES, real_words: object = DEFAULT_REAL_WORDS,
                  takes: object = DEFAULT_TAKES) -> Request:
    """Check every setting (API callers skip the sliders' limits); raise InputError saying what is wrong.

    ``top_k=0`` and ``top_p=1`` mean "off"; a blank seed (or "randomize") draws a fresh one.
    """
    seed_line = parse_text(seed_line, "the seed line")
    length = _whole(length, "length", 1, MAX_LENGTH)
    return Request(seed_line, length, *_sampling(temperature, top_k, top_p, vocab_size), _seed(seed),
                   _switch(end_with_song, "end with the song"), parse_form(rhyme, syllables, real_words),
                   _whole(takes, "takes", 1, MAX_TAKES))


def _sampling(temperature: object, top_k: object, top_p: object,
              vocab_size: int) -> tuple[float, int | None, float | None]:
    """The temperature, top-k (None: off) and top-p (None: off) of a request, checked."""
    temperature = float(_number(temperature, "temperature", 0.0, MAX_TEMPERATURE))
    top_k = _whole(top_k, "top-k", 0, vocab_size)
    top_p = float(_number(top_p, "top-p", 0.0, 1.0))
    if top_p == 0.0:
        raise InputError("top-p must be above 0 (1 turns it off)")
    return temperature, top_k or None, None if top_p == 1.0 else top_p


# -- writing a song together (lyricgpt.cowrite)


@dataclass(frozen=True)
class LinesRequest:
    """A checked request for ``count`` candidate lines, after (or in place of a line of) ``text``."""

    text: str
    count: int
    temperature: float
    top_k: int | None
    top_p: float | None
    seed: int  # the first candidate's; the next ones take seed + 1, seed + 2, ...
    form: FormSpec = FormSpec()


def parse_lines_request(text: object, count: object, temperature: object, top_k: object = 0, top_p: object = 1.0,
                        seed: object = "", vocab_size: int = 10_000, rhyme: object = DEFAULT_RHYME,
                        syllables: object = DEFAULT_SYLLABLES, real_words: object = DEFAULT_REAL_WORDS) -> LinesRequest:
    """Check a request for candidate lines as parse_request checks a song's."""
    text = parse_song_text(text)
    count = _whole(count, "count", 1, MAX_CANDIDATES)
    return LinesRequest(text, count, *_sampling(temperature, top_k, top_p, vocab_size), _seed(seed),
                        parse_form(rhyme, syllables, real_words))


def parse_continue(text: object, temperature: object, length: object, top_k: object = 0, top_p: object = 1.0,
                   seed: object = "", vocab_size: int = 10_000, end_with_song: object = True,
                   rhyme: object = DEFAULT_RHYME, syllables: object = DEFAULT_SYLLABLES,
                   real_words: object = DEFAULT_REAL_WORDS, takes: object = DEFAULT_TAKES) -> Request:
    """A song continued from the whole of ``text`` (its ``seed_line``), checked as parse_request checks a song."""
    text = parse_song_text(text)
    return replace(parse_request("", temperature, length, top_k, top_p, seed, vocab_size, end_with_song, rhyme,
                                 syllables, real_words, takes), seed_line=text)


def parse_song_text(value: object) -> str:
    """A song's text, of at most MAX_SONG_TEXT characters, with its line endings made "\\n"."""
    return parse_text(value, "the song's text", MAX_SONG_TEXT).replace("\r\n", "\n").replace("\r", "\n")


def song_lines(text: str) -> list[tuple[int, int]]:
    """Where each line of a song's words is in its text, (start, end), its line break not included:
    a blank line (or one of spaces) is a break between stanzas, not a line."""
    lines, start = [], 0
    for line in text.split("\n"):
        if line.strip():
            lines.append((start, start + len(line)))
        start += len(line) + 1
    return lines


def parse_line(value: object, text: str) -> int:
    """The number of a line of ``text`` (1 for the first, blank lines not counted)."""
    lines = len(song_lines(text))
    if not lines:
        raise InputError("the song has no line to rewrite yet: write one, or ask for the next line")
    try:
        return _whole(value, "the line", 1, lines)
    except InputError as e:
        raise InputError(f"{e}: the song has {lines} line{'s' * (lines > 1)}, not counting blank ones") from None


def parse_form(rhyme: object, syllables: object, real_words: object) -> FormSpec:
    """A song's form from the rhyme scheme (letters or a plain name), the syllables ("0", "8", "8,6")
    and the real-words switch."""
    try:
        scheme = parse_rhyme(parse_text(rhyme, "the rhyme scheme") if isinstance(rhyme, str) else rhyme)
    except FormError as e:
        raise InputError(f"{e}; got {show_value(rhyme)}") from None
    try:
        pattern = parse_syllables(parse_text(syllables, "syllables") if isinstance(syllables, str) else syllables)
    except FormError as e:
        raise InputError(f"{e}; got {show_value(syllables)}") from None
    return FormSpec(scheme, pattern, _switch(real_words, "real words"))


def parse_text(value: object, name: str, most: int = MAX_TEXT) -> str:
    """``value`` if it is text of at most ``most`` characters (None is blank); checked before any work."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{name} must be text, got {show_value(value)}")
    if len(value) > most:
        raise InputError(f"{name} must be at most {most:,} characters, got {len(value):,}")
    return value


def parse_look(text: object, window: object, context_length: int) -> tuple[str, int | None]:
    """The text to look inside at and the window to read (None: a whole context), as /alternatives,
    /attention and the page's own look-inside call take them."""
    text = parse_text(text, "the text before the character")
    return text, None if window is None else _whole(window, "the window", 1, context_length)


def show_value(value: object) -> str:
    """A caller's value in a message, as Python writes it (so that control and right-to-left
    characters show as escapes), cut to 40 characters."""
    return shorten(f"{value:g}" if isinstance(value, float) else repr(value))


def shorten(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[:most - 3] + "..."


# A number as a person writes it: ASCII digits, a point, an exponent. Python's int() and float() also
# read "1_000", "٣" (Arabic-Indic three), "nan" and "inf", which a person would not expect to be numbers.
_NUMERAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?", re.ASCII | re.IGNORECASE)


def _number(value: object, name: str, low: float, high: float) -> int | float:
    """``value`` if it is a number in [low, high]; an int stays an int, so a long seed keeps every digit."""
    if isinstance(value, str):
        text = parse_text(value, name).strip()
        if not _NUMERAL.fullmatch(text):
            raise InputError(f"{name} must be a number written with the digits 0-9, got {show_value(value)}")
        value = int(text) if text.lstrip("+-").isdigit() else float(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number, got {show_value(value)}")
    if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
        raise InputError(f"{name} must be between {low:g} and {high:g}, got {show_value(value)}")
    return value + 0.0 if isinstance(value, float) else value  # -0.0 + 0.0 is 0.0: no "temperature -0"


def _whole(value: object, name: str, low: int, high: int) -> int:
    number = _number(value, name, low, high)
    if isinstance(number, float):  # 300.0 is fine (JSON clients send it), 2.5 is not
        if not number.is_integer():
            raise InputError(f"{name} must be a whole number, got {number:g}")
        number = int(number)
    return number


def _switch(value: object, name: str) -> bool:
    if isinstance(value, str) and value.strip().lower() in SWITCH_WORDS:  # as a link writes it
        return SWITCH_WORDS[value.strip().lower()]
    if not isinstance(value, bool):
        raise InputError(f"{name} must be true or false, got {show_value(value)}")
    return value


def _seed(value: object) -> int:
    if value is None or (isinstance(value, str) and value.strip().lower() in RANDOM_SEED_WORDS):
        return secrets.randbelow(10**9)  # short enough to type back in
    try:
        return _whole(value, "seed", 0, MAX_SEED)
    except InputError:
        raise InputError(f"the seed must be a whole number from 0 to {MAX_SEED}, or blank for a new song; "
                         f"got {show_value(value)}") from None


# A song's link: the page's address with these query keys (and ``end=off`` when "End with the song" was
# off; ``rhyme``, ``syllables`` and ``words=on`` for a song with a form).
LINK_KEYS = ("line", "temperature", "length", "top_k", "top_p", "seed", "voice", "rhyme", "syllables", "words",
             "takes")


def song_settings(request: Request, voice: str | None = None) -> dict[str, str]:
    """Everything that wrote a song, by the link's keys, as text that reads back to the same song."""
    settings = {"line": request.seed_line, "temperature": repr(request.temperature), "length": str(request.length),
                "top_k": str(request.top_k or 0), "top_p": repr(request.top_p or 1.0)}
    if request.temperature > 0:  # at 0 the seed plays no part: naming one would say it did
        settings["seed"] = str(request.seed)
    if voice is not None:
        settings["voice"] = voice
    if not request.end_with_song:
        settings["end"] = "off"
    form = request.form
    settings["rhyme"] = form.rhyme or "none"
    settings["syllables"] = ",".join(map(str, form.syllables)) or "0"
    settings["words"] = "on" if form.real_words else "off"
    settings["takes"] = str(request.takes)
    return settings


def song_link(page: str, request: Request, voice: str | None = None) -> str | None:
    """A link to the page (its address, any query dropped) that writes this song again; None where it
    would be longer than MAX_LINK, as the page could not be sure to open it."""
    link = page.split("#")[0].split("?")[0] + "?" + urllib.parse.urlencode(song_settings(request, voice))
    return link if len(link) <= MAX_LINK else None


def link_query(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A link's query as a dict; InputError for a song's key given twice, as which one was meant is
    anyone's guess."""
    query: dict[str, str] = {}
    for key, value in pairs:
        if key in query and key in {*LINK_KEYS, "end"}:
            raise InputError(f"it gives {key} twice ({show_value(query[key])} and {show_value(value)})")
        query[key] = value
    return query


def read_link(query: Mapping[str, str], vocab_size: int) -> Request | None:
    """The song a link asks for, its missing keys at the page's defaults; None for a page opened
    without one. Raises InputError for a value that cannot be used (the voice is the caller's to check)."""
    if not query.keys() & {*LINK_KEYS, "end"}:
        return None
    return parse_request(query.get("line", ""), query.get("temperature", DEFAULT_TEMPERATURE),
                         query.get("length", DEFAULT_LENGTH), query.get("top_k", 0), query.get("top_p", DEFAULT_TOP_P),
                         query.get("seed", ""), vocab_size, query.get("end", True),
                         query.get("rhyme", DEFAULT_RHYME), query.get("syllables", DEFAULT_SYLLABLES),
                         query.get("words", DEFAULT_REAL_WORDS), query.get("takes", LINK_TAKES))


def keepsake(request: Request, song: str, voice: str | None = None, link: str | None = None) -> str:
    """A song as a text file: a short header that is enough to write it again, then the song."""
    header = ["LyricGPT wrote this song. These settings write it again, on the page or through /generate:"]
    # A first line of several lines is quoted (JSON), so that the header keeps one setting a line.
    header += [f"{key}: {json.dumps(value) if chr(10) in value else value}"
               for key, value in song_settings(request, voice).items()]
    if request.end_with_song:
        header.append("end: on")
    if link:
        header.append(f"link: {link}")
    return "\n".join(header) + "\n\n" + song + "\n"


def keepsake_name(request: Request) -> str:
    """A file name for the song: its first words and its seed (none at temperature 0)."""
    words = re.sub(r"[^a-z0-9]+", "-", request.seed_line.lower()).strip("-")[:40].strip("-") or "song"
    return f"{words}-seed-{request.seed}.txt" if request.temperature > 0 else f"{words}.txt"
