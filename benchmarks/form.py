"""Songs with a form (``lyricgpt.form``) beside free songs and held-out human songs, in one table.

    apt-get install -y p7zip-full          # once: the PPMd judge (as benchmarks/compressors.py)
    python benchmarks/form.py              # 12 songs a column, length 600: about 12 minutes on 2 cores (3 with --no-speed)
    python benchmarks/form.py --quick      # a smoke run: 2 songs a column, 200 characters, one speed repeat
    python benchmarks/form.py --songs 24 --show 2 --no-speed

Samples --songs songs for each column at the page's defaults (temperature sampler.DEFAULT_TEMPERATURE,
top-k and top-p off, "End with the song" on, a length of --length characters planned as the page plans
it (``lm.song_plan``: past it a song ends at its next stanza break), seeds 0, 1, ..., first lines
serving.EXAMPLE_LINES in turn), every column from the same seeds and first lines, through the engine
(``lyricgpt.engine.Engine``, one torch thread) as the page writes them (``lyricgpt.takes.write_song``: a
song with a form a line at a time, the best of --takes takes of each line, as the page's default; the
columns "1 take" show the character-level form alone), every song at once, each in a thread. The
columns: the held-out songs of the corpus (split as train.py split them: the human baseline), free
songs (``FormSpec()``, the page's free song), and each form. Then it judges every column alike, with judges that are not
the form's own:

- rhyme: two lines rhyme when their last words are two different words that share a rhyming part
  by the CMU dictionary, read through the ``pronouncing`` package (not ``lyricgpt.lexicon``); a
  last word CMU lacks rhymes with nothing. For a scheme: of the line pairs it asks to rhyme (each
  line with the first line of its stanza that has its letter), in every complete stanza (as many
  lines as the scheme has letters), the share that rhyme. For every column, the issue's measures:
  stanzas of 4+ lines with a rhyming pair at most 3 lines apart, and lines (after a stanza's first)
  that rhyme with one of the 3 before.
- syllables: CMU's (the first pronunciation), vowel groups where CMU lacks the word. With asked
  syllables: the share of lines (after the person's first line) within 1 of the pattern; for every
  column: lines within 1 of the line two before, in the same stanza.
- real words: the share of words (after the first line) that the voice knows (``lm.lexicon.counts``).
- naturalness: 7z PPMd's bits per character of the column's songs given the training songs
  (``benchmarks/compressors.py``'s ``bits_given``): a judge that is not the model.
- what the form did: characters where it relaxed (``Step.relaxed``) per 1,000, and where it left the
  model less than half its probability (the page marks those as steered).
- speed: milliseconds per character through the engine, 1 song and 16 songs at once (seeds 0-15,
  a song's takes being rows of the batch too,
  "End with the song" off so that every song writes --speed-chars characters), each form against
  free songs, interleaved and the median of --repeats; by the wall clock and by the CPU time of the
  engine's process (on a machine shared with other work, the steadier of the two).
- the form's tacked-on rhymes: lines whose last word stands after a stop or a quote.

Only whole lines are judged: a song cut at its length loses its unfinished last line, and a human
song is cut to the whole lines of its first (first line + --length) characters.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pronouncing  # noqa: E402
import torch  # noqa: E402

from compressors import COMPRESSORS, bits_given  # noqa: E402
from lyricgpt import load_model  # noqa: E402
from lyricgpt.data import SONG_BREAK, read_corpus, split_as_trained, split_songs  # noqa: E402
from lyricgpt.engine import Engine  # noqa: E402
from lyricgpt.form import FormSpec  # noqa: E402
from lyricgpt.lexicon import MIN_KNOWN  # noqa: E402
from lyricgpt.sampler import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, SamplingSettings  # noqa: E402
from lyricgpt.serving import EXAMPLE_LINES  # noqa: E402
from lyricgpt.song_request import DEFAULT_TAKES  # noqa: E402
from lyricgpt.takes import write_song  # noqa: E402

PPMD = next(iter(COMPRESSORS))  # "7z PPMd (o=12, 256 MB)"
WORD = re.compile(r"[A-Za-z']+")
STEERED = 0.5  # as the page: a character where the form left the model less than this
# The columns after the human songs: a label, the form (real words on with every scheme) and its takes of
# each line (None: the page's, --takes); the character-level form alone (1 take) beside the page's.
FORMS = [
    ("free", FormSpec(), None),
    ("AABB", FormSpec(rhyme="AABB", real_words=True), None),
    ("ABAB", FormSpec(rhyme="ABAB", real_words=True), None),
    ("ABCB", FormSpec(rhyme="ABCB", real_words=True), None),
    ("AABBA", FormSpec(rhyme="AABBA", real_words=True), None),
    ("syllables 8", FormSpec(syllables=(8,)), None),
    ("ABCB, 8,6", FormSpec(rhyme="ABCB", syllables=(8, 6), real_words=True), None),
    ("real words", FormSpec(real_words=True), None),
    ("AABB, 1 take", FormSpec(rhyme="AABB", real_words=True), 1),
    ("ABCB, 1 take", FormSpec(rhyme="ABCB", real_words=True), 1),
]
HUMAN = "human (held-out)"


# -- the judge: CMU through `pronouncing`, independent of lyricgpt.lexicon


def key(word: str) -> str:
    return word.lower().strip("'")


def phones(word: str) -> list[str]:
    return pronouncing.phones_for_word(word.lower()) or pronouncing.phones_for_word(key(word))


def rhyme(a: str | None, b: str | None) -> bool:
    """Two different words with a rhyming part in common (CMU); a word CMU lacks rhymes with nothing."""
    if not a or not b or key(a) == key(b):
        return False
    parts = {pronouncing.rhyming_part(p) for p in phones(a)}
    return any(pronouncing.rhyming_part(p) in parts for p in phones(b))


def vowel_groups(word: str) -> int:
    word = key(word)
    groups = len(re.findall(r"[aeiouy]+", word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and groups > 1:
        groups -= 1  # a silent final e
    return max(1, groups)


def syllables(line: str) -> int:
    total = 0
    for word in WORD.findall(line):
        if key(word):
            found = phones(word)
            total += pronouncing.syllable_count(found[0]) if found else vowel_groups(word)
    return total


def last_word(line: str) -> str | None:
    words = [w for w in WORD.findall(line) if key(w)]
    return words[-1] if words else None


def set_apart(line: str) -> bool:
    """Whether the line's last word stands after a stop or a quote, tacked on (`to the sea." Witty.`)."""
    words = [m for m in WORD.finditer(line) if key(m.group())]
    return len(words) >= 2 and bool(re.search(r'[.!?;:"]', line[words[-2].end():words[-1].start()]))


def stanzas(text: str) -> list[list[str]]:
    """The song's stanzas (runs of lines between blank lines)."""
    out: list[list[str]] = [[]]
    for line in text.split("\n"):
        if line.strip():
            out[-1].append(line)
        elif out[-1]:
            out.append([])
    return [s for s in out if s]


def scheme_pairs(scheme: str) -> list[tuple[int, int]]:
    """The line pairs a scheme asks to rhyme: each line and the first line before it with its letter."""
    return [(scheme.index(letter), i) for i, letter in enumerate(scheme) if scheme.index(letter) < i]


@dataclass
class Song:
    line: str  # the first line, the person's
    seed: int
    text: str = ""  # the whole song, first line included, without the song's end
    ended: bool = False  # the model ended it (else it reached its length)
    steps: int = 0
    relaxed: int = 0  # steps where the form relaxed
    steered: int = 0  # steps where the form left the model less than STEERED

    @property
    def judged(self) -> str:
        """Its whole lines: a song cut at its length loses an unfinished last line."""
        if self.ended or self.text.endswith("\n"):
            return self.text
        return self.text[:self.text.rfind("\n") + 1] if "\n" in self.text else ""


@dataclass
class Tally:
    hit: int = 0
    of: int = 0

    def add(self, ok: bool) -> None:
        self.hit += bool(ok)
        self.of += 1

    def show(self, digits: int = 1) -> str:
        return f"{self.hit / self.of:.{digits}%} ({self.hit:,}/{self.of:,})" if self.of else "-"


@dataclass
class Column:
    label: str
    spec: FormSpec | None  # None: the human songs
    takes: int = 1  # of each line (lyricgpt.takes)
    songs: list[Song] = field(default_factory=list)
    ppmd: float = float("nan")


def judge(column: Column, lexicon: dict[str, int]) -> dict[str, str]:
    """The column's figures, by row."""
    spec = column.spec or FormSpec()
    scheme, pattern = spec.rhyme, spec.syllables
    asked, complete, stanza_rhymes, line_rhymes = Tally(), Tally(), Tally(), Tally()
    on_pattern, scans, words, apart = Tally(), Tally(), Tally(), Tally()
    for song in column.songs:
        song_stanzas = stanzas(song.judged)
        for number, stanza in enumerate(song_stanzas):
            ends = [last_word(line) for line in stanza]
            if len(stanza) >= 4:
                stanza_rhymes.add(any(rhyme(ends[i], ends[j]) for j in range(len(ends))
                                      for i in range(max(0, j - 3), j)))
            for j in range(1, len(ends)):
                line_rhymes.add(any(rhyme(ends[i], ends[j]) for i in range(max(0, j - 3), j)))
            counts = [syllables(line) for line in stanza]
            for j in range(2, len(counts)):
                scans.add(abs(counts[j] - counts[j - 2]) <= 1)
            if pattern:  # every line but the person's first
                for j, count in enumerate(counts):
                    if number or j:
                        on_pattern.add(abs(count - pattern[j % len(pattern)]) <= 1)
            cut_short = number == len(song_stanzas) - 1 and not song.ended and len(stanza) < len(scheme)
            if scheme and not cut_short:  # a song that reached its length may stop mid-stanza
                complete.add(len(stanza) == len(scheme))
                if len(stanza) == len(scheme):
                    for i, j in scheme_pairs(scheme):
                        asked.add(rhyme(ends[i], ends[j]))
        for line in [line for line in song.judged.split("\n") if line.strip()][1:]:  # after the person's line
            apart.add(set_apart(line))
            for word in WORD.findall(line):
                if key(word):
                    words.add(word.lower() in lexicon or key(word) in lexicon)
    steps = sum(s.steps for s in column.songs)
    generated = column.spec is not None
    lengths = [len(s.text) for s in column.songs]
    mid_line = sum(not s.ended and not s.text.endswith("\n") for s in column.songs)
    ended = sum(s.ended for s in column.songs)
    rows = {
        "takes of each line (lyricgpt.takes; a free song is written in one)":
            ("1" if spec.free else str(column.takes)) if generated else "-",
        "songs (those that ended at a song's end, not cut)": f"{len(column.songs)}"
                                                             + (f" ({ended})" if generated else ""),
        "songs that stopped mid-line (at the length)": f"{mid_line}" if generated else "-",
        "characters a song (median)": f"{statistics.median(lengths):,.0f}" if lengths else "-",
        "pairs the scheme asks to rhyme that rhyme (CMU)": asked.show() if scheme else "-",
        "stanzas as long as the scheme (but a cut song's last)": complete.show() if scheme else "-",
        "stanzas of 4+ lines with a rhyming pair (lines at most 3 apart)": stanza_rhymes.show(),
        "lines (after a stanza's first) rhyming with one of the 3 before": line_rhymes.show(),
        "lines within 1 syllable of the pattern (after the first line)": on_pattern.show() if pattern else "-",
        "lines within 1 syllable of the line two before (same stanza)": scans.show(),
        "words the voice knows (after the first line)": words.show(2),
        "lines whose last word stands after a stop or a quote (`sea.\" Witty.`)": apart.show(),
        f"{PPMD} bits/char given the training songs": f"{column.ppmd:.3f}",
        "characters where the form relaxed, per 1,000":
            f"{sum(s.relaxed for s in column.songs) * 1000 / steps:.1f}" if generated and steps else "-",
        f"characters where the form left the model < {STEERED:.0%}":
            f"{sum(s.steered for s in column.songs) / steps:.1%}" if generated and steps else "-",
    }
    return rows


# -- sampling through the engine


def prompt_of(lm, line: str) -> list[int]:
    return lm.read_prompt(line).ids or lm.start_ids()


def write(engine: Engine, lm, song: Song, prompt: list[int], most: int, settings: SamplingSettings,
          end, spec: FormSpec | None, takes: int) -> None:
    """Write one song as the page does (``lyricgpt.takes.write_song``), into ``song``."""
    chars = lm.tokenizer.chars
    for chunk in write_song(lm, prompt, most, settings, song.seed, end, spec, takes, engine):
        for step in chunk:
            song.text += chars[step.token]
            song.steps += 1
            song.relaxed += step.relaxed > 0
            song.steered += step.form_weight < STEERED
    if song.text.endswith(SONG_BREAK):
        song.text, song.ended = song.text[:-len(SONG_BREAK)], True


def side_by_side(jobs: list[tuple]) -> None:
    """Run ``write`` for every job at once, each in a thread, as the page's visitors would."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        for future in [pool.submit(write, *job) for job in jobs]:
            future.result()


def sample(engine: Engine, lm, columns: list[Column], songs: int, length: int, settings: SamplingSettings) -> None:
    """Every generated column's songs, all at once (a seeded song writes the same text in any batch)."""
    end, most = lm.song_plan(length, True)  # as the page: at its length, a song ends at its next stanza break
    jobs = []
    for column in columns:
        for seed in range(songs):
            line = EXAMPLE_LINES[seed % len(EXAMPLE_LINES)]
            song = Song(line, seed, lm.read_prompt(line).text)
            column.songs.append(song)
            jobs.append((engine, lm, song, prompt_of(lm, line), most, settings, end, column.spec, column.takes))
    side_by_side(jobs)


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_songs(engine: Engine, lm, spec: FormSpec, takes: int, songs: int, chars: int,
               settings: SamplingSettings) -> tuple[float, float]:
    """Milliseconds per character written, ``songs`` songs at once (seeds 0, 1, ...), no song end: by
    the wall clock, and by the engine process's CPU time (which other processes on a shared machine
    disturb less)."""
    pid = engine._process.pid  # the engine's process (lyricgpt.engine.serve), read through /proc
    start, cpu = time.perf_counter(), cpu_seconds(pid)
    timed = [Song("", seed) for seed in range(songs)]
    side_by_side([(engine, lm, song, prompt_of(lm, EXAMPLE_LINES[song.seed % len(EXAMPLE_LINES)]), chars, settings,
                   None, spec, takes) for song in timed])
    written = sum(song.steps for song in timed)
    return (time.perf_counter() - start) * 1000 / written, (cpu_seconds(pid) - cpu) * 1000 / written


def held_out_songs(data: str, lm, n: int, length: int) -> list[Song]:
    """The first ``n`` held-out songs of 4+ lines, each cut to the whole lines of its first line plus ``length``."""
    _, val = split_as_trained(read_corpus(data), lm.context_length + 1, fine_tuned=False)
    out = []
    for i, text in enumerate(split_songs(val)):
        first = text.split("\n", 1)[0]
        cut = text[:len(first) + 1 + length]
        cut = text if len(text) <= len(cut) else cut[:cut.rfind("\n") + 1]
        if sum(bool(line.strip()) for line in cut.split("\n")) >= 4:
            out.append(Song(first, i, cut.rstrip("\n") + "\n", ended=True))
        if len(out) == n:
            break
    return out


def table(columns: list[Column], lexicon: dict[str, int],
          speed: dict[int, dict[str, tuple[float, float]]]) -> str:
    judged = [judge(c, lexicon) for c in columns]
    lines = ["| | " + " | ".join(c.label for c in columns) + " |", "|---" + "|---:" * len(columns) + "|"]
    for row in judged[0]:
        lines.append(f"| {row} | " + " | ".join(j[row] for j in judged) + " |")
    for n, by_label in speed.items():
        songs = f"{n} song{'s' * (n > 1)} at once"
        for name, index in (("wall clock", 0), ("engine CPU time", 1)):
            ms = {label: figures[index] for label, figures in by_label.items()}
            free = ms.get("free")
            lines.append(f"| ms per character, {songs} ({name}) | - | "
                         + " | ".join(f"{ms[c.label]:.2f}" if c.label in ms else "-" for c in columns[1:]) + " |")
            lines.append(f"| cost against free, {songs} ({name}) | - | "
                         + " | ".join(f"{ms[c.label] / free:.2f}x" if c.label in ms and free else "-"
                                      for c in columns[1:]) + " |")
    return "\n".join(lines)


def code_version() -> str:
    """The form's code as it stands (sha-256 prefixes), so that a table can be matched to it."""
    return ", ".join(f"{name} {hashlib.sha256((ROOT / 'lyricgpt' / name).read_bytes()).hexdigest()[:12]}"
                     for name in ("form.py", "lexicon.py", "sampler.py", "batching.py", "lm.py"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "model"))
    parser.add_argument("--data", default=str(ROOT / "assets" / "lyrics.txt"),
                        help="the model's training songs: the held-out human songs and PPMd's reference")
    parser.add_argument("--songs", type=int, default=12, help="songs per column (the issue's goal: at least 12)")
    parser.add_argument("--human", type=int, default=40, help="held-out human songs")
    parser.add_argument("--length", type=int, default=600, help="new characters per song")
    parser.add_argument("--speed-chars", type=int, default=300, help="characters per song in the speed runs")
    parser.add_argument("--repeats", type=int, default=5, help="speed runs per form and batch size (median)")
    parser.add_argument("--no-speed", action="store_true", help="leave out the speed runs")
    parser.add_argument("--show", type=int, default=1, help="print this many songs of each generated column")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 songs, 200 characters, 4 human songs")
    parser.add_argument("--takes", type=int, default=DEFAULT_TAKES,
                        help="takes of each line for the forms' columns (the page's: %(default)s)")
    args = parser.parse_args(argv)
    if args.quick:
        args.songs, args.human, args.length, args.speed_chars, args.repeats = 2, 4, 200, 60, 1
    if shutil.which("7z") is None:
        sys.exit("missing 7z: apt-get install -y p7zip-full")
    torch.set_num_threads(1)
    began = time.monotonic()
    sources = code_version()
    lm = load_model(args.model)
    lexicon = lm.lexicon
    settings = SamplingSettings(DEFAULT_TEMPERATURE, None, None if DEFAULT_TOP_P >= 1 else DEFAULT_TOP_P)
    columns = [Column(HUMAN, None, songs=held_out_songs(args.data, lm, args.human, args.length))]
    forms = [(label, spec, args.takes if takes is None else takes) for label, spec, takes in FORMS]
    columns += [Column(label, spec, takes) for label, spec, takes in forms]
    t = time.monotonic()
    # Room for 16 songs' takes at once: the speed runs' most.
    engine = Engine(lm.model, max_batch=16 * args.takes, max_waiting=100_000, threads=1,
                    lexicon=lexicon, chars=lm.tokenizer.chars)
    started_s = time.monotonic() - t
    try:
        t = time.monotonic()
        sample(engine, lm, columns[1:], args.songs, args.length, settings)
        sampled_s = time.monotonic() - t
        speed: dict[int, dict[str, tuple[float, float]]] = {}
        t = time.monotonic()
        if not args.no_speed:
            runs: dict[tuple[int, str], list[tuple[float, float]]] = {}
            for n in (1, 16):  # once untimed: the engine builds each form's tries as it first meets them
                for label, spec, takes in forms:
                    time_songs(engine, lm, spec, takes, n, min(args.speed_chars, 60), settings)
            for repeat in range(args.repeats):  # interleaved, in a turning order: a drift touches all alike
                for n in (1, 16):
                    order = forms[repeat % len(forms):] + forms[:repeat % len(forms)]
                    for label, spec, takes in order:
                        runs.setdefault((n, label), []).append(time_songs(engine, lm, spec, takes, n, args.speed_chars,
                                                                          settings))
            speed = {n: {label: (statistics.median(w for w, _ in runs[n, label]),
                                 statistics.median(c for _, c in runs[n, label])) for label, _, _ in forms}
                     for n in (1, 16)}
        speed_s = time.monotonic() - t
    finally:
        engine.close()
    t = time.monotonic()
    reference, _ = split_as_trained(read_corpus(args.data), lm.context_length + 1, fine_tuned=False)
    with tempfile.TemporaryDirectory() as tmp:
        for column in columns:
            column.ppmd = bits_given(PPMD, reference, SONG_BREAK.join(s.text.strip("\n") for s in column.songs),
                                     Path(tmp))
    ppmd_s = time.monotonic() - t

    print(f"model {args.model}; {args.songs} songs a column at temperature {settings.temperature:g}, top-k off, "
          f"top-p {settings.top_p or 'off'}, 'End with the song' on, length {args.length} (lm.song_plan, as the "
          f"page); seeds 0-{args.songs - 1}, first lines {EXAMPLE_LINES} in turn; {args.takes} takes of each line "
          f"with a form (but the '1 take' columns); through the engine, 1 torch "
          f"thread (the engine started in {started_s:.0f} s, sampled in {sampled_s:.0f} s, speed runs {speed_s:.0f} s, "
          f"PPMd {ppmd_s:.0f} s)")
    print(f"human: the first {len(columns[0].songs)} held-out songs of {args.data} (4+ lines, as train.py split "
          f"them), cut to whole lines within their first line + {args.length} characters")
    print(f"judges: rhymes and syllables by CMU via pronouncing {getattr(pronouncing, '__version__', '')}"
          f" (vowel groups where CMU lacks a word); words against lm.lexicon: {len(lexicon.counts):,} words used "
          f"{MIN_KNOWN}+ times in {', '.join(lexicon.sources) or 'the CMU dictionary'} (held-out songs included); "
          f"PPMd given the training songs of {args.data}")
    if speed:
        print(f"speed: through the engine (max batch {16 * args.takes}, 1 thread), {args.speed_chars} characters a song, "
              f"'End with the song' off, median of {args.repeats}, forms interleaved; free = FormSpec() "
              f"(the page's free song); this machine is shared, so ratios are noisy")
    print(f"code: {sources} (sha-256)")
    if code_version() != sources:
        print(f"WARNING: lyricgpt's code changed during the run (now {code_version()}): the figures may mix versions")
    print()
    print(table(columns, lexicon.counts, speed))
    for column in columns[1:]:
        for song in column.songs[:args.show]:
            how = "ended by the model" if song.ended else "reached its length"
            print(f"\n--- {column.label}: seed {song.seed}, {len(song.text)} characters, {how}, "
                  f"relaxed at {song.relaxed} ---\n{song.text.rstrip()}")
    print(f"\n({time.monotonic() - began:.0f} s in all)")


if __name__ == "__main__":
    main()
