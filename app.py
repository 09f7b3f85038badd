"""LyricGPT lyrics studio: a web page (and a /generate API) that streams a song from a seed line.

Run: python app.py   (then open http://127.0.0.1:7860)
Environment: LYRICGPT_MODEL = the voices: Hub repo ids or model folders, comma-separated, the first
the default (default: the bundled assets/model, then assets/kipling), LYRICGPT_REVISION = Hub
revision of each Hub repo; LYRICGPT_THREADS, LYRICGPT_BATCH and LYRICGPT_WAITING = torch
threads of the engine, songs it writes at once, and songs that may wait for a place (defaults
measured on 2 cores: benchmarks/load.py).
"""

from __future__ import annotations

import html
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import torch
from gradio.exceptions import ComponentProcessingError
from starlette.middleware import Middleware

from lyricgpt import cowrite
from lyricgpt import draft as drafts  # a song written together (its name: `draft` is a local here)
from lyricgpt.engine import Engine, EngineBusy, EngineError
from lyricgpt.explain import attention_map, next_char_odds
from lyricgpt.fast_step import compile_enabled
from lyricgpt.sampler import DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from lyricgpt.request_limits import RequestLimits
from lyricgpt.serving import PAGE_CSS, legend, markdown_text, seed_notes, stream_song
from lyricgpt.form import SCHEMES
from lyricgpt.song_request import (DEFAULT_LENGTH, DEFAULT_REAL_WORDS, DEFAULT_RHYME, DEFAULT_SYLLABLES, DEFAULT_TAKES,
                                   MAX_LENGTH, MAX_SONG_TEXT, MAX_TEMPERATURE, MAX_TEXT, InputError, keepsake,
                                   keepsake_name, link_query, parse_continue, parse_line, parse_lines_request,
                                   parse_look, parse_request, parse_song_text, parse_text, read_link, shorten,
                                   show_value, song_link, song_settings)
from lyricgpt.takes import MAX_TAKES
from lyricgpt.voices import find_voice, load_voices, model_line

ROOT = Path(__file__).resolve().parent
ASSETS = ROOT / "assets"
BUNDLED_VOICES = [ASSETS / "model", ASSETS / "kipling"]  # the first is the fallback; the others, where present
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
VOICES, LEFT_OUT = load_voices([s.strip() for s in os.environ.get("LYRICGPT_MODEL", "").split(",") if s.strip()],
                               os.environ.get("LYRICGPT_REVISION") or None, BUNDLED_VOICES, HUB_TIMEOUT_S, ROOT)
for _n, _voice in enumerate(VOICES, 1):
    log.info("voice %d of %d: %s, from %s", _n, len(VOICES), _voice.name, _voice.served.source)


def start_engine(voice) -> Engine:
    started = time.monotonic()
    engine = Engine(voice.lm.model, max_batch=BATCH, max_waiting=WAITING, threads=THREADS,
                             lexicon=voice.lm.lexicon, chars=voice.lm.tokenizer.chars)
    log.info("the voice %s is ready (%.0f s)", voice.name, time.monotonic() - started)
    return engine


def start_engines(voices) -> dict[str, Engine]:
    """An engine per voice, each in a process of its own (docs/benchmarks.md weighs it against one
    engine for all voices), started side by side: each compiles its decoding step first
    (lyricgpt.fast_step), on a core each. The log says so while it lasts: a first start that is
    silent for a minute looks hung."""
    if compile_enabled():
        log.info("compiling the decoding step of each voice: about a minute the first time, 15 s on later "
                 "starts (LYRICGPT_COMPILE=0 skips it)")
    started, done = time.monotonic(), threading.Event()

    def still_going() -> None:
        while not done.wait(15):
            log.info("still starting the voices: %.0f s so far", time.monotonic() - started)

    threading.Thread(target=still_going, name="start-up progress", daemon=True).start()
    try:
        with ThreadPoolExecutor(len(voices)) as pool:
            return dict(zip([voice.name for voice in voices], pool.map(start_engine, voices)))
    finally:
        done.set()


# The voices' bigram baselines sample alone, without an engine: a step is a lookup.
ENGINES = start_engines(VOICES)
for _voice in VOICES:  # count each voice's bigram while the page starts, so the first comparison need not wait
    threading.Thread(target=_voice.baseline, name=f"bigram of {_voice.name}", daemon=True).start()


# Each page's Stop switch for its current song. Stop is a switch the stream reads rather than
# gradio's `cancels`: cancelling a running stream sometimes leaves "Error" over the outputs, and a
# switch lets the song end cleanly, with a status line that says it was stopped.
# Each click arms it anew (a new pair, the same switch), and a song takes the pair away only if it is
# still its own click's: a song that ended just before the next click must not take the next song's.
STOP_SWITCHES: dict[str, tuple[threading.Event, object]] = {}


def arm_stop(request: gr.Request) -> None:
    """Arm the page's Stop switch at each click, so that Stop also reaches a song still waiting in the
    queue. A song still playing keeps the same switch (gradio skips a second click's song then)."""
    armed = STOP_SWITCHES.get(request.session_hash)
    switch = armed[0] if armed else threading.Event()
    switch.clear()
    STOP_SWITCHES[request.session_hash] = (switch, object())


def stop(request: gr.Request) -> None:
    armed = STOP_SWITCHES.get(request.session_hash)
    if armed is not None:
        armed[0].set()


def seed_notice_text(seed_line, voice) -> str:
    """What the voice will read differently from the first line (numbers as words, characters left
    out), or why it cannot be read, as markdown that shows it as written."""
    try:
        notes = seed_notes(find_voice(VOICES, voice).lm, parse_text(seed_line, "the seed line"))
    except InputError as e:
        notes = [str(e)]
    return markdown_text("Note: " + "; ".join(notes) + ".") if notes else ""


def popup(message: str) -> gr.Error:
    """The pop-up for ``message``. Gradio draws it as HTML, and a message may repeat what a caller sent
    (a link's value, an API argument, a voice's name): escaped here, every character shows as written."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def user_error(message: str) -> gr.Error:
    """A message for the person who sent the request; a normal event, so one log line, no traceback."""
    log.info("request refused: %s", message)
    return popup(message)


def check(seed_line, temperature, length, top_k, top_p, seed, voice, rhyme, syllables, real_words, takes,
          request: gr.Request) -> None:
    """Check the settings before the song starts, so that a bad one leaves the page as it was."""
    try:
        vocab_size = find_voice(VOICES, voice).lm.tokenizer.vocab_size
        parse_request(seed_line, temperature, length, top_k, top_p, seed, vocab_size, rhyme=rhyme,
                      syllables=syllables, real_words=real_words, takes=takes)
    except InputError as e:
        STOP_SWITCHES.pop(request.session_hash, None)  # no song will come to clear it
        raise user_error(str(e)) from None


BUSY = "LyricGPT is busy: every place is taken. Please try again in a minute."


def generate(seed_line, temperature, length, top_k, top_p, seed, colour, voice, end_with_song, rhyme, syllables,
             real_words, takes, request: gr.Request):
    """Stream a song: yields (seed line as read + new characters, the coloured HTML of the characters new
    in this update, status), and for the page what wrote it (request, voice, song so far, its HTML). Its form:
    ``rhyme`` a scheme (AABB) or its name (couplets, none), ``syllables`` "0" (free), "8" or "8,6",
    ``real_words`` a switch; ``takes`` (1 to 8) the takes of each line of a song with a form, one kept
    (lyricgpt.takes: it then streams a line at a time; a free song is written in one take)."""
    armed = STOP_SWITCHES.get(request.session_hash)  # None for API callers: they cancel the job instead
    switch = armed[0] if armed else None
    status = ""
    try:
        singer = find_voice(VOICES, voice)
        settings = parse_request(seed_line, temperature, length, top_k, top_p, seed, singer.lm.tokenizer.vocab_size,
                                 end_with_song, rhyme, syllables, real_words, takes)
        for update in stream_song(singer.lm, settings, colour=bool(colour), stop=switch, engine=ENGINES[singer.name]):
            # The page appends each update's new part.
            status = update.status
            yield update.lyric, update.added, status, (settings, singer.name, update.lyric, update.colours)
    except InputError as e:
        raise user_error(str(e)) from None
    except EngineBusy:
        raise user_error(BUSY) from None
    except EngineError as e:
        failed = f"Sorry, this song failed: {e}"
        # The song so far stays; its status says that it failed, where it would read as still going.
        yield gr.skip(), gr.skip(), f"{status} · {failed}" if status else failed, gr.skip()
        raise popup(failed) from None
    finally:
        if armed is not None and STOP_SWITCHES.get(request.session_hash) is armed:
            del STOP_SWITCHES[request.session_hash]


def generate_bigram(seed_line, temperature, length, top_k, top_p, seed, compare, voice, end_with_song, rhyme,
                    syllables, real_words, takes, request: gr.Request):
    """The same first line, settings and form, written by the voice's bigram baseline (when the switch is on)."""
    try:
        bigram = find_voice(VOICES, voice).baseline().lm if compare else None
        if bigram is None:  # off, or a voice without one: its label says why
            yield ""
            return
        settings = parse_request(seed_line, temperature, length, top_k, top_p, seed, bigram.tokenizer.vocab_size,
                                 end_with_song, rhyme, syllables, real_words, takes)
    except InputError as e:
        raise user_error(str(e)) from None
    for update in stream_song(bigram, settings, colour=False, stop=(STOP_SWITCHES.get(request.session_hash) or (None,))[0]):
        yield update.colours


def start_song(seed, event: gr.EventData, request: gr.Request):
    """Arm Stop (arm_stop) for a song from Generate, Enter, "Write another" or a link, and let it be
    clicked; "Write another" keeps every setting but the seed, which it leaves to be drawn anew."""
    arm_stop(request)
    another = getattr(event.target, "elem_id", None) == "write-another"
    return ("randomize" if another else gr.skip()), gr.Button(interactive=True)


def stop_idle() -> gr.Button:
    """Stop, greyed out while no song is being written."""
    return gr.Button(interactive=False)


def open_link(request: gr.Request):
    """A page opened from a song's link: its settings, and a count that starts the song (else nothing)."""
    try:
        query = link_query(request.query_params.multi_items())
        singer = find_voice(VOICES, query.get("voice"))
        asked = read_link(query, singer.lm.tokenizer.vocab_size)
    except InputError as e:
        raise user_error(f"This link cannot write a song: {e}") from None
    if asked is None:
        return (gr.skip(),) * 13
    written = song_settings(asked)  # the form as the form's controls take it
    return (asked.seed_line, asked.temperature, asked.length, asked.top_k or 0, asked.top_p or 1.0,
            str(asked.seed) if "seed" in query else "randomize", singer.name, asked.end_with_song,
            written["rhyme"], written["syllables"], asked.form.real_words, asked.takes, 1)


SONG_FILES = Path(tempfile.mkdtemp(prefix="lyricgpt-songs-"))  # each song's file, until gradio has copied it


def page_address(request: gr.Request) -> str:
    """The page's public address: on Spaces the Space's page (which hands a link's query to the app
    inside it), else the address the browser used."""
    space = os.environ.get("SPACE_ID") if os.environ.get("SYSTEM") == "spaces" else None
    if space:
        return f"https://huggingface.co/spaces/{space}"
    return request.headers.get("referer") or f"http://{request.headers.get('host', 'localhost:7860')}/"


NO_LINK = "No link: this song's would be too long to open. Download keeps every setting that wrote it."


def keep(kept, history, typed, request: gr.Request):
    """The written song's link and its file (a header that writes it again, then the song); and the song
    becomes the one written together (what the person had, ``typed`` in its box, kept for Undo)."""
    if kept is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    settings, voice_name, text, colours = kept
    link = song_link(page_address(request), settings, voice_name)
    draft = drafts.song_draft(colours)
    return (link or NO_LINK, song_file(keepsake_name(settings), keepsake(settings, text, voice_name, link)),
            history.then(history.draft.edited(typed)).then(draft), draft.text)


def song_file(name: str, text: str) -> gr.DownloadButton:
    """Download, holding ``text`` as the file ``name``."""
    for old in SONG_FILES.glob("*/*.txt"):  # gradio serves its own copy of each
        if old.stat().st_mtime < time.time() - 600:
            old.unlink(missing_ok=True)
            old.parent.rmdir()
    path = Path(tempfile.mkdtemp(dir=SONG_FILES)) / name
    path.write_text(text, encoding="utf-8")
    return gr.DownloadButton(value=str(path), interactive=True)


# -- writing a song together (lyricgpt.cowrite). The song on show is its draft: a song the page writes
# becomes it, and every change to it (a line chosen, the song continued, the person's edits to its text,
# which every action takes in first) is a step that Undo takes back.


def lines(text, count, temperature, top_k, top_p, seed, voice, rhyme, syllables, real_words):
    """Stream ``count`` (1 to 8) candidates for the next line of the song ``text``, side by side: yields
    (the candidate lines so far, their cards for the page, the status), and for the page the offer. The
    i-th is written from ``seed`` + i, so a seed writes the same candidates again."""
    yield from offer_candidates(text, None, count, temperature, top_k, top_p, seed, voice, rhyme, syllables,
                                real_words)


def rewrite(text, line, count, temperature, top_k, top_p, seed, voice, rhyme, syllables, real_words):
    """As /lines, for candidates to take the place of the song's line ``line`` (1 for the first; blank
    lines are not counted): written from the lines before it, in its place in the song's form."""
    yield from offer_candidates(text, line, count, temperature, top_k, top_p, seed, voice, rhyme, syllables,
                                real_words, rewriting=True)


def four_more(text, count, temperature, top_k, top_p, voice, rhyme, syllables, real_words, offer):
    """Four other candidates for the place the last ones were for: the seeds after theirs."""
    if offer is None:
        raise user_error("Ask for the next line, or for a line rewritten, first: Four more writes four others")
    yield from offer_candidates(text, offer.line, count, temperature, top_k, top_p, str(offer.next_seed), voice,
                                rhyme, syllables, real_words, rewriting=offer.line is not None)


@contextmanager
def told_why(failed: str) -> Iterator[None]:
    """A caller's mistake, a full engine, or work the engine could not finish (``failed``: what),
    as a message for the person, never a traceback."""
    try:
        yield
    except InputError as e:
        raise user_error(str(e)) from None
    except EngineBusy:
        raise user_error(BUSY) from None
    except EngineError as e:
        raise popup(f"Sorry, {failed}: {e}") from None


def offer_candidates(text, line, count, temperature, top_k, top_p, seed, voice, rhyme, syllables, real_words,
                     rewriting: bool = False):
    """/lines, or with ``rewriting`` /rewrite: the settings checked, a caller's mistake a message."""
    with told_why("these lines failed"):
        singer = find_voice(VOICES, voice)
        asked = parse_lines_request(text, count, temperature, top_k, top_p, seed, singer.lm.tokenizer.vocab_size,
                                    rhyme, syllables, real_words)
        number = parse_line(line, asked.text) if rewriting else None
        for offer in cowrite.offer_lines(singer.lm, asked, number, singer.name, ENGINES[singer.name]):
            yield ([c.text for c in offer.candidates], cowrite.cards_html(offer), markdown_text(offer.status),
                   offer)


def show_draft(history, voice: str, status: str):
    """A change to the song written together, on the page: (the drafts, its text, the panel drawn anew
    where it is, the status, Share's word on it, Download holding it)."""
    draft = history.draft
    return (history, draft.text, f"<!--0 redraw-->{draft.as_html()}", status, drafts.NO_LINK,
            song_file(drafts.keepsake_name(draft), drafts.keepsake(draft, voice)))


def choose(offer, history, text, event: gr.EventData):
    """Put the candidate clicked (``event.index``) into the song, in its place as the song is now; the
    cards go."""
    try:  # gradio's EventData raises TypeError, not AttributeError, for a call that brought none
        index = event.index
    except (AttributeError, TypeError):
        index = None
    if offer is None or isinstance(index, bool) or not isinstance(index, int) \
            or not 0 <= index < len(offer.candidates) or not offer.candidates[index].done:
        raise user_error(f"there is no candidate {show_value(index)} to choose")
    try:
        draft = history.draft.edited(parse_song_text(text))
        chosen = offer.chosen(find_voice(VOICES, offer.voice).lm, draft, index)
    except InputError as e:
        raise user_error(str(e)) from None
    history = history.then(draft).then(chosen)
    return *show_draft(history, offer.voice, drafts.summary(chosen)), ""


def undo(history, text, voice):
    """Take back the last change to the song: the person's edits to its text since, or else the last step."""
    if text == history.draft.text:
        if len(history.drafts) == 1:
            raise user_error("There is nothing to undo")
        history = history.undone()
    return show_draft(history, voice, f"Undone · {drafts.summary(history.draft)}")


def start_writing(request: gr.Request) -> gr.Button:
    """Arm Stop (arm_stop) for a song continued, and let it be clicked."""
    arm_stop(request)
    return gr.Button(interactive=True)


def continue_writing(text, temperature, length, top_k, top_p, seed, voice, end_with_song, rhyme, syllables,
                     real_words, takes, history, request: gr.Request):
    """Write on from the whole song as it is, into the song's panel, as a song is written from its first line."""
    armed = STOP_SWITCHES.get(request.session_hash)
    try:
        with told_why("the song could not go on"):
            singer = find_voice(VOICES, voice)
            asked = parse_continue(text, temperature, length, top_k, top_p, seed, singer.lm.tokenizer.vocab_size,
                                   end_with_song, rhyme, syllables, real_words, takes)
            draft = history.draft.edited(asked.seed_line)
            for update in cowrite.continue_song(singer.lm, draft, asked, ENGINES[singer.name], armed and armed[0]):
                if update.draft is None:
                    yield gr.skip(), gr.skip(), update.added, update.status, gr.skip(), gr.skip()
                else:  # the whole song drawn anew: exactly the draft, its end's line breaks too
                    yield show_draft(history.then(draft).then(update.draft), singer.name, update.status)
    finally:
        if armed is not None and STOP_SWITCHES.get(request.session_hash) is armed:
            del STOP_SWITCHES[request.session_hash]


def look_inside(explain: Callable, text: object, window: object, voice: object):
    """``explain(lm, text, window)`` with the arguments checked: a caller's mistake is a message."""
    try:
        lm = find_voice(VOICES, voice).lm
        return explain(lm, *parse_look(text, window, lm.context_length))
    except ValueError as e:  # InputError too, and explain's own (a window longer than the text)
        raise user_error(str(e)) from None


def alternatives(text: str, window: int | None = None, voice: str | None = None) -> list[list]:
    """The model's five likeliest next characters after ``text`` (at most 2,000 characters), as
    [character, probability] pairs (``window``: how many of its last characters the model reads;
    default a whole context; ``voice``: default the first)."""
    return [[char, prob] for char, prob in look_inside(next_char_odds, text, window, voice)]


def attention(text: str, window: int | None = None, voice: str | None = None) -> dict:
    """What the model attended to when choosing the character after ``text`` (at most 2,000
    characters): {"chars": the window it read, "weights": [layer][head][position]}, each head's
    weights summing to 1."""
    return look_inside(attention_map, text, window, voice)


def attention_at(args: object) -> dict:
    """attention(text, window, voice) for the page's script, whose server calls arrive as one list.
    A server function's exception is a bare HTTP 500 with a traceback in the log, so a caller's
    mistake is answered as {"error": the pop-up's message (HTML)}."""
    try:
        if not isinstance(args, list) or len(args) != 3:
            raise user_error(f"attention_at takes [text, window, voice], got {show_value(args)}")
        return attention(*args)
    except gr.Error as e:
        return {"error": e.message}


def example_line(index, name) -> str:
    """The chosen voice's example first line number ``index`` (the page's examples, under Generate)."""
    try:
        examples = find_voice(VOICES, name).examples
    except InputError as e:
        raise user_error(str(e)) from None
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(examples):
        raise user_error(f"there is no example first line {show_value(index)}")
    return examples[index]


def show_voice(name, compare, kept):
    """The page's parts that belong to the chosen voice. The headings over the songs name the voice
    that wrote them: they change with the chooser only while no song is on show (show_singer)."""
    voice = find_voice(VOICES, name)
    headings = show_singer(name, compare)[1:] if kept is None else (gr.skip(), gr.skip())
    return (model_line(VOICES, LEFT_OUT, voice), *headings, gr.Dataset(samples=[[line] for line in voice.examples]),
            gr.Slider(maximum=voice.lm.tokenizer.vocab_size))


def show_singer(name, compare):
    """As a song starts: the voice that writes it, for the panel's script and the headings over the songs."""
    voice = find_voice(VOICES, name)
    return gr.HTML(voice=voice.name), voice.heading, voice.baseline().note if compare else ""


# The template never shows the value, so gradio never re-draws the song: assets/song.js appends each
# update's new part, which keeps a long song as quick to show as a short one.
SONG_TEMPLATE = legend() + '<div class="song"></div>'
# What the page's script needs to show each voice's alternatives and attention; the song panel's
# ``voice`` says which voice wrote the song on show.
SCRIPT_VOICES = {v.name: {"vocab": v.lm.tokenizer.chars, "layers": getattr(v.lm.model.config, "n_layer", 0),
                          "heads": getattr(v.lm.model.config, "n_head", 0)} for v in VOICES}
SONG_JS = f"const VOICES = {json.dumps(SCRIPT_VOICES)};\n" + (ASSETS / "song.js").read_text()
PLAIN_JS = "(on) => { document.querySelector('#song').classList.toggle('plain', !on); }"
# The form's choices, by plain name and what they ask for. Each box also takes what a person types
# (any scheme or syllables /generate takes), and so can show what a song's link asks for.
RHYME_CHOICES = [("free, no rhyme", "none")] + [(f"{name} {letters}", letters) for name, letters in SCHEMES.items()
                                                if letters]
SYLLABLE_CHOICES = [("free", "0"), ("6 a line", "6"), ("8 a line", "8"), ("10 a line", "10"),
                    ("8,6 (common metre)", "8,6")]


class Studio(gr.Blocks):
    """The page's Blocks, which check every call's values before its function sees them, so that a
    caller's mistake is a message (and one log line), never a traceback: first their number (gradio's
    own check answers with no message and writes the values it got into the log, raw), then, for the
    page's own events, what gradio's components make of them (a Radio's choices, a Slider's range)."""

    async def preprocess_data(self, block_fn, inputs: list, *args, **kwargs) -> list:
        name = block_fn.api_name or block_fn.name
        if len(inputs) != len(block_fn.inputs):
            raise user_error(f"{name} takes {len(block_fn.inputs)} values, got {len(inputs)}")
        try:
            return await super().preprocess_data(block_fn, inputs, *args, **kwargs)
        except gr.Error as e:  # its message names the value (as Python writes it) and what is wrong with it
            raise user_error(f"{name}: {shorten(e.message, 200)}") from None
        except ComponentProcessingError as e:
            raise user_error(f"{name} cannot read a value it was sent ({type(e.__cause__).__name__})") from None


with Studio(title="LyricGPT") as demo:
    gr.Markdown("# LyricGPT lyrics studio\nGive it a first line; it writes the song one character at a time.")
    model_status = gr.Markdown(model_line(VOICES, LEFT_OUT, VOICES[0]), elem_id="model-status")
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            voice = gr.Radio([(v.label, v.name) for v in VOICES], value=VOICES[0].name, label="Voice",
                             info="what each learned from, and how well it predicts songs held out from its training "
                                  "(bits per character: lower is better)", visible=len(VOICES) > 1, elem_id="voice")
            # One line to start with, so that Enter writes the song (Shift+Enter: a new line); it grows to four.
            seed_line = gr.Textbox(label="First line", placeholder="Type a line and press Enter, or leave it blank",
                                   info=f"up to {MAX_TEXT:,} characters", max_length=MAX_TEXT, lines=1, max_lines=4,
                                   elem_id="seed-line")
            seed_notice = gr.Markdown(elem_id="seed-notice")  # what the model will read differently, as it is typed
            temperature = gr.Slider(0.0, MAX_TEMPERATURE, value=DEFAULT_TEMPERATURE, step=0.05, label="Temperature",
                                    info="0 always picks the likeliest character (and soon repeats a line); higher is wilder",
                                    elem_id="temperature")
            length = gr.Slider(1, MAX_LENGTH, value=DEFAULT_LENGTH, step=1, label="Length (characters)", elem_id="length")
            end_with_song = gr.Checkbox(value=True, label="End with the song",
                                        info="stop where the model ends the song (two blank lines), or at the length",
                                        elem_id="end-with-song")
            # Open: a newcomer should see that a song can rhyme and scan.
            with gr.Accordion("Form", open=True, elem_id="form"):
                with gr.Row():
                    rhyme = gr.Dropdown(RHYME_CHOICES, value=DEFAULT_RHYME, allow_custom_value=True,
                                        label="Rhyme scheme", info="equal letters rhyme; a stanza has a line a "
                                                                   "letter (or type your own, like ABAC)",
                                        elem_id="rhyme")
                    syllables = gr.Dropdown(SYLLABLE_CHOICES, value=DEFAULT_SYLLABLES, allow_custom_value=True,
                                            label="Syllables a line", info="0 is free; 4 to 16, or a pattern like 8,6",
                                            elem_id="syllables")
                real_words = gr.Checkbox(value=DEFAULT_REAL_WORDS, label="Real words only",
                                         info="every word one the voice knows from its songs", elem_id="real-words")
                takes = gr.Slider(1, MAX_TAKES, value=DEFAULT_TAKES, step=1, label="Takes of each line",
                                  info="for a song with a form: each line is written this many times and one "
                                       "kept, the less the form bent it the likelier (the song then shows a line "
                                       "at a time); 1 writes it a character at a time",
                                  elem_id="takes")
            with gr.Accordion("Advanced", open=False):
                top_k = gr.Slider(0, VOICES[0].lm.tokenizer.vocab_size, value=0, step=1, label="Top-k",
                                  info="sample only from the k likeliest characters (0 = off)", elem_id="top-k")
                top_p = gr.Slider(0.01, 1.0, value=DEFAULT_TOP_P, step=0.01, label="Top-p",
                                  info="sample only from the likeliest characters that make up this share "
                                       "of the probability (1 = off)", elem_id="top-p")
                seed = gr.Textbox(value="randomize", label="Seed",
                                  info="a number writes the same song again; blank or 'randomize' writes a new one",
                                  elem_id="seed")
            with gr.Row():
                generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                stop_btn = gr.Button("Stop", variant="stop", interactive=False, elem_id="stop")  # while a song runs
                another_btn = gr.Button("Write another", elem_id="write-another")  # same settings, a new seed
            examples = gr.Dataset(components=[seed_line], samples=[[line] for line in VOICES[0].examples], type="index",
                                  label="Try a first line", elem_id="examples")
        with gr.Column(scale=3, min_width=300):
            gpt_label = gr.Markdown(VOICES[0].heading, elem_id="gpt-label")
            song = gr.HTML(html_template=SONG_TEMPLATE, max_height=560, elem_classes="lyrics",
                           js_on_load=SONG_JS, server_functions=[attention_at], elem_id="song",
                           voice=VOICES[0].name)  # the voice of the song on show, for the page's script
            status = gr.Markdown(elem_id="song-status")
            with gr.Row():
                share = gr.Textbox(label="Share: a link that writes this song again", interactive=False,
                                   buttons=["copy"], scale=3, elem_id="share-link")
                download = gr.DownloadButton("Download", interactive=False, scale=1, min_width=100, elem_id="download")
            colour = gr.Checkbox(value=True, label="Colour each character by how likely the model found it "
                                                   "(hover or tap one to see the alternatives)", elem_id="colour")
            compare = gr.Checkbox(value=False, label="Write it with the bigram baseline too, to hear what "
                                                     "attention adds", elem_id="compare")
            with gr.Column(visible=False) as bigram_column:
                bigram_label = gr.Markdown(elem_id="bigram-label")
                bigram_song = gr.HTML(html_template='<div class="song">${value}</div>', elem_classes="lyrics",
                                      max_height=300, autoscroll=True, elem_id="bigram-song")
            # Under the song, for the song on show: the full song above stays the first thing a newcomer meets.
            with gr.Accordion("Write it together", open=True, elem_id="together"):
                gr.Markdown("Change the song above as text, or start one here. **Continue** writes on from all of "
                            "it; **Next line** offers four lines side by side (click one to add it), **Four more** "
                            "four others, **Rewrite** four for the line you pick; **Undo** takes back the last "
                            "change. In the song, LyricGPT's characters are coloured and yours plain. A song written "
                            "together has no Share link (a link writes a song again from its settings): Download "
                            "keeps it, with whose lines are whose.")
                song_text = gr.Textbox(label="The song, as text", placeholder="Type a line, then ask for the next one",
                                       info=f"up to {MAX_SONG_TEXT:,} characters", max_length=MAX_SONG_TEXT,
                                       lines=3, max_lines=12, elem_id="song-text")
                with gr.Row():
                    continue_btn = gr.Button("Continue", min_width=70, elem_id="continue")
                    next_btn = gr.Button("Next line", min_width=70, elem_id="next-line")
                    more_btn = gr.Button("Four more", min_width=70, elem_id="four-more")
                    undo_btn = gr.Button("Undo", min_width=70, elem_id="undo")
                candidates = gr.HTML(js_on_load=cowrite.CARDS_JS, elem_id="candidates")
                together_status = gr.Markdown(elem_id="together-status")
                with gr.Row():
                    line_number = gr.Number(1, precision=0, minimum=1, label="Line to rewrite",
                                            info="1 is the first; blank lines are not counted", min_width=120,
                                            elem_id="line-number")
                    rewrite_btn = gr.Button("Rewrite", min_width=80, elem_id="rewrite")
                candidate_lines = gr.JSON(visible=False)  # the candidates as a list, for API callers
                count = gr.Number(cowrite.PAGE_CANDIDATES, visible=False)
                history = gr.State(drafts.History())  # the song written together, for Undo
                offer = gr.State()  # the candidates on show
            lyric = gr.Textbox(visible=False)  # the plain text, for API callers
            kept = gr.State()  # what wrote the song on show: (request, voice, song, its HTML), for its link and file
            opened = gr.State(0)  # set to 1 by a song's link, which starts that song

    inputs = [seed_line, temperature, length, top_k, top_p, seed]
    form = [rhyme, syllables, real_words]  # after every other setting: /generate's parameters keep their places
    song_form = form + [takes]  # a whole song's form: /lines and /rewrite write candidates of one take each
    # A song starts from Generate, Enter in the first line, "Write another" or a link.
    checked = gr.on([generate_btn.click, seed_line.submit, another_btn.click, opened.change], start_song, seed,
                    [seed, stop_btn], queue=False, api_visibility="private", show_progress="hidden").then(
        check, inputs + [voice] + song_form, None, api_visibility="private", show_progress="hidden")  # queued: its error shows as a toast
    checked.failure(stop_idle, None, stop_btn, queue=False, api_visibility="private", show_progress="hidden")
    checked.success(show_singer, [voice, compare], [song, gpt_label, bigram_label], queue=False,
                    api_visibility="private", show_progress="hidden")
    checked.success(lambda: ("", gr.DownloadButton(value=None, interactive=False)), None, [share, download],
                    queue=False, api_visibility="private", show_progress="hidden")  # until the new song is written
    sung = checked.success(generate, inputs + [colour, voice, end_with_song] + song_form, [lyric, song, status, kept],
                           api_name="generate", api_visibility="public",
                           show_progress="hidden",  # the status says how it goes; no red "Error" over the song
                           concurrency_limit=2 * (BATCH + WAITING),  # the engine, not gradio's queue, decides who waits
                           preprocess=False)  # parse_request checks the raw values: API callers skip the sliders' limits
    sung.success(keep, [kept, history, song_text], [share, download, history, song_text], api_visibility="private",
                 show_progress="hidden")
    sung.then(stop_idle, None, stop_btn, queue=False, api_visibility="private", show_progress="hidden")
    checked.success(generate_bigram, inputs + [compare, voice, end_with_song] + song_form, bigram_song,
                    api_visibility="private",
                    preprocess=False, concurrency_limit=2 * (BATCH + WAITING))
    demo.load(open_link, None, inputs + [voice, end_with_song] + song_form + [opened], api_visibility="private",
              show_progress="hidden")
    compare.change(lambda on, name: (gr.Column(visible=on), find_voice(VOICES, name).baseline().note if on else ""),
                   [compare, voice], [bigram_column, bigram_label], api_visibility="private")
    voice.change(show_voice, [voice, compare, kept], [model_status, gpt_label, bigram_label, examples, top_k],
                 api_visibility="private")
    examples.click(example_line, [examples, voice], seed_line,
                   api_visibility="private")
    gr.api(alternatives, api_name="alternatives")
    gr.api(attention, api_name="attention")
    gr.on([seed_line.change, voice.change], seed_notice_text, [seed_line, voice], seed_notice, queue=False,
          show_progress="hidden", api_visibility="private")
    stop_btn.click(stop, None, None, queue=False, api_visibility="private")
    colour.change(None, colour, None, js=PLAIN_JS, api_visibility="private")
    # Writing it together: /lines and /rewrite are the page's Next line and Rewrite.
    together = [history, song_text, song, status, share, download]  # what a change to the song shows
    offered = [candidate_lines, candidates, together_status, offer]
    asked = [temperature, top_k, top_p, seed, voice] + form
    writes = dict(show_progress="hidden", concurrency_limit=2 * (BATCH + WAITING), preprocess=False)
    next_btn.click(lines, [song_text, count] + asked, offered, api_name="lines", api_visibility="public", **writes)
    rewrite_btn.click(rewrite, [song_text, line_number, count] + asked, offered, api_name="rewrite",
                      api_visibility="public", **writes)
    more_btn.click(four_more, [song_text, count, temperature, top_k, top_p, voice] + form + [offer], offered,
                   api_visibility="private", **writes)
    candidates.click(choose, [offer, history, song_text], together + [candidates], api_visibility="private",
                     show_progress="hidden")
    undo_btn.click(undo, [history, song_text, voice], together, api_visibility="private", show_progress="hidden")
    continued = continue_btn.click(start_writing, None, stop_btn, queue=False, api_visibility="private",
                                   show_progress="hidden").then(
        continue_writing, [song_text, temperature, length, top_k, top_p, seed, voice, end_with_song] + song_form + [history],
        together, api_visibility="private", **writes)
    continued.then(stop_idle, None, stop_btn, queue=False, api_visibility="private", show_progress="hidden")


if __name__ == "__main__":
    demo.queue(max_size=4 * (BATCH + WAITING)).launch(max_threads=4 * (BATCH + WAITING) + 40,
                                                      css=PAGE_CSS + cowrite.CARDS_CSS,
                                                      app_kwargs={"middleware": [Middleware(RequestLimits)]})
