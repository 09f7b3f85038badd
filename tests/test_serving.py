"""lyricgpt.serving: every request setting checked with a clear message, the song stream pinned against
the sampler itself, the colour view's HTML, and model loading that falls back instead of failing."""

from __future__ import annotations

import html
import itertools
import logging
import math
import re
import shutil
import threading
import time
import urllib.parse
from html.parser import HTMLParser
from typing import Callable

import pytest

from hub_server import StandInHub, point_client_at, refused_url
from lyricgpt import serving
from lyricgpt.data import SONG_BREAK
from lyricgpt.engine import Engine
from lyricgpt.form import FormSpec
from lyricgpt.sampler import DEFAULT_TEMPERATURE, MIN_SONG_CHARS, Step
from lyricgpt.serving import UPDATE_EVERY_S, load_for_serving, prob_class, public_message, seed_notes, stream_song
from lyricgpt.song_request import (DEFAULT_LENGTH, DEFAULT_TAKES, LINK_KEYS, LINK_TAKES, MAX_LENGTH, MAX_LINK, MAX_SEED, MAX_TEMPERATURE, MAX_TEXT,
                                   InputError, Request, keepsake, keepsake_name, link_query, parse_look, parse_request,
                                   read_link, song_link)


def request(**changes) -> Request:
    values = dict(seed_line="I walked out", temperature=0.8, length=40, top_k=0, top_p=1.0, seed=7)
    values.update(changes)
    return parse_request(**values, vocab_size=66)


# --- checking requests -------------------------------------------------------------------------

def test_valid_settings_are_parsed_and_off_values_mean_off():
    r = request(length=300.0, temperature="0.5", top_k=5, top_p=0.9, seed=" 42 ")
    assert r == Request("I walked out", 300, 0.5, 5, 0.9, 42)
    r = request(top_k=0, top_p=1, seed=0)
    assert (r.top_k, r.top_p, r.seed) == (None, None, 0)
    assert request(seed=MAX_SEED).seed == request(seed=str(MAX_SEED)).seed == MAX_SEED  # not rounded via float
    assert request(seed=2**53 + 1).seed == 2**53 + 1
    assert request(seed_line=None).seed_line == ""


@pytest.mark.parametrize("changes", [
    dict(length=1), dict(length=MAX_LENGTH), dict(temperature=0), dict(temperature=MAX_TEMPERATURE),
    dict(top_k=66), dict(top_p=0.01), dict(seed=MAX_SEED), dict(seed_line="x" * MAX_TEXT)])
def test_limits_themselves_are_accepted(changes):
    request(**changes)


@pytest.mark.parametrize("blank", ["", "  ", "randomize", "Randomize", "random", None])
def test_blank_seed_draws_a_fresh_one_each_time(blank):
    seeds = {request(seed=blank).seed for _ in range(5)}
    assert len(seeds) > 1 and all(0 <= s < 10**9 for s in seeds)


@pytest.mark.parametrize("name, value", [
    ("length", 0), ("length", -1), ("length", 2.5), ("length", 10**9), ("length", 1e9), ("length", "1e9"),
    ("length", MAX_LENGTH + 1), ("length", math.nan), ("length", math.inf), ("length", "many"),
    ("length", True), ("length", None),
    ("temperature", -0.1), ("temperature", MAX_TEMPERATURE + 0.01), ("temperature", 1e308),
    ("temperature", math.nan), ("temperature", -math.inf), ("temperature", "hot"), ("temperature", [1]),
    ("top_k", -1), ("top_k", 67), ("top_k", 1.5), ("top_k", math.nan),
    ("top_p", 0), ("top_p", -0.5), ("top_p", 1.01), ("top_p", math.nan),
    ("seed", -1), ("seed", MAX_SEED + 1), ("seed", str(10**400)), ("seed", 10**400), ("seed", 1.5),
    ("seed", "abc"), ("seed", math.nan), ("seed", [3]),
    ("seed_line", 5), ("seed_line", ["a"]),
    # issue 36: a first line over the limit (checked before any work), and numbers a person would not write
    ("seed_line", "x" * (MAX_TEXT + 1)), ("seed_line", "1" * 4301), ("length", "9" * (MAX_TEXT + 1)),
    ("length", "1_000"), ("length", "\u0663"), ("top_k", "\u0663"), ("seed", "\u0663"), ("temperature", "nan"),
    ("temperature", "inf"), ("seed", "0x10"),
])
def test_bad_settings_are_refused_with_a_message_naming_them(name, value):
    with pytest.raises(InputError) as e:
        request(**{name: value})
    message = str(e.value)
    assert name.replace("_", "-").replace("seed-line", "seed line") in message
    assert len(message) < 200


def test_minus_zero_is_zero_and_a_number_may_have_a_sign_and_an_exponent():
    r = request(temperature=-0.0, length="+3e1", top_p=" .5 ")
    assert math.copysign(1, r.temperature) == 1 and f"{r.temperature:g}" == "0"  # no "temperature -0"
    assert (r.length, r.top_p) == (30, 0.5)


@pytest.mark.parametrize("text, window, message", [
    (5, None, "the text before the character must be text, got 5"), ([], 3, "must be text, got []"),
    ("x" * (MAX_TEXT + 1), None, f"must be at most {MAX_TEXT:,} characters, got {MAX_TEXT + 1:,}"),
    ("la", "abc", "the window must be a number"), ("la", 2.9, "the window must be a whole number, got 2.9"),
    ("la", True, "the window must be a number, got True"), ("la", 33, "the window must be between 1 and 32, got 33"),
    ("la", [], "the window must be a number, got []")])
def test_a_look_inside_gets_a_message_for_each_bad_argument(text, window, message):
    with pytest.raises(InputError, match=re.escape(message)):
        parse_look(text, window, 32)


def test_a_look_inside_takes_text_and_a_window_as_the_settings_do():
    assert parse_look(None, None, 32) == ("", None) and parse_look("la", "5", 32) == ("la", 5)


# --- the song stream ---------------------------------------------------------------------------

class SpanReader(HTMLParser):
    """Collects (class, text) of each span: what a browser shows of the colour view."""

    def __init__(self):
        super().__init__()
        self.spans: list[list[str]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "span":
            self.spans.append([dict(attrs)["class"], ""])

    def handle_data(self, data):
        self.spans[-1][1] += data


def ticking(step_s: float) -> Callable[[], float]:
    """A clock that moves ``step_s`` seconds at each reading: the stream's timing, made exact."""
    ticks = itertools.count()
    return lambda: next(ticks) * step_s


def test_stream_is_the_sampler_character_by_character(tiny_lm):
    r = request(seed_line="Hello darkness", length=60, temperature=1.0, top_k=20, top_p=0.95, seed=3, end_with_song=False)
    updates = list(stream_song(tiny_lm, r, clock=ticking(0.1)))  # slower than the update rate
    expected = "".join(tiny_lm.stream(r.seed_line, 60, 1.0, 20, 0.95, 3, form=FormSpec()))
    prompt = tiny_lm.read_prompt(r.seed_line).text
    assert len(expected) > 60 and expected.endswith("\n") and "\n" not in expected[60:-1]  # it finished its line
    assert [u.lyric for u in updates] == [prompt + expected[:i] for i in range(1, len(expected) + 1)]
    assert updates[-1].status.startswith(f"{len(expected)} characters (60, then to the end of the line) at 10 chars/s")
    assert "seed 3" in updates[-1].status


def test_fast_characters_are_sent_in_batches_no_more_often_than_the_update_rate(tiny_lm):
    r = request(length=60, seed=3, end_with_song=False)
    updates = [u.lyric for u in stream_song(tiny_lm, r, clock=ticking(UPDATE_EVERY_S / 3.9))]
    prompt = tiny_lm.read_prompt(r.seed_line).text
    assert updates[0] == prompt + updates[-1][len(prompt)]  # the first character is sent at once
    assert updates[-1] == prompt + "".join(tiny_lm.stream(r.seed_line, 60, r.temperature, seed=3, form=FormSpec()))
    assert all(later.startswith(earlier) for earlier, later in zip(updates, updates[1:]))
    assert set([len(b) - len(a) for a, b in zip(updates, updates[1:])][:-1]) == {4}  # 4 characters an update


def test_colour_view_shows_each_new_character_with_its_probability_class(tiny_lm):
    seed_line = 'a "quoted" & <odd> line'
    r = request(seed_line=seed_line, length=80, temperature=1.5, seed=11, end_with_song=False)
    last = list(stream_song(tiny_lm, r))[-1]
    reader = SpanReader()
    reader.feed(last.colours)
    seed_text = tiny_lm.read_prompt(seed_line).text
    seed, new = reader.spans[:len(seed_text)], reader.spans[len(seed_text):]
    assert seed == [["seed", c] for c in seed_text]  # one span a character, so the page can shade any
    probs = list(tiny_lm.stream_with_probs(seed_line, 80, 1.5, seed=11, form=FormSpec()))
    assert new == [[prob_class(p), c] for c, p in probs]
    assert "".join(text for _, text in reader.spans) == last.lyric  # escaped, so nothing lost or injected


@pytest.mark.parametrize("colour", [True, False])
def test_each_update_carries_only_its_new_part_marked_with_what_came_before(tiny_lm, colour):
    updates = list(stream_song(tiny_lm, request(length=60, temperature=1.2, seed=5), colour=colour,
                               clock=ticking(UPDATE_EVERY_S / 3.9)))
    marks = [re.match(r"<!--(\d+)-->", u.added) for u in updates]
    assert all(marks) and marks[0].group(1) == "0"  # 0: a new song, its first line included
    parts = [u.added[m.end():] for u, m in zip(updates, marks)]
    assert ["".join(parts[:i + 1]) for i in range(len(parts))] == [u.colours for u in updates]  # appended, they are the song
    seed = len(tiny_lm.read_prompt("I walked out").text)
    assert [int(m.group(1)) for m in marks[1:]] == [len(u.lyric) - seed for u in updates[:-1]]


def test_colour_view_can_be_switched_off_and_then_shows_the_plain_song(tiny_lm):
    for update in stream_song(tiny_lm, request(seed_line="a <b> & c", length=10), colour=False):
        reader = SpanReader()
        reader.feed(update.colours)
        assert [cls for cls, _ in reader.spans] == ["seed"] * len(tiny_lm.read_prompt("a <b> & c").text)
        assert html.unescape(re.sub("<[^>]+>", "", update.colours)) == update.lyric


@pytest.mark.parametrize("prob, cls", [(1.0, "p4"), (0.9, "p4"), (0.899, "p3"), (0.5, "p3"), (0.2, "p2"),
                                       (0.05, "p1"), (0.0499, "p0"), (0.0, "p0")])
def test_probability_buckets(prob, cls):
    assert prob_class(prob) == cls
    step = Step(token=3, prob=prob, sampled_prob=0.25, top=((3, prob), (7, 0.0125)), window=17)
    permille = round(prob * 1000)
    assert serving.coloured("<", step) == (f'<span class="{cls}" title="{prob:.0%}" data-top="3 {permille},7 12" '
                                           f'data-prob="{permille}" data-drawn="250" data-window="17">'
                                           f'{html.escape("<")}</span>')


def test_the_engine_streams_the_song_the_sampler_writes_alone(tiny_lm):
    engine = Engine(tiny_lm.model, max_batch=4, max_waiting=4, chars=tiny_lm.tokenizer.chars)
    try:
        for changes in [dict(temperature=0), dict(temperature=1.2, top_k=9, seed=5), dict(top_p=0.8, seed=6)]:
            r = request(seed_line="Hello darkness", length=90, **changes)
            with_engine = list(stream_song(tiny_lm, r, engine=engine))
            alone = list(stream_song(tiny_lm, r))[-1]
            assert (with_engine[-1].lyric, with_engine[-1].colours) == (alone.lyric, alone.colours)
    finally:
        engine.close()


def test_a_closed_stream_frees_its_place_in_the_engine(tiny_lm):
    engine = Engine(tiny_lm.model, max_batch=1, max_waiting=0, chars=tiny_lm.tokenizer.chars)
    try:
        stream = stream_song(tiny_lm, request(length=2000), engine=engine)
        next(stream)
        stream.close()  # what gradio does when the browser tab closes or the job is cancelled
        start = time.monotonic()
        assert len(list(stream_song(tiny_lm, request(length=5), engine=engine))[-1].lyric) > 5
        assert time.monotonic() - start < 10
    finally:
        engine.close()


def test_status_names_every_setting_that_shapes_the_song(tiny_lm):
    status = list(stream_song(tiny_lm, request(length=5, temperature=0.7, top_k=12, top_p=0.9, seed=4)))[-1].status
    assert "temperature 0.7" in status and "top-k 12" in status and "top-p 0.9" in status and "seed 4" in status
    status = list(stream_song(tiny_lm, request(length=5)))[-1].status
    assert "top-k off" in status and "top-p off" in status
    status = list(stream_song(tiny_lm, request(length=5, temperature=0, seed=4)))[-1].status
    assert "temperature 0 " in status and "seed" not in status  # greedy: the seed plays no part


def test_greedy_is_deterministic_and_seeds_reproduce(tiny_lm):
    def song(**changes):
        return list(stream_song(tiny_lm, request(length=50, **changes)))[-1].lyric

    assert song(temperature=0, seed=1) == song(temperature=0, seed=2)
    assert song(temperature=1, seed=5) == song(temperature=1, seed=5)
    assert song(temperature=1, seed=5) != song(temperature=1, seed=6)


def test_numbers_are_read_as_words_by_a_model_that_knows_no_digits_and_the_writer_is_told(tiny_lm):
    assert not any(digit in tiny_lm.tokenizer for digit in "0123456789")  # the corpus has none
    last = list(stream_song(tiny_lm, request(seed_line="At 3, \u00bd past 66", length=5)))[-1]
    assert last.lyric.startswith("At three, a half past sixty-six")  # within the tiny model's 32 characters
    notes = seed_notes(tiny_lm, "At 3, \u00bd past 66")
    assert notes == ["numbers written as words, as the model has never read a digit: "
                     "3 as 'three', \u00bd as 'a half', 66 as 'sixty-six'"]
    assert notes[0] in last.status


def test_what_the_model_cannot_read_is_reported(tiny_lm):
    assert seed_notes(tiny_lm, "plain words") == []
    unknown = seed_notes(tiny_lm, "caf\u00e9 \U0001f3b5\U0001f3b5 \u2603")  # the accent folds; the rest cannot
    assert len(unknown) == 1 and "3 character(s)" in unknown[0] and "'\U0001f3b5' x2" in unknown[0]
    long_line = seed_notes(tiny_lm, "la " * (MAX_TEXT // 3))
    assert len(long_line) == 1 and f"last {tiny_lm.context_length} characters" in long_line[0]
    digits = seed_notes(tiny_lm, "1" * MAX_TEXT)  # a number too long to say is read digit by digit, and cut short here
    assert "1111111111" in digits[0] and "one one one" in digits[0] and len(digits[0]) < 300
    r = request(seed_line="\U0001f3b5 " + "la " * (MAX_TEXT // 3 - 1), length=5, end_with_song=False)
    last = list(stream_song(tiny_lm, r))[-1]
    written = last.lyric[tiny_lm.context_length:]
    assert last.lyric[:tiny_lm.context_length] == tiny_lm.read_prompt(r.seed_line).text
    assert len(written) >= 5 and written.endswith("\n")  # 5 characters, then the rest of the line
    assert "does not know" in last.status and "window" in last.status


def test_stop_switch_ends_the_song_after_the_character_in_hand(tiny_lm):
    switch = threading.Event()
    updates = []
    for update in stream_song(tiny_lm, request(length=500), stop=switch, clock=ticking(0.1)):
        updates.append(update)
        if len(updates) == 5:
            switch.set()
    assert len(updates) == 6 and updates[-1].status.startswith("6 of 500 characters")
    assert updates[-1].status.endswith(" · stopped")


def test_time_limit_ends_a_song_early_and_says_so(tiny_lm):
    updates = list(stream_song(tiny_lm, request(length=500), clock=ticking(7.0)))
    assert len(updates) == 9 and updates[-1].status.startswith("9 of 500 characters")
    assert updates[-1].status.endswith("stopped at 60 s, the time limit")


def test_a_song_ends_where_the_model_ends_it_and_its_end_is_not_shown(ending_lm):
    r = request(seed_line="Hello", length=MAX_LENGTH, temperature=1.0, seed=3)
    written = "".join(ending_lm.stream("Hello", MAX_LENGTH, 1.0, seed=3, end_with_song=True))
    assert written.endswith(SONG_BREAK) and MIN_SONG_CHARS < len(written) < MAX_LENGTH
    song = written[:-len(SONG_BREAK)]
    engine = Engine(ending_lm.model, max_batch=2, max_waiting=0, chars=ending_lm.tokenizer.chars)
    try:
        for updates in (list(stream_song(ending_lm, r, clock=ticking(0.001))), list(stream_song(ending_lm, r, engine=engine))):
            lyrics = [u.lyric for u in updates]
            assert lyrics[-1] == "Hello" + song
            assert all(later.startswith(earlier) for earlier, later in zip(lyrics, lyrics[1:]))  # it only grows
            assert not any(lyric.endswith("\n") for lyric in lyrics)  # a line break shows with what follows it
            assert updates[-1].status.startswith(f"{len(song)} of {MAX_LENGTH} characters")
            assert updates[-1].status.endswith(" · the model ended the song")
            assert html.unescape(re.sub("<[^>]+>", "", updates[-1].colours)) == lyrics[-1]
    finally:
        engine.close()


@pytest.mark.parametrize("colour", [True, False])
def test_each_line_of_a_rhymed_song_shows_its_letter_the_last_one_too(ending_lm, colour):
    # ending_lm ends its songs soon: the line break that begins the song's end is never shown, but
    # the line before it is a line of the song all the same.
    r = request(seed_line="Hello", length=MAX_LENGTH, temperature=1.0, seed=3, rhyme="ABAB", real_words=True)
    last = list(stream_song(ending_lm, r, colour=colour))[-1]
    assert " · the model ended the song" in last.status
    letters = re.findall(r'<span class="rhyme-letter" data-letter="(\w)"></span>', last.colours)
    lines = [line for line in last.lyric.split("\n") if line]
    assert len(lines) >= 4 and "".join(letters) == ("ABAB" * len(lines))[:len(lines)]
    assert html.unescape(re.sub("<[^>]+>", "", last.colours)) == last.lyric  # a letter is no part of the text


def test_with_the_end_switch_off_a_song_writes_on_to_its_length(ending_lm):
    r = request(seed_line="Hello", length=400, temperature=1.0, seed=3, end_with_song=False)
    last = list(stream_song(ending_lm, r))[-1]
    written = "".join(ending_lm.stream("Hello", 400, 1.0, seed=3, form=FormSpec()))
    assert last.lyric == "Hello" + written and written.endswith("\n")
    assert SONG_BREAK in last.lyric  # where the song would have ended, and another begins
    assert last.status.startswith(f"{len(written)} characters (400, then to the end of the line)")
    assert last.status.endswith(" · reached the length")


@pytest.mark.parametrize("value, expected", [(True, True), (False, False), ("off", False), ("ON", True), ("0", False)])
def test_the_end_switch_takes_true_false_and_a_links_words(value, expected):
    assert request(end_with_song=value).end_with_song is expected


@pytest.mark.parametrize("value", ["maybe", 1, None, 0.5])
def test_a_bad_end_switch_gets_a_message(value):
    with pytest.raises(InputError, match="end with the song must be true or false"):
        request(end_with_song=value)


# --- a song to keep: its link and its file ------------------------------------------------------

def test_a_songs_link_reads_back_to_the_same_song():
    r = request(seed_line="Over the hills\nand far away & back?", temperature=0.123456789, length=321, top_k=7,
                top_p=0.85, seed=2**40 + 1)
    link = song_link("http://example.org/lyrics/?old=1#x", r, "Kipling")
    assert link.startswith("http://example.org/lyrics/?line=Over+the+hills%0Aand+far+away+%26+back%3F&")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))
    assert set(query) == set(LINK_KEYS) and query["voice"] == "Kipling"
    assert read_link(query, 66) == r
    off = request(end_with_song=False)
    assert read_link(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(song_link("http://h/", off)).query)), 66) == off


@pytest.mark.parametrize("takes", [1, 2, DEFAULT_TAKES, 8])
def test_a_links_takes_read_back_and_a_link_from_before_takes_reads_as_one(takes):
    r = request(rhyme="AABB", syllables="8", real_words=True, takes=takes)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(song_link("http://h/", r, "Folk")).query))
    assert query["takes"] == str(takes) and read_link(query, 66) == r
    del query["takes"]  # as every link was written before takes were
    assert read_link(query, 66).takes == LINK_TAKES == 1


def test_a_link_without_keys_is_no_song_and_missing_keys_take_the_pages_defaults():
    assert read_link({}, 66) is None and read_link({"__theme": "dark"}, 66) is None
    r = read_link({"line": "Hi"}, 66)
    assert (r.seed_line, r.temperature, r.length, r.top_k, r.top_p, r.end_with_song, r.takes) == (
        "Hi", DEFAULT_TEMPERATURE, DEFAULT_LENGTH, None, None, True, LINK_TAKES)


@pytest.mark.parametrize("query, message", [({"temperature": "hot"}, "temperature must be a number"),
                                            ({"length": "0"}, "length must be between 1"),
                                            ({"seed": "x"}, "the seed must be a whole number"),
                                            ({"end": "perhaps"}, "end with the song must be true or false"),
                                            ({"takes": "0"}, "takes must be between 1 and 8, got 0"),
                                            ({"takes": "9"}, "takes must be between 1 and 8, got 9"),
                                            ({"takes": "2.5"}, "takes must be a whole number, got 2.5"),
                                            ({"takes": "abc"}, "takes must be a number written with the digits "
                                                               "0-9, got 'abc'")])
def test_a_malformed_link_gets_the_usual_message(query, message):
    with pytest.raises(InputError, match=message):
        read_link({"line": "Hi", **query}, 66)


def test_a_link_that_gives_a_setting_twice_is_refused_as_no_one_can_tell_which_was_meant():
    with pytest.raises(InputError, match=r"it gives seed twice \('1' and '2'\)"):
        link_query([("line", "Hi"), ("seed", "1"), ("seed", "2")])
    assert link_query([("__theme", "dark"), ("__theme", "light"), ("line", "Hi")]) == {"__theme": "light", "line": "Hi"}


def test_no_link_is_written_that_the_page_could_not_open():
    # The longest first line of the characters that take the most room in a link: it fits.
    r = request(seed_line="\U0001f3b5" * MAX_TEXT, top_p=0.123456789, seed=MAX_SEED, end_with_song=False)
    link = song_link("https://huggingface.co/spaces/someone/lyricgpt", r, "v" * 200)
    assert link is not None and len(link) <= MAX_LINK
    assert read_link(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query)), 66) == r
    assert song_link("http://h/" + "p" * MAX_LINK, r) is None  # an address that leaves no room


def test_the_file_holds_a_header_that_writes_the_song_again_then_the_song():
    r = request(seed_line="Two\nlines", temperature=0.7, length=500, seed=99)
    text = keepsake(r, "Two\nlines and a song", "Folk", "http://h/?line=x")
    header, song = text.split("\n\n", 1)
    fields = dict(line.split(": ", 1) for line in header.splitlines()[1:])
    assert fields == {"line": '"Two\\nlines"', "temperature": "0.7", "length": "500", "top_k": "0", "top_p": "1.0",
                      "seed": "99", "voice": "Folk", "rhyme": "none", "syllables": "0", "words": "off", "takes": "4",
                      "end": "on", "link": "http://h/?line=x"}
    assert song == "Two\nlines and a song\n"
    assert keepsake_name(r) == "two-lines-seed-99.txt" and keepsake_name(request(seed_line="", seed=1)) == "song-seed-1.txt"


def test_at_temperature_0_neither_the_link_nor_the_file_names_a_seed():
    r = request(temperature=0, seed=99)  # every seed writes the same song: the status names none either
    link = song_link("http://h/", r, "Folk")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))
    assert "seed" not in query and read_link(query, 66).temperature == 0
    header = keepsake(r, "I walked out and on", "Folk", link).split("\n\n", 1)[0]
    assert "seed" not in header and keepsake_name(r) == "i-walked-out.txt"


# --- loading the model -------------------------------------------------------------------------

def test_default_is_the_bundled_model(tiny_model_dir):
    served = load_for_serving(None, None, tiny_model_dir, timeout=2)
    assert served.fallback_reason is None and "from the bundled model" in served.describe()


def test_a_model_folder_is_served_and_named_without_server_paths(tiny_model_dir, tmp_path, monkeypatch):
    folder = tmp_path / "runs" / "mine" / "model"
    shutil.copytree(tiny_model_dir, folder)
    served = load_for_serving(str(folder), None, tmp_path / "no-bundled-model", timeout=2)
    assert served.fallback_reason is None and served.describe().endswith("from folder .../runs/mine/model")
    monkeypatch.chdir(tmp_path)
    for source in ("runs/mine/model", str(folder)):  # as typed, or absolute inside the working folder
        assert load_for_serving(source, None, tmp_path, timeout=2).describe().endswith("from folder runs/mine/model")


def broken_copies(tiny_model_dir, tmp_path):
    corrupted = tmp_path / "corrupted"
    shutil.copytree(tiny_model_dir, corrupted)
    weights = bytearray((corrupted / "model.safetensors").read_bytes())
    weights[-100] ^= 0xFF
    (corrupted / "model.safetensors").write_bytes(bytes(weights))
    bad_config = tmp_path / "bad-config"
    shutil.copytree(tiny_model_dir, bad_config)
    (bad_config / "config.json").write_text('{"architecture": "gpt", "n_layer": "two"')
    missing = tmp_path / "missing"
    missing.mkdir()
    return [(corrupted, "corrupted"), (bad_config, "not valid JSON"), (missing, "no config.json"),
            (tmp_path / "no-such-folder", "neither a model folder nor a Hub repo id")]


def test_a_broken_model_falls_back_to_the_bundled_one_and_logs_why(tiny_model_dir, tmp_path, caplog):
    for folder, reason in broken_copies(tiny_model_dir, tmp_path):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lyricgpt.serving"):
            served = load_for_serving(str(folder), None, tiny_model_dir, timeout=2)
        assert served.source == "the bundled model"
        assert reason in served.fallback_reason and "Fell back to the bundled model" in served.describe()
        assert str(tmp_path) not in served.describe()  # the page gets no server paths ...
        assert reason in caplog.text and str(folder) in caplog.text  # ... the log gets everything


def test_a_broken_bundled_model_is_not_hidden(tmp_path):
    with pytest.raises(ValueError, match="neither a model folder"):
        load_for_serving(None, None, tmp_path / "gone", timeout=2)


def test_model_line_shows_names_and_reasons_as_written(tiny_lm):
    line = serving.LoadedModel(tiny_lm, "folder my_model", "no *.png in [it]").describe()
    assert line.endswith(r"from folder my\_model. Fell back to the bundled model because no \*.png in \[it\]")


def test_public_message_shortens_server_paths_only():
    assert public_message("/srv/app/models/x/config.json is bad") == "config.json is bad"
    kept = "downloading user/repo: http://127.0.0.1:8000/api/models/user/repo failed"
    assert public_message(kept) == kept


# --- the Hub, in process (the app-level checks are in test_app_hub.py) ---------------------------

def test_a_hub_repo_is_served_and_a_failing_or_silent_hub_is_given_up_on_in_time(tiny_model_dir, tmp_path, monkeypatch):
    with StandInHub() as hub:
        hub.add_model("singer/tiny", tiny_model_dir)
        point_client_at(monkeypatch, hub.url, tmp_path / "home")
        served = load_for_serving("singer/tiny", None, tmp_path / "no-bundled-model", timeout=10)
        assert served.fallback_reason is None and served.describe().endswith("from Hub repo singer/tiny")

        hub.mode = "error"
        served = load_for_serving("singer/other", None, tiny_model_dir, timeout=10)
        assert served.source == "the bundled model" and "HTTP 500" in served.fallback_reason

        hub.mode = "hang"
        start = time.monotonic()
        served = load_for_serving("singer/other", "main", tiny_model_dir, timeout=1)
        assert time.monotonic() - start < 15  # bounded: a silent Hub otherwise hangs for ever
        assert "did not answer within 1 s" in served.fallback_reason
        assert "Hub repo singer/other at revision main could not be loaded" in served.fallback_reason


def test_a_refused_connection_falls_back_at_once(tiny_model_dir, tmp_path, monkeypatch):
    point_client_at(monkeypatch, refused_url(), tmp_path / "home")
    start = time.monotonic()
    served = load_for_serving("singer/tiny", None, tiny_model_dir, timeout=10)
    assert time.monotonic() - start < 15
    assert served.source == "the bundled model" and "singer/tiny" in served.fallback_reason
