"""Reading a lyrics corpus, splitting it by song, and cutting it into batches."""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Iterator

import torch

from .model import IGNORE_INDEX
from .tokenizer import normalize

SONG_BREAK = "\n\n\n"  # two blank lines end a song in the default corpus
VAL_PERCENT = 5


class CorpusError(ValueError):
    """A corpus that cannot be trained on, with a message that says why."""


def read_corpus(path: str | Path) -> str:
    """Read one UTF-8 text file, or every ``.txt`` file in a folder (sorted, songs kept apart)."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"no such file or folder: {path}")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise CorpusError(f"the folder {path} has no .txt files")
    else:
        files = [path]
    texts = [_read_text_file(f) for f in files]
    return SONG_BREAK.join(t.strip("\n") for t in texts)


def _read_text_file(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path} is not UTF-8 text (invalid byte at offset {e.start}); "
                          "re-save it as UTF-8") from None
    text = normalize(text)
    if not text.strip():
        raise CorpusError(f"{path} is empty")
    return text


def split_songs(text: str) -> list[str]:
    return [s.strip("\n") for s in re.split(r"\n{3,}", text) if s.strip()]


def first_lines(text: str, n: int, max_chars: int = 80) -> list[str]:
    """Up to ``n`` different first lines of the songs in ``text``, none longer than ``max_chars``."""
    lines: list[str] = []
    for song in split_songs(text):
        line = song.split("\n", 1)[0].strip()
        if line and len(line) <= max_chars and line not in lines:
            lines.append(line)
        if len(lines) == n:
            break
    return lines


def train_val_split(text: str, min_chars: int = 0, salt: str = "") -> tuple[str, str]:
    """Split a corpus by song, the same way every time: about 5% of the songs go to validation.

    A song goes to validation when a checksum of its text says so, so that the split does not
    depend on song order and a song that appears twice lands on one side only. Texts without
    song breaks (or too few songs) are cut at the line break nearest 90% instead.
    ``min_chars`` is the least each side must hold (one training window plus one). A ``salt``,
    checksummed before each song, picks another 5% (to see how typical a split is).
    """
    songs = split_songs(text)
    is_val = [zlib.crc32((salt + s).encode("utf-8")) % 100 < VAL_PERCENT for s in songs]
    train = SONG_BREAK.join(s for s, v in zip(songs, is_val) if not v)
    val = SONG_BREAK.join(s for s, v in zip(songs, is_val) if v)
    if len(songs) < 20 or min(len(train), len(val)) < min_chars:
        cut = text.rfind("\n", 0, int(len(text) * 0.9)) + 1 or int(len(text) * 0.9)
        train, val = text[:cut], text[cut:]
    for name, part in (("training", train), ("validation", val)):
        if len(part) < min_chars:
            raise CorpusError(f"the corpus is too short: its {name} part has {len(part)} characters, "
                              f"and one training window needs {min_chars}; use more text or a "
                              "shorter --context-length")
    return train, val


def songbook_split(text: str, min_chars: int = 0, val_share: float = 0.1) -> tuple[str, str]:
    """Split a small songbook by whole songs: one song in ten for validation, and never none.

    A fine-tuning run keeps the checkpoint that does best on these songs, so they must be songs it
    never trained on, not the end of one it did. Which songs is chosen by checksum, as in
    ``train_val_split``, so the same songbook splits the same way every time.
    """
    songs = split_songs(text)
    if len(songs) < 2:
        raise CorpusError(f"the songbook holds {len(songs)} song{'s' * (len(songs) != 1)}; fine-tuning needs at "
                          "least 2, separated by two blank lines: it learns from some and keeps at least one "
                          "whole song aside, to check that it learns the voice rather than the words")
    n_val = max(1, round(len(songs) * val_share))
    by_checksum = sorted(range(len(songs)), key=lambda i: zlib.crc32(songs[i].encode("utf-8")))
    is_val = set(by_checksum[:n_val])
    train = SONG_BREAK.join(s for i, s in enumerate(songs) if i not in is_val)
    val = SONG_BREAK.join(s for i, s in enumerate(songs) if i in is_val)
    if len(train) < min_chars:
        raise CorpusError(f"the songbook is too short: its training songs hold {len(train)} characters, and one "
                          f"training window needs {min_chars}; add songs")
    return train, val


def split_as_trained(text: str, min_chars: int, fine_tuned: bool) -> tuple[str, str]:
    """The split train.py makes: whole songs of a songbook when fine-tuning, else ``train_val_split``."""
    return (songbook_split if fine_tuned else train_val_split)(text, min_chars=min_chars)


def random_windows(data: torch.Tensor, context_length: int, n_rows: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_rows`` random windows of the text and, for each, the same window shifted by one."""
    starts = torch.randint(len(data) - context_length, (n_rows,), generator=generator)
    offsets = torch.arange(context_length)
    x = data[starts[:, None] + offsets]
    y = data[starts[:, None] + offsets + 1]
    return x, y


def scoring_windows(data: torch.Tensor, context_length: int, stride: int,
                    batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of windows that score every target ``data[1:]`` exactly once.

    Windows start every ``stride`` characters; a window scores only the targets that no earlier
    window scored (the others are set to IGNORE_INDEX), so with ``stride < context_length`` every
    character after the first window is predicted from at least ``context_length - stride``
    characters before it. The last window is moved back to end exactly at the text's end.
    """
    if not 1 <= stride <= context_length:
        raise ValueError(f"stride must be between 1 and the context length {context_length}, got {stride}: "
                         "a longer stride would leave characters unscored")
    n = len(data) - 1  # number of targets
    if n < 1:
        return
    context_length = min(context_length, n)
    starts = list(range(0, n - context_length + 1, stride))
    if starts[-1] + context_length < n:
        starts.append(n - context_length)
    xs, ys, scored_until = [], [], 0
    for s in starts:
        x = data[s:s + context_length]
        y = data[s + 1:s + context_length + 1].clone()
        already = max(0, scored_until - s)
        y[:already] = IGNORE_INDEX
        scored_until = s + context_length
        xs.append(x)
        ys.append(y)
        if len(xs) == batch_size:
            yield torch.stack(xs), torch.stack(ys)
            xs, ys = [], []
    if xs:
        yield torch.stack(xs), torch.stack(ys)
