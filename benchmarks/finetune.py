"""Your own songs: fine-tuning the bundled model against training from nothing, on songs it never saw.

    apt-get install -y p7zip-full    # once, for the PPMd line
    python benchmarks/finetune.py [--songbook assets/examples/kipling.txt] [--held-out 8] [--seed 0]

Holds out --held-out songs of the songbook, drawn at random with --seed, and trains on the rest with
the README's commands, in this one run:
  - the bundled model as it is;
  - train.py from nothing on the same songs, for as many minutes as the fine-tuning took;
  - train.py --init-from assets/model (the fine-tuning recipe);
  - 7z PPMd given the bundled corpus and the songbook's training songs.
Then it prints bits per character on the held-out songs, and each against the bundled model.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.compressors import bits_given  # noqa: E402
from lyricgpt.data import SONG_BREAK, read_corpus, split_songs, train_val_split  # noqa: E402
from lyricgpt.evaluate import score_text  # noqa: E402
from lyricgpt.lm import load_model  # noqa: E402


def train(*args: str) -> float:
    """Run train.py as a user would; return its minutes."""
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, check=True)
    return (time.perf_counter() - started) / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songbook", default="assets/examples/kipling.txt")
    parser.add_argument("--base", default="assets/model")
    parser.add_argument("--held-out", type=int, default=8, help="songs kept out of training, to score on")
    parser.add_argument("--seed", type=int, default=0, help="which songs are held out")
    parser.add_argument("--out", default="runs/finetune-benchmark")
    args = parser.parse_args()

    songs = split_songs(read_corpus(args.songbook))
    held = set(random.Random(args.seed).sample(range(len(songs)), args.held_out))
    test = SONG_BREAK.join(s for i, s in enumerate(songs) if i in held)
    book_songs = [s for i, s in enumerate(songs) if i not in held]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for run in ("finetuned", "scratch"):  # train.py will not start a new run over an old one
        shutil.rmtree(out / run, ignore_errors=True)
    book = out / "songbook.txt"
    book.write_text(SONG_BREAK.join(book_songs) + "\n", encoding="utf-8")
    print(f"{args.songbook}: {len(book_songs)} songs to train on ({len(book.read_text()):,} characters), "
          f"{len(held)} held out ({len(test):,} characters, seed {args.seed})", flush=True)

    rows = {f"the bundled model ({args.base}), as it is": (score_text(load_model(args.base), test), 0.0)}
    minutes = train("--data", str(book), "--init-from", args.base, "--out", str(out / "finetuned"))
    finetuned = (score_text(load_model(out / "finetuned" / "model"), test), minutes)
    scratch_minutes = train("--data", str(book), "--out", str(out / "scratch"), "--max-minutes", f"{minutes:.2f}")
    rows[f"from nothing, {minutes:.1f} minutes (train.py --data SONGBOOK --max-minutes)"] = (
        score_text(load_model(out / "scratch" / "model"), test), scratch_minutes)
    rows[f"fine-tuned (train.py --data SONGBOOK --init-from {args.base})"] = finetuned

    bundled = next(iter(rows.values()))[0]["bits_per_char"]
    print(f"\n| held-out songs of {Path(args.songbook).name} | bits/char | x the bundled model | minutes |")
    print("|---|---:|---:|---:|")
    for name, (score, took) in rows.items():
        print(f"| {name} | {score['bits_per_char']:.3f} | {score['bits_per_char'] / bundled:.3f} | {took:.1f} |")
    if shutil.which("7z"):
        corpus, _ = train_val_split(read_corpus(ROOT / "assets" / "lyrics.txt"), min_chars=257)
        with tempfile.TemporaryDirectory() as tmp:
            ppmd = bits_given("7z PPMd (o=12, 256 MB)", corpus + SONG_BREAK + book.read_text(), test, Path(tmp))
        print(f"| 7z PPMd, given the bundled corpus and the songbook | {ppmd:.3f} | {ppmd / bundled:.3f} | |")
    else:
        print("(7z is missing, so no PPMd line: apt-get install -y p7zip-full)")
    ratio = finetuned[0]["bits_per_char"] / rows[next(k for k in rows if k.startswith("from nothing"))][0]["bits_per_char"]
    print(f"\nfine-tuned against from nothing: {ratio:.3f} x; threads: torch's default on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
