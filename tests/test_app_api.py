"""app.py's /generate API, driven with gradio_client against a real server process.

Pins: one public endpoint with the documented parameters; the lyric streams (the first character
at once, then in updates of several) and equals what the sampler writes in-process with
the same settings, a song's form too (rhyme, syllables, real words), and with several takes of each
line the song lyricgpt.takes writes alone; every bad setting gets a
message (no traceback, no server path) and the app keeps serving; concurrent streams all finish; the bundled model is served when LYRICGPT_MODEL is unset;
a second voice sings, looks inside and compares with its own bigram through the same endpoints.
"""

from __future__ import annotations

import http.client
import ast
import json
import re
import subprocess
import sys
import threading
import time

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from conftest import BUNDLED_MODEL, ROOT, readme_example
from live_app import running_app
from lyricgpt import load_model
from lyricgpt.data import SONG_BREAK
from lyricgpt.explain import next_char_odds
from lyricgpt.request_limits import MAX_BODY, MAX_URL
from lyricgpt.form import FormSpec, parse_rhyme, parse_syllables
from lyricgpt.sampler import SamplingSettings
from lyricgpt.serving import stream_song
from lyricgpt.song_request import (DEFAULT_REAL_WORDS, DEFAULT_RHYME, DEFAULT_SYLLABLES, DEFAULT_TAKES, MAX_LINK,
                                   MAX_TEXT, parse_request)
from lyricgpt.takes import write_song

SEED_LINE = "Hello darkness, my old friend"


@pytest.fixture(scope="module")
def app(subprocess_env, tiny_model_dir, second_voice_dir):
    with running_app(subprocess_env, LYRICGPT_MODEL=f"{tiny_model_dir},{second_voice_dir}") as app:
        yield app


@pytest.fixture(scope="module")
def client(app) -> Client:
    return Client(app.url, verbose=False)


def stream(client: Client, *args, **kwargs) -> list[tuple[str, str, str]]:
    """Every update of one /generate call: (lyric, colour HTML, status)."""
    return [tuple(update) for update in client.submit(*args, **kwargs, api_name="/generate")]


def reference(lm, seed_line: str, length: int, temperature: float, top_k=None, top_p=None, seed=None,
              form: FormSpec = FormSpec()) -> str:
    """What the app must answer: the seed line as the model reads it, then the sampler's characters
    (with "End with the song" on, as by default: to the song's end, which is not shown), in the song's
    ``form`` (a free song's too keeps out of loops)."""
    written = "".join(lm.stream(seed_line, length, temperature, top_k, top_p, seed, end_with_song=True, form=form))
    return lm.read_prompt(seed_line).text + written.removesuffix(SONG_BREAK)


def test_public_endpoints_with_the_settings_as_parameters(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert sorted(api["named_endpoints"]) == ["/alternatives", "/attention", "/generate", "/lines", "/rewrite"]
    assert not api["unnamed_endpoints"]
    params = api["named_endpoints"]["/generate"]["parameters"]
    assert [p["parameter_name"] for p in params[:3]] == ["seed_line", "temperature", "length"]
    assert all(p["parameter_has_default"] for p in params[3:])
    # New ones come last, so that a caller's positional values keep their meaning.
    named = {p["parameter_name"]: p["parameter_default"] for p in params}
    assert list(named)[-6:] == ["voice", "end_with_song", "rhyme", "syllables", "real_words", "takes"]
    assert named["voice"].endswith("tiny-model0") and named["end_with_song"] is True
    assert (named["rhyme"], named["syllables"], named["real_words"], named["takes"]) == (
        DEFAULT_RHYME, DEFAULT_SYLLABLES, DEFAULT_REAL_WORDS, DEFAULT_TAKES)


def test_lyric_streams_as_the_sampler_writes_it(client, tiny_lm):
    lyrics = [lyric for lyric, _, _ in stream(client, SEED_LINE, 1.0, 2000, seed="9")]
    assert lyrics[0] == SEED_LINE + lyrics[-1][len(SEED_LINE)]  # the first character comes on its own
    assert len(lyrics) >= 10  # then as many updates as a screen can show (the tiny model is fast)
    assert all(later.startswith(earlier) and len(later) > len(earlier) for earlier, later in zip(lyrics, lyrics[1:]))
    assert lyrics[-1] == reference(tiny_lm, SEED_LINE, 2000, 1.0, seed=9)


@pytest.mark.parametrize("temperature, length, top_k, top_p, seed", [
    (0.0, 1, 0, 1.0, 0), (0.7, 37, 0, 1.0, 12345), (1.3, 300, 5, 1.0, 1), (1.0, 120, 0, 0.8, 2**40),
    (2.0, 64, 10, 0.5, 99)])
def test_settings_are_respected(client, tiny_lm, temperature, length, top_k, top_p, seed):
    lyric, _, status = stream(client, SEED_LINE, temperature, length, top_k, top_p, str(seed))[-1]
    assert lyric == reference(tiny_lm, SEED_LINE, length, temperature, top_k or None,
                              None if top_p == 1.0 else top_p, seed)
    written = len(lyric) - len(SEED_LINE)  # past the length to the end of the verse (every song has a form)
    assert status.startswith(f"{written} of {length} characters" if written <= length else
                             f"{written} characters ({length}, then to the end of the verse)")
    assert (f"seed {seed}" in status) == (temperature > 0)  # greedy: the seed plays no part, so none is named


def test_greedy_ignores_the_seed_and_seeds_reproduce(client, tiny_lm):
    def song(temperature, seed):
        return client.predict(SEED_LINE, temperature, 80, seed=seed, api_name="/generate")[0]

    assert song(0, "1") == song(0, "randomize") == reference(tiny_lm, SEED_LINE, 80, 0.0)
    assert song(1.0, "5") == song(1.0, "5") != song(1.0, "6")
    assert song(1.0, "") != song(1.0, "")  # a blank seed writes a new song (equal: odds ~66^-80)


def test_worst_seed_lines(client, tiny_lm):
    lyric, _, _ = stream(client, "", 0.8, 25, seed="4")[-1]
    assert lyric == reference(tiny_lm, "", 25, 0.8, seed=4) and len(lyric) >= 25  # then to the end of the line
    huge = "na " * (MAX_TEXT // 3)  # as long as a first line may be: far more than the model reads
    lyric, _, status = stream(client, huge, 0.8, 10, seed="4")[-1]
    read = tiny_lm.read_prompt(huge).text
    assert lyric.startswith(read) and len(read) == tiny_lm.context_length and len(lyric) >= len(read) + 10
    assert f"last {tiny_lm.context_length} characters" in status
    lyric, _, status = stream(client, "caf\u00e9 \U0001f3b5", 0.8, 10)[-1]
    assert lyric.startswith("cafe ") and "does not know" in status and "\U0001f3b5" in status


@pytest.mark.parametrize("args, kwargs, message", [
    ((SEED_LINE, 0.8, 0), {}, "length must be between 1 and 2000, got 0"),
    ((SEED_LINE, 0.8, -5), {}, "length must be between 1 and 2000, got -5"),
    ((SEED_LINE, 0.8, 2.5), {}, "length must be a whole number, got 2.5"),
    ((SEED_LINE, 0.8, 10**9), {}, "length must be between 1 and 2000, got 1000000000"),
    ((SEED_LINE, -1, 10), {}, "temperature must be between 0 and 2, got -1"),
    ((SEED_LINE, 1e300, 10), {}, "temperature must be between 0 and 2, got 1e+300"),
    ((SEED_LINE, 0.8, 10), {"top_k": -1}, "top-k must be between 0 and"),
    ((SEED_LINE, 0.8, 10), {"top_k": 10**6}, "top-k must be between 0 and"),
    ((SEED_LINE, 0.8, 10), {"top_p": 0}, "top-p must be above 0"),
    ((SEED_LINE, 0.8, 10), {"top_p": 1.5}, "top-p must be between 0 and 1"),
    ((SEED_LINE, 0.8, 10), {"seed": "twelve"}, "the seed must be a whole number"),
    ((SEED_LINE, 0.8, 10), {"seed": "-3"}, "the seed must be a whole number"),
    ((SEED_LINE, "warm", 10), {}, "temperature must be a number"),
    ((["not", "text"], 0.8, 10), {}, "the seed line must be text"),
    # issue 36: a first line over the limit (4,301 digits crashed the song), numbers a person would not write
    (("1" * 4301, 0.8, 10), {}, f"the seed line must be at most {MAX_TEXT:,} characters, got 4,301"),
    ((SEED_LINE, 0.8, "1_000"), {}, "length must be a number written with the digits 0-9, got '1_000'"),
    ((SEED_LINE, 0.8, "\u0663"), {}, "length must be a number written with the digits 0-9"),
    ((SEED_LINE, 0.8, 10), {"seed": "\u0663"}, "the seed must be a whole number"),
])
def test_bad_settings_get_a_message_and_the_app_keeps_serving(app, client, args, kwargs, message):
    with pytest.raises(AppError) as e:
        client.predict(*args, **kwargs, api_name="/generate")
    assert message in str(e.value)
    assert "Traceback" not in str(e.value) and str(ROOT) not in str(e.value)
    assert len(client.predict(SEED_LINE, 0.8, 5, api_name="/generate")[0]) >= len(SEED_LINE) + 5  # and to the line's end
    # An input error is a normal event: one line in the server's log, no traceback.
    assert "Traceback" not in app.log() and f"request refused: {message}" in app.log()


def raw_call(url: str, body: str, endpoint: str = "generate") -> tuple[str, object]:
    """Call an endpoint with a hand-written JSON body (gradio_client refuses to send NaN, or the wrong
    number of values); return the last server-sent event's name and data."""
    posted = httpx.post(f"{url}/gradio_api/call/{endpoint}", content=body,
                        headers={"Content-Type": "application/json"}, timeout=30)
    posted.raise_for_status()
    with httpx.stream("GET", f"{url}/gradio_api/call/{endpoint}/{posted.json()['event_id']}", timeout=30) as events:
        lines = events.read().decode().splitlines()
    event = [line[len("event: "):] for line in lines if line.startswith("event: ")][-1]
    data = [line[len("data: "):] for line in lines if line.startswith("data: ")][-1]
    return event, json.loads(data)


@pytest.mark.parametrize("position, name", [(1, "temperature"), (2, "length"), (3, "top-k"), (4, "top-p"),
                                            (5, "seed"), (12, "takes")])
@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_nan_and_infinity_get_a_message(app, position, name, value):
    settings = ['"hi"', "0.8", "10", "0", "1.0", '""', "true", '""', "true", '"none"', '"0"', "false", "4"]
    settings[position] = value
    event, data = raw_call(app.url, '{"data": [%s]}' % ", ".join(settings))
    assert event == "error" and name in data["error"]
    assert ("got nan" if value == "NaN" else "got inf") in data["error"]


def test_eight_concurrent_streams_all_complete(client, tiny_lm):
    lengths, results = [100, 170, 240, 300, 120, 90, 260, 200], {}

    def one(i: int) -> None:
        results[i] = stream(Client(client.src, verbose=False), SEED_LINE, 1.0, lengths[i], seed=str(i))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for i, length in enumerate(lengths):
        assert results[i][-1][0] == reference(tiny_lm, SEED_LINE, length, 1.0, seed=i)
        assert len(results[i][0][0]) == len(SEED_LINE) + 1  # each one streamed, not delivered at the end


def test_alternatives_and_attention_endpoints(client, tiny_lm):
    from lyricgpt.explain import attention_map, next_char_odds

    odds, expected = client.predict("Oh my darling", api_name="/alternatives"), next_char_odds(tiny_lm, "Oh my darling")
    assert [c for c, _ in odds] == [c for c, _ in expected]
    assert [p for _, p in odds] == pytest.approx([p for _, p in expected])
    view, expected = client.predict("Oh my darling", 8, api_name="/attention"), attention_map(tiny_lm, "Oh my darling", 8)
    assert view["chars"] == expected["chars"] == list(" darling")
    for layer, expected_layer in zip(view["weights"], expected["weights"], strict=True):
        for head, expected_head in zip(layer, expected_layer, strict=True):
            assert head == pytest.approx(expected_head)
    with pytest.raises(AppError, match="window must be between 1 and"):
        client.predict("Oh my darling", 10**6, api_name="/attention")


def test_a_second_voice_sings_and_looks_inside_through_the_same_endpoints(client, second_voice_dir):
    second = load_model(second_voice_dir)
    voice = "songs of songs.txt"  # what its card says it learned from
    lyric, _, status = stream(client, "Cold river", 1.0, 50, seed="4", voice=voice)[-1]
    assert lyric == reference(second, "Cold river", 50, 1.0, seed=4)
    label = f"{voice} · {second.val_bits_per_char:.3f} bits/char"  # the chooser's label names it too
    assert client.predict("Cold river", 0, 20, voice=label.upper(), api_name="/generate")[0] == reference(
        second, "Cold river", 20, 0.0)
    odds = client.predict("Cold river", voice=voice, api_name="/alternatives")
    assert [c for c, _ in odds] == [c for c, _ in next_char_odds(second, "Cold river")]
    view = client.predict("Cold river", 6, voice, api_name="/attention")
    assert view["chars"] == list(" river") and len(view["weights"]) == second.model.config.n_layer


@pytest.mark.parametrize("endpoint, args", [("/generate", (SEED_LINE, 0.8, 10)), ("/alternatives", (SEED_LINE,)),
                                            ("/attention", (SEED_LINE, 4))])
def test_an_unknown_voice_gets_a_message_naming_the_voices(app, client, endpoint, args):
    with pytest.raises(AppError, match="there is no voice 'Elvis'; choose one of: '.*tiny-model0', "
                                       "'songs of songs.txt'"):
        client.predict(*args, voice="Elvis", api_name=endpoint)
    assert "Traceback" not in app.log()


def test_the_readmes_api_examples_print_what_they_say(app, subprocess_env, tmp_path):
    """The README's two API examples, one after the other as a reader runs them, from another folder."""
    code = readme_example("gradio_client").replace("http://127.0.0.1:7860/", app.url) + readme_example('"/alternatives"')
    code += "\nimport sys\nprint('SONG:' + job.result()[0], file=sys.stderr, end='')\n"  # the whole song
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env, timeout=120,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    song = run.stderr.split("SONG:")[-1]
    printed = re.sub(r"\ALoaded as API: \S+\n", "", run.stdout)  # gradio_client's own greeting
    assert printed.startswith(song + "\n") and len(song) >= len("I walked out in the morning rain") + 300
    odds, view = printed[len(song) + 1:].splitlines()  # each character once, then the look inside
    odds = ast.literal_eval(odds)
    assert len(odds) == 5 and all(isinstance(c, str) and 0 <= p <= 1 for c, p in odds)  # [[char, probability], ...]
    chars, weights = (ast.literal_eval(part) for part in re.fullmatch(r"(\[.*\]) (\[.*\])", view).groups())
    assert chars == list("Down by the river"[-12:]) and sum(weights) == pytest.approx(1, abs=1e-4)


def test_the_start_names_each_voice_and_says_when_it_is_ready(app):
    log = app.log()  # a first start that says nothing for a minute looks hung
    assert "voice 1 of 2: " in log and "voice 2 of 2: songs of songs.txt, from folder " in log
    assert "the voice songs of songs.txt is ready (" in log and log.count(" is ready (") == 2


def test_page_names_the_model_without_server_paths(app, tiny_model_dir):
    config = httpx.get(f"{app.url}/config", timeout=10).text
    assert f"/{tiny_model_dir.parent.name}/{tiny_model_dir.name}" in config  # enough to tell models apart
    assert str(tiny_model_dir.parent) not in config and str(ROOT) not in config


# --- issue 33: a song's form -------------------------------------------------------------------------

@pytest.mark.parametrize("rhyme, syllables, real_words, length", [
    ("AABB", "8", True, 300), ("ballad", "8,6", False, 300), ("ABAB", 0, "on", 400)])  # a number, a link's switch
def test_a_seeded_song_with_a_form_is_the_one_the_sampler_writes(client, tiny_lm, rhyme, syllables, real_words, length):
    form = FormSpec(parse_rhyme(rhyme), parse_syllables(syllables), real_words is True or real_words == "on")
    # To its length, then the end of the line (the song's own end is another matter: test_serving.py).
    lyric, _, status = stream(client, SEED_LINE, 0.8, length, seed="5", end_with_song=False, rhyme=rhyme,
                              syllables=syllables, real_words=real_words, takes=1)[-1]
    # The engine and the sampler agree: one take, one row, as before takes were.
    assert lyric == SEED_LINE + "".join(tiny_lm.stream(SEED_LINE, length, 0.8, seed=5, form=form))
    assert status.split(" · form: ")[1].startswith(f"{form.describe()} · ")  # no takes named
    # Stanzas of a line a letter, the first line the person's; the last may be cut short by the length.
    stanzas = lyric.rstrip("\n").split("\n\n")
    assert len(stanzas) >= 2 and all(len(s.split("\n")) == len(form.rhyme) for s in stanzas[:-1]), lyric
    assert len(stanzas[-1].split("\n")) <= len(form.rhyme) and lyric.startswith(SEED_LINE)


@pytest.mark.parametrize("kwargs, setting, shown", [
    ({"rhyme": "A1B"}, "rhyme scheme", "'A1B'"), ({"rhyme": ""}, "rhyme scheme", "''"),
    ({"rhyme": "A" * 40}, "rhyme scheme", "'AAAA"), ({"rhyme": 7}, "rhyme scheme", "7"),
    ({"syllables": "3"}, "syllables", "'3'"), ({"syllables": "40"}, "syllables", "'40'"),
    ({"syllables": "8,x"}, "syllables", "'8,x'"), ({"syllables": 3}, "syllables", "3"),
    ({"real_words": "maybe"}, "real words", "'maybe'"), ({"real_words": 2}, "real words", "2")])
def test_a_bad_form_gets_a_message_naming_the_setting_and_the_app_keeps_serving(app, client, kwargs, setting, shown):
    with pytest.raises(AppError) as e:
        client.predict(SEED_LINE, 0.8, 10, **kwargs, api_name="/generate")
    message = str(e.value)
    assert setting in message and f"got {shown}" in message
    assert "Traceback" not in message and str(ROOT) not in message
    lyric = client.predict(SEED_LINE, 0.8, 5, api_name="/generate")[0]
    assert lyric.startswith(SEED_LINE) and len(lyric) >= len(SEED_LINE) + 5
    refused = re.findall(r"request refused: .*", app.log())
    assert refused and setting in refused[-1] and "Traceback" not in app.log()


def written_in_takes(lm, seed_line: str, length: int, temperature: float, seed: int, form: FormSpec,
                     takes: int) -> str:
    """The seed line as the model reads it, then what lyricgpt.takes.write_song writes alone, with no engine
    (with "End with the song" off: to the length, then the end of the line)."""
    prompt = lm.read_prompt(seed_line)
    end, most = lm.song_plan(length, False)
    lines = write_song(lm, prompt.ids or lm.start_ids(), most, SamplingSettings(temperature), seed, end, form, takes)
    return prompt.text + "".join(lm.tokenizer.chars[step.token] for line in lines for step in line)


@pytest.mark.parametrize("rhyme, syllables, real_words, takes", [("AABB", "8", True, 4), ("ABAB", "0", False, 2),
                                                                 ("ballad", "8,6", True, 8)])
def test_a_seeded_song_in_takes_is_the_one_write_song_writes_and_shows_a_line_at_a_time(
        client, tiny_lm, rhyme, syllables, real_words, takes):
    form = FormSpec(parse_rhyme(rhyme), parse_syllables(syllables), real_words)
    updates = stream(client, SEED_LINE, 0.8, 200, seed="5", end_with_song=False, rhyme=rhyme, syllables=syllables,
                     real_words=real_words, takes=takes)
    lyric, _, status = updates[-1]
    assert lyric == written_in_takes(tiny_lm, SEED_LINE, 200, 0.8, 5, form, takes)
    assert f" · form: {form.describe()}, {takes} takes a line · " in status
    assert lyric != written_in_takes(tiny_lm, SEED_LINE, 200, 0.8, 5, form, 1)  # the takes chose other lines
    # A line at a time: every update but the last ends a line, and no line comes in pieces.
    lyrics = [update[0] for update in updates]
    assert all(earlier.endswith("\n") for earlier in lyrics[:-1]) and len(lyrics) <= lyric.count("\n") + 1


def test_the_default_is_four_takes_as_the_page_writes_them(client, tiny_lm):
    # Through the API as on the page, "End with the song" on: the song stream_song writes alone.
    kwargs = dict(seed="11", rhyme="AABB", syllables="8", real_words=True)
    lyric, _, status = stream(client, SEED_LINE, 0.9, 300, **kwargs)[-1]
    asked = parse_request(SEED_LINE, 0.9, 300, vocab_size=tiny_lm.tokenizer.vocab_size, **kwargs)
    assert asked.takes == DEFAULT_TAKES == 4 and "4 takes a line" in status
    assert lyric == list(stream_song(tiny_lm, asked))[-1].lyric
    assert lyric == client.predict(SEED_LINE, 0.9, 300, **kwargs, takes=4, api_name="/generate")[0]


@pytest.mark.parametrize("takes, message", [
    (0, "takes must be between 1 and 8, got 0"), (9, "takes must be between 1 and 8, got 9"),
    (2.5, "takes must be a whole number, got 2.5"), ("x", "takes must be a number written with the digits 0-9, got 'x'"),
    (True, "takes must be a number, got True")])
def test_bad_takes_get_a_message_naming_takes_write_nothing_and_the_app_keeps_serving(app, client, takes, message):
    job = client.submit(SEED_LINE, 0.8, 10, rhyme="AABB", takes=takes, api_name="/generate")
    with pytest.raises(AppError) as e:
        job.result()
    assert message in str(e.value) and "Traceback" not in str(e.value) and str(ROOT) not in str(e.value)
    assert job.outputs() == []  # not a character written
    lyric = client.predict(SEED_LINE, 0.8, 5, rhyme="AABB", takes=2, api_name="/generate")[0]
    assert lyric.startswith(SEED_LINE) and len(lyric) >= len(SEED_LINE) + 5
    assert "Traceback" not in app.log() and f"request refused: {message}" in app.log()


# --- issue 36: what a hostile caller found ----------------------------------------------------------

MARKUP = ["<img src=//127.0.0.1:9/px.png>", "<a href=//127.0.0.1:9/a>Log in</a>",
          "<h1 style=font-size:90px>HACKED</h1>"]


@pytest.mark.parametrize("value", MARKUP)
@pytest.mark.parametrize("endpoint, args, key", [("/generate", (SEED_LINE, 0.8, 10), "voice"),
                                                 ("/generate", (SEED_LINE, 0.8, 10), "seed"),
                                                 ("/alternatives", (SEED_LINE,), "voice")])
def test_a_value_repeated_in_a_message_comes_back_as_text_not_markup(client, endpoint, args, key, value):
    with pytest.raises(AppError) as e:
        client.predict(*args, **{key: value}, api_name=endpoint)
    # Gradio's pop-up draws a message as HTML: the value is in it escaped, so it shows as written.
    message = str(e.value)
    assert "<" not in message and ">" not in message and "'&lt;" in message


def test_a_first_line_up_to_the_limit_is_read_and_one_over_it_is_refused_before_any_work(client):
    lyric, _, status = stream(client, "1" * MAX_TEXT, 0.8, 5)[-1]  # a run of digits, read digit by digit
    assert "numbers written as words" in status and "one one one" in lyric
    with pytest.raises(AppError, match=f"the seed line must be at most {MAX_TEXT:,} characters, got {MAX_TEXT + 1:,}"):
        client.predict("x" * (MAX_TEXT + 1), 0.8, 5, api_name="/generate")


def test_minus_zero_is_temperature_0(client):
    _, _, status = stream(client, SEED_LINE, -0.0, 5)[-1]
    assert " · temperature 0 · " in status


def rss_mb(pid: int) -> float:
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return int(fields["VmRSS"].split()[0]) / 1024


def first_character_s(client: Client) -> float:
    start = time.monotonic()
    job = client.submit(SEED_LINE, 0.8, 20, api_name="/generate")
    for _ in job:
        took = time.monotonic() - start
        break
    job.result()
    return took


def test_ten_requests_at_ten_times_the_limit_leave_the_app_as_it_was(app, client):
    before_mb, before_s = rss_mb(app.process.pid), min(first_character_s(client) for _ in range(3))
    for _ in range(10):
        with pytest.raises(AppError, match="the seed line must be at most"):
            client.predict("la " * (10 * MAX_TEXT // 3 + 1), 0.8, 5, api_name="/generate")
    after_mb, after_s = rss_mb(app.process.pid), min(first_character_s(client) for _ in range(3))
    assert after_mb - before_mb < 50, f"{before_mb:.0f} MB before, {after_mb:.0f} MB after"
    assert after_s < 2 * before_s + 0.2, f"first character {before_s:.3f} s before, {after_s:.3f} s after"


def raw_request(app, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, str]:
    """(status, text) of a request httpx would not send (its URLs end at 65,536 characters)."""
    host, port = app.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def test_a_request_over_a_limit_is_refused_at_the_door_with_a_message(app):
    page = f"{app.url}/?line="
    assert raw_request(app, "GET", "/?line=" + "a" * (MAX_URL - len(page)))[0] == 200  # the longest address
    status, text = raw_request(app, "GET", "/?line=" + "a" * (MAX_URL - len(page) + 1))  # was an HTTP 500
    assert status == 414 and f"A LyricGPT song's link is at most {MAX_LINK:,}" in text
    status, text = raw_request(app, "POST", "/gradio_api/call/generate", b'{"data": ["' + b"a" * MAX_BODY + b'"]}',
                               {"Content-Type": "application/json"})
    assert status == 413 and f"a first line is at most {MAX_TEXT:,} characters" in text
    status, text = raw_request(app, "POST", "/gradio_api/call/generate", iter([b'{"data": ["a"]}']),
                               {"Content-Type": "application/json"})  # chunked, so of no stated length
    assert status == 411
    assert "Traceback" not in app.log()


def test_a_call_with_too_few_or_too_many_values_gets_a_message_and_writes_nothing_raw_to_the_log(app):
    forged = "2026-12-05 23:59:59,000 INFO lyricgpt.app: forged"
    for endpoint, values, message in [("generate", [f"hi\n{forged}\x1b[31m"], "generate takes 13 values, got 1"),
                                      ("generate", ["hi"] * 12, "generate takes 13 values, got 12"),  # takes left out
                                      ("generate", ["hi"] * 14, "generate takes 13 values, got 14"),
                                      ("attention", ["hi"], "attention takes 3 values, got 1")]:
        event, data = raw_call(app.url, json.dumps({"data": values}), endpoint)
        assert event == "error" and data["error"] == message
    assert forged not in app.log() and "\x1b" not in app.log() and "Received inputs" not in app.log()


@pytest.mark.parametrize("text, window, message", [  # as JSON
    ('["a"]', "null", "the text before the character must be text, got ['a']"), ("{}", "null", "must be text, got {}"),
    ("5", "null", "must be text, got 5"), ("true", "null", "must be text, got True"),
    ("NaN", "null", "must be text, got nan"),
    (json.dumps("x" * (MAX_TEXT + 1)), "null", f"at most {MAX_TEXT:,} characters"),
    ('"Oh my darling"', '"abc"', "the window must be a number written with the digits 0-9, got 'abc'"),
    ('"Oh my darling"', "2.5", "the window must be a whole number, got 2.5"),
    ('"Oh my darling"', "NaN", "the window must be between 1 and 32, got nan"),
    ('"Oh my darling"', "[]", "the window must be a number, got []"),
    ('"Oh my darling"', "{}", "the window must be a number, got {}"),
    ('"Oh my darling"', '""', "the window must be a number written with the digits 0-9, got ''"),
    ('"Oh my darling"', "true", "the window must be a number, got True")])
@pytest.mark.parametrize("endpoint", ["alternatives", "attention"])
def test_the_look_inside_endpoints_answer_wrong_types_with_a_message(app, endpoint, text, window, message):
    event, data = raw_call(app.url, '{"data": [%s, %s, null]}' % (text, window), endpoint)
    assert event == "error" and message in data["error"]
    assert "Traceback" not in app.log()


def the_pages_attention_call(app, data) -> httpx.Response:
    """attention_at, the song panel's server function, called as the page's script calls it."""
    config = httpx.get(f"{app.url}/config", timeout=10).json()
    song = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "song")
    return httpx.post(f"{app.url}/gradio_api/component_server", timeout=30,
                      json={"data": data, "component_id": song, "session_hash": "hostile", "fn_name": "attention_at"})


@pytest.mark.parametrize("data, message", [
    (["Oh my darling", 2.9, None], "the window must be a whole number, got 2.9"),  # was cut to 2
    (["Oh my darling", "x", None], "the window must be a number written"),
    (["Oh my darling", 10**6, None], "the window must be between 1 and 32"),
    (["Oh my darling", None, "<b>Elvis</b>"], "there is no voice '&lt;b&gt;Elvis&lt;/b&gt;'"),
    ([None, 40, None], "the window must be between 1 and 32"), ([5, 3, None], "must be text, got 5"),
    (["x" * (MAX_TEXT + 1), 3, None], f"at most {MAX_TEXT:,} characters"),
    ("Oh my darling", "attention_at takes [text, window, voice], got 'Oh my darling'"),
    (["Oh my darling", 3], "attention_at takes [text, window, voice], got ['Oh my darling', 3]"),
    (None, "attention_at takes [text, window, voice], got None"), ({}, "attention_at takes")])
def test_the_pages_own_attention_call_answers_bad_input_with_a_message(app, data, message):
    answer = the_pages_attention_call(app, data)
    assert answer.status_code == 200 and message in answer.json()["error"]  # was a bare HTTP 500
    assert "Exception in ASGI application" not in app.log() and "Traceback" not in app.log()


def test_the_pages_own_attention_call_reads_the_window_it_is_given(app, tiny_lm):
    from lyricgpt.explain import attention_map

    assert the_pages_attention_call(app, ["Oh my darling", 8, None]).json()["chars"] == attention_map(
        tiny_lm, "Oh my darling", 8)["chars"]


def page_event(app, fn_index: int, data: list) -> dict:
    """Call one of the page's own events as its script does (by number, through the queue); the
    last message about it."""
    session = f"hostile{fn_index}x{len(data)}x{time.monotonic_ns()}"
    joined = httpx.post(f"{app.url}/gradio_api/queue/join", timeout=30,
                        json={"data": data, "fn_index": fn_index, "session_hash": session, "trigger_id": None})
    joined.raise_for_status()
    with httpx.stream("GET", f"{app.url}/gradio_api/queue/data?session_hash={session}", timeout=30) as events:
        for line in events.iter_lines():
            message = json.loads(line[len("data:"):]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                return message
    raise AssertionError(f"event {fn_index} never completed")


def test_every_event_of_the_page_answers_values_its_controls_would_not_send_with_a_message(app):
    events = httpx.get(f"{app.url}/config", timeout=10).json()["dependencies"]
    for fn_index, event in enumerate(events):
        if not event.get("backend_fn"):
            continue
        for value in ["<b>x</b>", 12345, None, [], {"a": 1}]:
            message = page_event(app, fn_index, [value] * len(event["inputs"]))
            assert message["success"] or message["output"]["error"], (event.get("api_name"), value)
    assert "Traceback" not in app.log()


def test_the_bundled_model_is_the_default_and_a_cancelled_song_frees_its_worker(subprocess_env):
    bundled = load_model(BUNDLED_MODEL)
    # One place in the engine, so a cancelled song that kept sampling would hold up the next one.
    with running_app(subprocess_env, LYRICGPT_BATCH="1", LYRICGPT_WAITING="1") as app:
        assert "from the bundled model" in httpx.get(f"{app.url}/config", timeout=10).text
        client = Client(app.url, verbose=False)
        lyric = client.predict(SEED_LINE, 0, 40, api_name="/generate")[0]
        assert lyric == reference(bundled, SEED_LINE, 40, 0.0)

        long_song = client.submit(SEED_LINE, 1.0, 2000, api_name="/generate")
        start = time.monotonic()
        while len(long_song.outputs()) < 3:
            assert time.monotonic() - start < 60, "the song did not start"
            time.sleep(0.01)
        written = len(long_song.outputs()[-1][0]) - len(SEED_LINE)
        still_to_go_s = (2000 - written) / (written / (time.monotonic() - start))  # at the pace seen so far
        long_song.cancel()
        cancelled = time.monotonic()
        short = client.predict(SEED_LINE, 0, 5, api_name="/generate")[0]
        waited = time.monotonic() - cancelled
    assert short == reference(bundled, SEED_LINE, 5, 0.0)
    assert waited < still_to_go_s / 2, f"the next song waited {waited:.1f} s; the cancelled one had {still_to_go_s:.1f} s to go"


def test_beyond_the_engines_places_a_song_is_told_the_app_is_busy(subprocess_env, slow_model_dir):
    # One place and no line: while a long song is seen singing, the next one must be refused.
    with running_app(subprocess_env, LYRICGPT_MODEL=str(slow_model_dir), LYRICGPT_BATCH="1", LYRICGPT_WAITING="0") as app:
        client = Client(app.url, verbose=False)
        long_song = client.submit(SEED_LINE, 1.0, 2000, api_name="/generate")
        start = time.monotonic()
        while not long_song.outputs():
            assert time.monotonic() - start < 60, "the song did not start"
            time.sleep(0.01)
        with pytest.raises(AppError, match="busy"):
            client.predict(SEED_LINE, 1.0, 20, api_name="/generate")
        long_song.cancel()
        start = time.monotonic()
        while True:  # the place frees within a step of the cancel
            try:
                assert len(client.predict(SEED_LINE, 0.0, 20, api_name="/generate")[0]) >= len(SEED_LINE) + 20
                break
            except AppError:
                assert time.monotonic() - start < 30, "the cancelled song kept its place"
                time.sleep(0.2)
        assert "Traceback" not in app.log()


# --- issue 34: writing a song together ---------------------------------------------------------------

SONG = "Hello darkness, my old friend\nI've come to talk with you again"


def offered(tiny_lm, text: str, line: int | None, **settings) -> list[str]:
    """The candidates the package writes alone, with no engine: what the endpoints must answer."""
    from lyricgpt.cowrite import offer_lines
    from lyricgpt.song_request import parse_lines_request

    *_, final = offer_lines(tiny_lm, parse_lines_request(text, **settings), line, "voice")
    return [c.text for c in final.candidates]


def test_the_cowriting_endpoints_take_the_text_then_the_settings(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    settings = ["temperature", "top_k", "top_p", "seed", "voice", "rhyme", "syllables", "real_words"]
    assert [p["parameter_name"] for p in api["/lines"]["parameters"]] == ["text", "count", *settings]
    assert [p["parameter_name"] for p in api["/rewrite"]["parameters"]] == ["text", "line", "count", *settings]


def test_seeded_lines_and_rewrites_through_the_api_are_the_ones_written_alone(client, tiny_lm):
    updates = [update for update in client.submit(SONG, 4, 1.0, seed="5", api_name="/lines")]
    lines, _, status = updates[-1]
    assert lines == offered(tiny_lm, SONG, None, count=4, temperature=1.0, seed="5")
    assert len(updates) > 2 and all(len(a) <= len(b) for a, b in zip(updates[0][0], lines))  # they grow
    assert status.startswith("Candidates for the next line") and " · seeds 5-8" in status
    assert client.predict(SONG, 2, 1.0, seed="7", api_name="/lines")[0] == lines[2:]  # the same seed, the same line
    rhymed = dict(temperature=1.0, seed="3", rhyme="AABB", syllables="8", real_words=True)
    assert client.predict(SONG, 2, 3, **rhymed, api_name="/rewrite")[0] == offered(tiny_lm, SONG, 2, count=3, **rhymed)


@pytest.mark.parametrize("endpoint, args, kwargs, message", [
    ("/lines", ("x" * 4601, 4), {}, "the song's text must be at most 4,600 characters, got 4,601"),
    ("/lines", (SONG, 0), {}, "count must be between 1 and 8, got 0"),
    ("/lines", (SONG, 100), {}, "count must be between 1 and 8, got 100"),
    ("/lines", (SONG, "four"), {}, "count must be a number written with the digits 0-9, got 'four'"),
    ("/lines", (SONG, 4), {"top_p": 0}, "top-p must be above 0"),
    ("/rewrite", (SONG, 3, 4), {}, "the line must be between 1 and 2, got 3: the song has 2 lines"),
    ("/rewrite", (SONG, 0, 4), {}, "the line must be between 1 and 2, got 0"),
    ("/rewrite", (SONG, "\u0663", 4), {}, "the line must be a number written with the digits 0-9, got '\u0663'"),
    ("/rewrite", ("\n\n", 1, 4), {}, "the song has no line to rewrite yet"),
    ("/rewrite", (SONG, 1, 100), {}, "count must be between 1 and 8, got 100")])
def test_a_bad_request_for_lines_gets_a_message_and_the_app_keeps_serving(app, client, endpoint, args, kwargs, message):
    with pytest.raises(AppError) as e:
        client.predict(*args, **kwargs, api_name=endpoint)
    assert message in str(e.value) and "Traceback" not in str(e.value)
    assert len(client.predict(SONG, 1, api_name="/lines")[0]) == 1
    assert "Traceback" not in app.log() and f"request refused: {message}" in app.log()


def test_odd_characters_in_the_song_are_read_as_the_model_can_and_the_status_says_so(client, tiny_lm):
    odd = "Route 66\x00 \u202e\U0001f3b5 rolls\r\non"
    lines, _, status = client.predict(odd, 2, 1.0, seed="1", api_name="/lines")
    assert lines == offered(tiny_lm, odd, None, count=2, temperature=1.0, seed="1") and all(lines)
    assert "does not know" in status and "numbers written as words" in status


def test_the_readmes_cowriting_example_prints_four_lines_then_two(app, subprocess_env, tmp_path):
    code = readme_example("gradio_client").replace("http://127.0.0.1:7860/", app.url) + readme_example('"/lines"')
    code += "\nimport sys\nprint('SONG:' + job.result()[0], file=sys.stderr, end='')\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env, timeout=120,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    printed = re.sub(r"\ALoaded as API: \S+\n", "", run.stdout)
    *lines, rewritten = printed[len(run.stderr.split("SONG:")[-1]) + 1:].splitlines()
    assert len(lines) == 4 and all(lines) and len(ast.literal_eval(rewritten)) == 2
