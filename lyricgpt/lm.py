"""A trained model and its tokenizer, as one object: load it, stream lyrics from it, save it."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from pathlib import Path
from typing import Iterator

import torch

from .hub import download, looks_like_repo_id
from .model import ACTIVATIONS, CONFIGS, BigramConfig, GPTConfig, build_model
from .data import SONG_BREAK
from .form import Form, FormSpec
from .lexicon import Lexicon
from .sampler import MIN_SONG_CHARS, VERSE_GRACE, SongEnd, generate
from .tokenizer import CharTokenizer, Encoding
from .weights import CONFIG_NAME, WEIGHTS_NAME, load_weights

TOKENIZER_NAME = "tokenizer.json"
CARD_NAME = "README.md"
EXAMPLES_NAME = "examples.txt"  # a voice's example first lines, one a line (the page offers them)
_HERE = Path(__file__).resolve().parent
# The bundled folk-songs model: inside an installed package (pyproject.toml puts assets/model there),
# else beside the package, in a clone (and in an editable install, which runs the clone's files).
BUNDLED_MODEL = next((p for p in (_HERE / "bundled", _HERE.parent / "assets" / "model") if p.is_dir()),
                     _HERE / "bundled")
MAX_CONFIG_BYTES = 64 * 1024
# Bounds that any sane LyricGPT model fits in; they stop a hostile config from allocating terabytes.
LIMITS = {"vocab_size": 10_000, "context_length": 65_536, "n_layer": 256, "n_head": 256, "n_embd": 16_384}


class ModelError(ValueError):
    """A model folder that cannot be loaded, with the reason."""


class LyricModel:
    """A model, its tokenizer, and where they came from."""

    def __init__(self, model: torch.nn.Module, tokenizer: CharTokenizer, source: str = "",
                 val_bits_per_char: float | None = None, folder: Path | None = None):
        if model.config.vocab_size != tokenizer.vocab_size:
            raise ModelError(f"the model has {model.config.vocab_size} tokens but the tokenizer has "
                             f"{tokenizer.vocab_size}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.source = source
        self.val_bits_per_char = val_bits_per_char  # as its model card reports it, if it has one
        self.folder = folder  # where load_model found its files (a Hub model: in the local cache)

    @property
    def context_length(self) -> int:
        return self.model.config.context_length

    def read_prompt(self, seed_text: str) -> Encoding:
        """What the model will read of a seed text: normalised, unknown characters dropped,
        and only the last context window kept."""
        enc = self.tokenizer.encode_with_report(seed_text)
        n = self.context_length
        return Encoding(enc.ids[-n:], enc.text[-n:], enc.dropped)

    def stream_with_probs(self, seed_text: str, max_new_chars: int = 500, temperature: float = 1.0,
                          top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                          end_with_song: bool = False, form: FormSpec | None = None) -> Iterator[tuple[str, float]]:
        """Yield each new character with the probability the model gave it."""
        prompt = self.read_prompt(seed_text).ids or self.start_ids()
        end, most = self.song_plan(max_new_chars, end_with_song, form is not None)
        for step in generate(self.model, prompt, most, temperature, top_k, top_p, seed, end=end,
                             form=self.form(form) if form is not None else None):
            yield self.tokenizer.chars[step.token], step.prob

    def song_plan(self, length: int, end_with_song: bool, as_song: bool = True) -> tuple[SongEnd | None, int]:
        """A song's end and the most characters it may take. ``as_song`` (a song with a form, as the
        page writes them all): at its length it ends at its next stanza break, if it may end (within
        VERSE_GRACE more), and it finishes its line; else it stops at its length exactly."""
        end = self.song_end(by=length if as_song else None) if end_with_song else None
        return end, length + (VERSE_GRACE if end and as_song else 0)

    def stream(self, seed_text: str, max_new_chars: int = 500, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
               end_with_song: bool = False, form: FormSpec | None = None) -> Iterator[str]:
        """Yield ``max_new_chars`` new characters, one at a time; with ``end_with_song``, fewer when
        the model ends the song first (its last characters are then the song's end, ``SONG_BREAK``).
        Given a ``form`` (``lyricgpt.form``), the song keeps it and finishes its line after its length."""
        for char, _ in self.stream_with_probs(seed_text, max_new_chars, temperature, top_k, top_p, seed,
                                              end_with_song, form):
            yield char

    def form(self, spec: FormSpec) -> Form:
        """A song form for this model: its characters, and the words it knows where the form needs them.
        One per spec, kept (as the engine keeps its own), with the masks it has built: a song in takes
        asks for it at every line."""
        return self._forms(spec)

    @functools.cached_property
    def _forms(self):
        return functools.lru_cache(maxsize=64)(lambda spec: Form(
            spec, self.lexicon if spec.real_words or spec.rhyme or spec.syllables else None, self.tokenizer.chars))

    @functools.cached_property
    def lexicon(self) -> Lexicon:
        """The words this model knows: those of the songs it learned from, where its card names them
        and they are on this machine (looked up from the working folder and the model folder's
        parents, where train.py is usually run), else the pronouncing dictionary's."""
        roots = [Path.cwd(), *self.folder.resolve().parents] if self.folder else [Path.cwd()]
        files = card_song_files(self.folder, *roots)
        return Lexicon.from_songs(files) if files else Lexicon.from_dictionary()

    def song_end(self, min_new_chars: int = MIN_SONG_CHARS, by: int | None = None) -> SongEnd | None:
        """Where this model's songs end: two blank lines, as between the songs of its corpus (None for
        a vocabulary without line breaks); after ``by`` new characters, at the next stanza break."""
        marker = self.tokenizer.encode(SONG_BREAK)
        return SongEnd(tuple(marker), min_new_chars, by) if len(marker) == len(SONG_BREAK) else None

    def start_ids(self) -> list[int]:
        """What the model reads when given no seed text: a line break, as every song starts after one."""
        return self.tokenizer.encode("\n") or [0]

    def save(self, folder: str | Path) -> None:
        """Write config.json and model.safetensors (as PyTorchModelHubMixin does) and tokenizer.json."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(folder / TOKENIZER_NAME)
        self.model.save_pretrained(folder)


def load_model(source: str | Path, revision: str | None = None, timeout: float = 10.0,
               device: str = "cpu") -> LyricModel:
    """Load a model from a local folder or a Hub repo id ("user/repo")."""
    folder = Path(source)
    if not folder.exists():
        if not looks_like_repo_id(str(source)):
            raise ModelError(f"{source} is neither a model folder nor a Hub repo id (USER/REPO)")
        if folder.parent.is_dir():  # "runs/mine" where runs/ is here: a mistyped folder, not a Hub repo
            raise ModelError(f"there is no model folder {source} (and as {folder.parent} is a folder here, "
                             "it is not taken for a Hub repo id)")
        folder = download(str(source), revision=revision, timeout=timeout)
    if not folder.is_dir():
        raise ModelError(f"{source} is not a folder")
    for name in (CONFIG_NAME, WEIGHTS_NAME, TOKENIZER_NAME):
        if not (folder / name).is_file():
            raise ModelError(f"the model folder {source} has no {name}")
    config = read_config(folder / CONFIG_NAME)
    tokenizer = CharTokenizer.load(folder / TOKENIZER_NAME)
    model = build_model(config)
    load_weights(model, folder / WEIGHTS_NAME)
    return LyricModel(model.to(device), tokenizer, source=str(source), val_bits_per_char=card_bits_per_char(folder),
                      folder=folder)


def card_bits_per_char(folder: Path) -> float | None:
    """The validation bits/char that train.py wrote into the model card's metadata, if any."""
    card = folder / CARD_NAME
    if not card.is_file():
        return None
    match = re.search(r"^val_bits_per_char: ([0-9.]+)$", card.read_text(encoding="utf-8", errors="replace")[:4096], re.M)
    return float(match.group(1)) if match else None


def card_training_settings(folder: Path | None) -> dict:
    """The training settings that train.py wrote into the model card (its data, its base model...), or {}."""
    card = folder / CARD_NAME if folder else None
    if card is None or not card.is_file():
        return {}
    match = re.search(r"## Configuration\s*```json\n(.*?)\n```", card.read_text(encoding="utf-8", errors="replace"), re.S)
    try:
        settings = json.loads(match.group(1))["training"] if match else {}
    except (json.JSONDecodeError, KeyError, TypeError):
        return {}
    return settings if isinstance(settings, dict) else {}


def card_training_data(settings: dict, *roots: Path) -> Path | None:
    """The corpus a card's training settings name (``data``), if it is on this machine: as written
    (from the working folder), then under each of ``roots``."""
    data = settings.get("data")
    if not isinstance(data, str):
        return None
    return next((path for path in [Path(data), *(root / data for root in roots)] if path.exists()), None)


def read_config(path: Path) -> GPTConfig | BigramConfig:
    """Parse and type-check config.json before anything is built from it."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ModelError(f"config.json is {size} bytes; the limit is {MAX_CONFIG_BYTES}")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"config.json is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ModelError("config.json must hold a JSON object")
    arch = data.get("architecture")
    if arch not in CONFIGS:
        raise ModelError(f"config.json: unknown architecture {arch!r}; expected one of {sorted(CONFIGS)}")
    cls = CONFIGS[arch]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ModelError(f"config.json: unknown fields {unknown}")
    defaults = cls()
    for name, value in data.items():
        expected = type(getattr(defaults, name))
        ok = (isinstance(value, expected) and not (expected is int and isinstance(value, bool))) or (
            expected is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            raise ModelError(f"config.json: {name} must be {expected.__name__}, got {value!r}")
        if name in LIMITS and not 1 <= value <= LIMITS[name]:
            raise ModelError(f"config.json: {name}={value} is outside 1..{LIMITS[name]}")
    config = cls(**data)
    if isinstance(config, GPTConfig):
        if config.n_embd % config.n_head:
            raise ModelError(f"config.json: n_embd={config.n_embd} is not a multiple of n_head={config.n_head}")
        if not (math.isfinite(config.dropout) and 0.0 <= config.dropout < 1.0):
            raise ModelError(f"config.json: dropout={config.dropout} is outside [0, 1)")
        if config.activation not in ACTIVATIONS:
            raise ModelError(f"config.json: unknown activation {config.activation!r}; "
                             f"expected one of {sorted(ACTIVATIONS)}")
    return config


def card_song_files(folder: Path | None, *roots: Path) -> list[Path]:
    """The song files a model learned from, those on this machine: its card's data, then its base
    model's (``init_from``: a fine-tuned voice also knows its base's words), and so on."""
    files: list[Path] = []
    seen: set[Path] = set()
    while folder is not None and folder.resolve() not in seen:
        seen.add(folder.resolve())
        settings = card_training_settings(folder)
        data = card_training_data(settings, *roots)
        if data is not None and data not in files:
            files.append(data)
        base = settings.get("init_from")
        folder = next((p for p in [Path(base), *(r / base for r in roots)] if p.is_dir()), None) \
            if isinstance(base, str) else None
    return files
