"""A song request: its settings checked for a person's mistakes, and the link and file that write it again."""

from __future__ import annotations

import json
import math
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from typing import Mapping

from .sampler import DEFAULT_TEMPERATURE, DEFAULT_TOP_P

MAX_LENGTH = 2000          # characters per song: bounds the work one request can ask for
MAX_TEMPERATURE = 2.0      # above this the samples are noise
MAX_SEED = 2**63 - 1
DEFAULT_LENGTH = 400  # the page's starting length
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


def parse_request(seed_line: object, temperature: object, length: object, top_k: object = 0,
                  top_p: object = 1.0, seed: object = "", vocab_size: int = 10_000,
                  end_with_song: object = True) -> Request:
    """Check every setting (API callers skip the sliders' limits); raise InputError saying what is wrong.

    ``top_k=0`` and ``top_p=1`` mean "off"; a blank seed (or "randomize") draws a fresh one.
    """
    if seed_line is None:
        seed_line = ""
    if not isinstance(seed_line, str):
        raise InputError(f"the seed line must be text, got {show_value(seed_line)}")
    temperature = float(_number(temperature, "temperature", 0.0, MAX_TEMPERATURE))
    length = _whole(length, "length", 1, MAX_LENGTH)
    top_k = _whole(top_k, "top-k", 0, vocab_size)
    top_p = float(_number(top_p, "top-p", 0.0, 1.0))
    if top_p == 0.0:
        raise InputError("top-p must be above 0 (1 turns it off)")
    return Request(seed_line, length, temperature, top_k or None, None if top_p == 1.0 else top_p,
                   _seed(seed), _switch(end_with_song, "end with the song"))


def show_value(value: object) -> str:
    text = f"{value:g}" if isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: object, name: str, low: float, high: float) -> int | float:
    """``value`` if it is a number in [low, high]; an int stays an int, so a long seed keeps every digit."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise InputError(f"{name} must be a number, got {show_value(value)}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number, got {show_value(value)}")
    if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
        raise InputError(f"{name} must be between {low:g} and {high:g}, got {show_value(value)}")
    return value


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


# A song's link: the page's address with these query keys (and ``end=off`` when "End with the song" was off).
LINK_KEYS = ("line", "temperature", "length", "top_k", "top_p", "seed", "voice")


def song_settings(request: Request, voice: str | None = None) -> dict[str, str]:
    """Everything that wrote a song, by the link's keys, as text that reads back to the same song."""
    settings = {"line": request.seed_line, "temperature": repr(request.temperature), "length": str(request.length),
                "top_k": str(request.top_k or 0), "top_p": repr(request.top_p or 1.0), "seed": str(request.seed)}
    if voice is not None:
        settings["voice"] = voice
    if not request.end_with_song:
        settings["end"] = "off"
    return settings


def song_link(page: str, request: Request, voice: str | None = None) -> str:
    """A link to the page (its address, any query dropped) that writes this song again."""
    return page.split("#")[0].split("?")[0] + "?" + urllib.parse.urlencode(song_settings(request, voice))


def read_link(query: Mapping[str, str], vocab_size: int) -> Request | None:
    """The song a link asks for, its missing keys at the page's defaults; None for a page opened
    without one. Raises InputError for a value that cannot be used (the voice is the caller's to check)."""
    if not query.keys() & {*LINK_KEYS, "end"}:
        return None
    return parse_request(query.get("line", ""), query.get("temperature", DEFAULT_TEMPERATURE),
                         query.get("length", DEFAULT_LENGTH), query.get("top_k", 0), query.get("top_p", DEFAULT_TOP_P),
                         query.get("seed", ""), vocab_size, query.get("end", True))


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
    """A file name for the song: its first words and its seed."""
    words = re.sub(r"[^a-z0-9]+", "-", request.seed_line.lower()).strip("-")[:40].strip("-") or "song"
    return f"{words}-seed-{request.seed}.txt"
