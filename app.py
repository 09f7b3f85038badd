"""LyricGPT lyrics studio: a web page (and a /generate API) that streams a song from a seed line.

Run: python app.py   (then open http://127.0.0.1:7860)
Environment: LYRICGPT_MODEL = Hub repo id or model folder (default: the bundled assets/model),
LYRICGPT_REVISION = Hub revision, LYRICGPT_THREADS / LYRICGPT_CONCURRENCY = torch threads per
song / songs written at once (defaults measured on 2 cores: benchmarks/load.py).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import gradio as gr
import torch

from lyricgpt.serving import (MAX_LENGTH, MAX_TEMPERATURE, PROB_CSS, InputError, legend, load_for_serving,
                              parse_request, stream_song)

BUNDLED_MODEL = Path(__file__).resolve().parent / "assets" / "model"
HUB_TIMEOUT_S = 5.0  # a Hub that does not answer must not hold up the start for long


def setting(name: str, default: int) -> int:
    value = os.environ.get(name, str(default)).strip()
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"error: {name} must be a whole number from 1 up, got {value!r}")
    return int(value)


THREADS = setting("LYRICGPT_THREADS", 1)
CONCURRENCY = setting("LYRICGPT_CONCURRENCY", 2)
EXAMPLES = ["I walked out in the morning rain", "Baby, don't you cry tonight",
            "Down by the river where the old mill stands", "We were young and the city was ours"]

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP request drowns the rest
# Songs run side by side: threads x concurrency must not exceed the cores, or OpenMP threads spin
# against each other and every song slows down many times over (benchmarks/load.py measures it).
torch.set_num_threads(THREADS)
SERVED = load_for_serving(os.environ.get("LYRICGPT_MODEL"), os.environ.get("LYRICGPT_REVISION") or None,
                          BUNDLED_MODEL, HUB_TIMEOUT_S)
LM = SERVED.lm


# Each page's Stop switch for its current song. Stop is a switch the sampling loop reads rather than
# gradio's `cancels`: cancelling a running stream sometimes leaves "Error" over the outputs, and a
# switch lets the song end cleanly, with a status line that says it was stopped.
STOP_SWITCHES: dict[str, threading.Event] = {}


def arm_stop(request: gr.Request) -> None:
    """A fresh Stop switch at each click, so that Stop also reaches a song still waiting in the queue."""
    STOP_SWITCHES[request.session_hash] = threading.Event()


def stop(request: gr.Request) -> None:
    switch = STOP_SWITCHES.get(request.session_hash)
    if switch is not None:
        switch.set()


def generate(seed_line, temperature, length, top_k, top_p, seed, colour, request: gr.Request):
    """Stream a song: yields (seed line as read + new characters, coloured HTML, status)."""
    switch = STOP_SWITCHES.get(request.session_hash)  # None for API callers: they cancel the job instead
    try:
        settings = parse_request(seed_line, temperature, length, top_k, top_p, seed, LM.tokenizer.vocab_size)
        for update in stream_song(LM, settings, colour=bool(colour), stop=switch):
            yield update.lyric, update.colours, update.status
    except InputError as e:
        raise gr.Error(str(e)) from None
    finally:
        if switch is not None and STOP_SWITCHES.get(request.session_hash) is switch:
            del STOP_SWITCHES[request.session_hash]


with gr.Blocks(title="LyricGPT") as demo:
    gr.Markdown("# LyricGPT lyrics studio\nGive it a first line; it writes the song one character at a time.")
    gr.Markdown(SERVED.describe(), elem_id="model-status")
    with gr.Row():
        with gr.Column(scale=2):
            seed_line = gr.Textbox(label="First line", placeholder="Type a line, or leave it blank",
                                   lines=2, elem_id="seed-line")
            temperature = gr.Slider(0.0, MAX_TEMPERATURE, value=0.8, step=0.05, label="Temperature",
                                    info="0 always picks the likeliest character; higher is wilder",
                                    elem_id="temperature")
            length = gr.Slider(1, MAX_LENGTH, value=400, step=1, label="Length (characters)", elem_id="length")
            with gr.Accordion("Advanced", open=False):
                top_k = gr.Slider(0, LM.tokenizer.vocab_size, value=0, step=1, label="Top-k",
                                  info="sample only from the k likeliest characters (0 = off)", elem_id="top-k")
                top_p = gr.Slider(0.01, 1.0, value=1.0, step=0.01, label="Top-p",
                                  info="sample only from the likeliest characters that make up this share "
                                       "of the probability (1 = off)", elem_id="top-p")
                seed = gr.Textbox(value="randomize", label="Seed",
                                  info="a number writes the same song again; blank or 'randomize' writes a new one",
                                  elem_id="seed")
            with gr.Row():
                generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
            gr.Examples([[line] for line in EXAMPLES], inputs=[seed_line], label="Try a first line")
        with gr.Column(scale=3):
            lyrics = gr.Textbox(label="Lyrics", lines=14, max_lines=30, interactive=False, buttons=["copy"],
                                autoscroll=True, elem_id="lyrics")
            status = gr.Markdown(elem_id="song-status")
            colour = gr.Checkbox(value=True, label="Colour each character by how likely the model found it",
                                 elem_id="colour")
            colours = gr.HTML(css_template=PROB_CSS, html_template=legend() + '<div class="song">${value}</div>',
                              elem_id="colours")

    generate_btn.click(arm_stop, None, None, queue=False, api_visibility="private").then(
        generate, [seed_line, temperature, length, top_k, top_p, seed, colour], [lyrics, colours, status],
        api_name="generate", api_visibility="public",
        preprocess=False)  # parse_request checks the raw values: API callers skip the sliders' limits
    stop_btn.click(stop, None, None, queue=False, api_visibility="private")
    colour.change(lambda on: gr.HTML(visible=on), colour, colours, api_visibility="private")


if __name__ == "__main__":
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64).launch()
