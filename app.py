"""LyricGPT lyrics studio: a web page (and a /generate API) that streams a song from a seed line.

Run: python app.py   (then open http://127.0.0.1:7860)
Environment: LYRICGPT_MODEL = Hub repo id or model folder (default: the bundled assets/model),
LYRICGPT_BIGRAM = the bigram baseline to compare with (default: the bundled assets/bigram),
LYRICGPT_REVISION = Hub revision; LYRICGPT_THREADS, LYRICGPT_BATCH and LYRICGPT_WAITING = torch
threads of the engine, songs it writes at once, and songs that may wait for a place (defaults
measured on 2 cores: benchmarks/load.py).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import gradio as gr
import torch

from lyricgpt import load_model
from lyricgpt.engine import Engine, EngineBusy, EngineError
from lyricgpt.explain import attention_map, next_char_odds
from lyricgpt.sampler import DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from lyricgpt.serving import (DEFAULT_LENGTH, EXAMPLE_LINES, MAX_LENGTH, MAX_TEMPERATURE, PAGE_CSS, PROB_CSS, InputError,
                              legend, load_for_serving, parse_request, stream_song)

ASSETS = Path(__file__).resolve().parent / "assets"
BUNDLED_MODEL = ASSETS / "model"
HUB_TIMEOUT_S = 5.0  # a Hub that does not answer must not hold up the start for long


def setting(name: str, default: int, lowest: int = 1) -> int:
    value = os.environ.get(name, str(default)).strip()
    if not value.isdigit() or int(value) < lowest:
        raise SystemExit(f"error: {name} must be a whole number from {lowest} up, got {value!r}")
    return int(value)


THREADS = setting("LYRICGPT_THREADS", 1)
BATCH = setting("LYRICGPT_BATCH", 32)
WAITING = setting("LYRICGPT_WAITING", 2, lowest=0)

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP request drowns the rest
log = logging.getLogger("lyricgpt.app")
# The engine does all the sampling of the page's songs, in a process of its own, on THREADS torch
# threads (benchmarks/load.py --threads 1|2 compares them); this process answers the page's
# look-inside requests and the bigram's songs on as many.
torch.set_num_threads(THREADS)
SERVED = load_for_serving(os.environ.get("LYRICGPT_MODEL"), os.environ.get("LYRICGPT_REVISION") or None,
                          BUNDLED_MODEL, HUB_TIMEOUT_S)
LM = SERVED.lm
ENGINE = Engine(LM.model, max_batch=BATCH, max_waiting=WAITING, threads=THREADS)
# The tutorial's baseline, to hear what attention adds. Its steps are a table lookup, so it
# samples alone, without the engine.
BIGRAM = load_model(os.environ.get("LYRICGPT_BIGRAM") or ASSETS / "bigram")


# Each page's Stop switch for its current song. Stop is a switch the stream reads rather than
# gradio's `cancels`: cancelling a running stream sometimes leaves "Error" over the outputs, and a
# switch lets the song end cleanly, with a status line that says it was stopped.
STOP_SWITCHES: dict[str, threading.Event] = {}


def arm_stop(request: gr.Request) -> None:
    """Arm the page's Stop switch at each click, so that Stop also reaches a song still waiting in the
    queue. A song still playing keeps the same switch (gradio skips a second click's song then)."""
    STOP_SWITCHES.setdefault(request.session_hash, threading.Event()).clear()


def stop(request: gr.Request) -> None:
    switch = STOP_SWITCHES.get(request.session_hash)
    if switch is not None:
        switch.set()


def user_error(message: str) -> gr.Error:
    """A message for the person who sent the request; a normal event, so one log line, no traceback."""
    log.info("request refused: %s", message)
    return gr.Error(message, print_exception=False)


def check(seed_line, temperature, length, top_k, top_p, seed, request: gr.Request) -> None:
    """Check the settings before the song starts, so that a bad one leaves the page as it was."""
    try:
        parse_request(seed_line, temperature, length, top_k, top_p, seed, LM.tokenizer.vocab_size)
    except InputError as e:
        STOP_SWITCHES.pop(request.session_hash, None)  # no song will come to clear it
        raise user_error(str(e)) from None


def generate(seed_line, temperature, length, top_k, top_p, seed, colour, request: gr.Request):
    """Stream a song: yields (seed line as read + new characters, coloured HTML, status)."""
    switch = STOP_SWITCHES.get(request.session_hash)  # None for API callers: they cancel the job instead
    try:
        settings = parse_request(seed_line, temperature, length, top_k, top_p, seed, LM.tokenizer.vocab_size)
        for update in stream_song(LM, settings, colour=bool(colour), stop=switch, engine=ENGINE):
            yield update.lyric, update.colours, update.status
    except InputError as e:
        raise user_error(str(e)) from None
    except EngineBusy:
        raise user_error("LyricGPT is busy: every place is taken. Please try again in a minute.") from None
    except EngineError as e:
        raise gr.Error(f"Sorry, this song failed: {e}", print_exception=False) from None
    finally:
        if switch is not None and STOP_SWITCHES.get(request.session_hash) is switch:
            del STOP_SWITCHES[request.session_hash]


def generate_bigram(seed_line, temperature, length, top_k, top_p, seed, compare, request: gr.Request):
    """The same first line and settings, written by the bigram baseline (when the switch is on)."""
    if not compare:
        yield ""
        return
    try:
        settings = parse_request(seed_line, temperature, length, top_k, top_p, seed, BIGRAM.tokenizer.vocab_size)
    except InputError as e:
        raise user_error(str(e)) from None
    for update in stream_song(BIGRAM, settings, colour=False, stop=STOP_SWITCHES.get(request.session_hash)):
        yield update.colours


def alternatives(text: str, window: int | None = None) -> list[list]:
    """The model's five likeliest next characters after ``text``, as [character, probability] pairs
    (``window``: how many of its last characters the model reads; default a whole context)."""
    try:
        return [[char, prob] for char, prob in next_char_odds(LM, text, window)]
    except ValueError as e:
        raise user_error(str(e)) from None


def attention(text: str, window: int | None = None) -> dict:
    """What the model attended to when choosing the character after ``text``: {"chars": the window
    it read, "weights": [layer][head][position]}, each head's weights summing to 1."""
    try:
        return attention_map(LM, text, window)
    except ValueError as e:
        raise user_error(str(e)) from None


def attention_at(args: list) -> dict | None:
    """attention(text, window) for the page's script, whose server calls arrive as one list."""
    text, window = args
    return attention_map(LM, text, int(window))


def label(name: str, lm) -> str:
    bpc = f": {lm.val_bits_per_char:.3f} bits per character on the validation songs" if lm.val_bits_per_char else ""
    return f"**{name}**{bpc}"


SONG_TEMPLATE = legend() + '<div class="song">${value}</div>'
SONG_JS = (f"const VOCAB = {json.dumps(LM.tokenizer.chars)}, LAYERS = {getattr(LM.model.config, 'n_layer', 0)}, "
           f"HEADS = {getattr(LM.model.config, 'n_head', 0)};\n" + (ASSETS / "song.js").read_text())
COPY_JS = "() => navigator.clipboard.writeText(document.querySelector('#song .song').innerText)"
PLAIN_JS = "(on) => { document.querySelector('#song').classList.toggle('plain', !on); }"

with gr.Blocks(title="LyricGPT") as demo:
    gr.Markdown("# LyricGPT lyrics studio\nGive it a first line; it writes the song one character at a time.")
    gr.Markdown(SERVED.describe(), elem_id="model-status")
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            seed_line = gr.Textbox(label="First line", placeholder="Type a line, or leave it blank",
                                   lines=2, elem_id="seed-line")
            temperature = gr.Slider(0.0, MAX_TEMPERATURE, value=DEFAULT_TEMPERATURE, step=0.05, label="Temperature",
                                    info="0 always picks the likeliest character; higher is wilder",
                                    elem_id="temperature")
            length = gr.Slider(1, MAX_LENGTH, value=DEFAULT_LENGTH, step=1, label="Length (characters)", elem_id="length")
            with gr.Accordion("Advanced", open=False):
                top_k = gr.Slider(0, LM.tokenizer.vocab_size, value=0, step=1, label="Top-k",
                                  info="sample only from the k likeliest characters (0 = off)", elem_id="top-k")
                top_p = gr.Slider(0.01, 1.0, value=DEFAULT_TOP_P, step=0.01, label="Top-p",
                                  info="sample only from the likeliest characters that make up this share "
                                       "of the probability (1 = off)", elem_id="top-p")
                seed = gr.Textbox(value="randomize", label="Seed",
                                  info="a number writes the same song again; blank or 'randomize' writes a new one",
                                  elem_id="seed")
            with gr.Row():
                generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
            gr.Examples([[line] for line in EXAMPLE_LINES], inputs=[seed_line], label="Try a first line")
        with gr.Column(scale=3, min_width=300):
            copy_btn = gr.Button("Copy", size="sm", elem_id="copy")
            gr.Markdown(label("GPT", LM), elem_id="gpt-label")
            song = gr.HTML(css_template=PROB_CSS, html_template=SONG_TEMPLATE, max_height=560, autoscroll=True,
                           buttons=[copy_btn], js_on_load=SONG_JS, server_functions=[attention_at], elem_id="song")
            status = gr.Markdown(elem_id="song-status")
            colour = gr.Checkbox(value=True, label="Colour each character by how likely the model found it "
                                                   "(hover or tap one to see the alternatives)", elem_id="colour")
            compare = gr.Checkbox(value=False, label="Write it with the bigram baseline too, to hear what "
                                                     "attention adds", elem_id="compare")
            with gr.Column(visible=False) as bigram_column:
                gr.Markdown(label("Bigram baseline", BIGRAM), elem_id="bigram-label")
                bigram_song = gr.HTML(html_template='<div class="song">${value}</div>', css_template=PROB_CSS,
                                      max_height=300, autoscroll=True, elem_id="bigram-song")
            lyric = gr.Textbox(visible=False)  # the plain text, for API callers

    inputs = [seed_line, temperature, length, top_k, top_p, seed]
    checked = generate_btn.click(arm_stop, None, None, queue=False, api_visibility="private").then(
        check, inputs, None, api_visibility="private", show_progress="hidden")  # queued: its error shows as a toast
    checked.success(generate, inputs + [colour], [lyric, song, status], api_name="generate", api_visibility="public",
                    concurrency_limit=2 * (BATCH + WAITING),  # the engine, not gradio's queue, decides who waits
                    preprocess=False)  # parse_request checks the raw values: API callers skip the sliders' limits
    checked.success(generate_bigram, inputs + [compare], bigram_song, api_visibility="private", preprocess=False,
                    concurrency_limit=2 * (BATCH + WAITING))
    compare.change(lambda on: gr.Column(visible=on), compare, bigram_column, api_visibility="private")
    gr.api(alternatives, api_name="alternatives")
    gr.api(attention, api_name="attention")
    stop_btn.click(stop, None, None, queue=False, api_visibility="private")
    copy_btn.click(None, None, None, js=COPY_JS, api_visibility="private")
    colour.change(None, colour, None, js=PLAIN_JS, api_visibility="private")


if __name__ == "__main__":
    demo.queue(max_size=4 * (BATCH + WAITING)).launch(max_threads=4 * (BATCH + WAITING) + 40, css=PAGE_CSS)
