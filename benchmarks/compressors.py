"""General-purpose compressors on the same validation songs as the model.

    apt-get install -y p7zip-full xz-utils bzip2   # once
    python benchmarks/compressors.py [--data assets/lyrics.txt] [--model assets/model]
    python benchmarks/compressors.py --other-splits 20   # how hard our validation songs are

Bits per validation character given the training text:
(compressed size of train + validation - compressed size of train) x 8 / validation characters.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lyricgpt.data import SONG_BREAK, read_corpus, train_val_split  # noqa: E402
from lyricgpt.evaluate import score_text  # noqa: E402
from lyricgpt.lm import load_model  # noqa: E402

COMPRESSORS = {
    "7z PPMd (o=12, 256 MB)": lambda src, dst: ["7z", "a", "-bd", "-bso0", "-t7z", "-m0=PPMd:o=12:mem=256m", dst + ".7z", src],
    "xz -9e": lambda src, dst: ["sh", "-c", f"xz -9e -c '{src}' > '{dst}.xz'"],
    "bzip2 -9": lambda src, dst: ["sh", "-c", f"bzip2 -9 -c '{src}' > '{dst}.bz2'"],
}


def compressed_size(name: str, text: str, workdir: Path) -> int:
    src = workdir / "input.txt"
    src.write_text(text, encoding="utf-8")
    dst = workdir / "out"
    for leftover in workdir.glob("out.*"):
        leftover.unlink()
    subprocess.run(COMPRESSORS[name](str(src), str(dst)), check=True)
    (result,) = workdir.glob("out.*")
    return result.stat().st_size


def bits_given(name: str, train: str, val: str, workdir: Path) -> float:
    both = compressed_size(name, train + SONG_BREAK + val, workdir)
    return (both - compressed_size(name, train, workdir)) * 8 / len(val)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="assets/lyrics.txt")
    parser.add_argument("--model", default="assets/model")
    parser.add_argument("--other-splits", type=int, default=0, metavar="N",
                        help="also give PPMd's bits/char on N other 5%% splits of the songs")
    args = parser.parse_args()
    missing = [tool for tool in ("7z", "xz", "bzip2") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: apt-get install -y p7zip-full xz-utils bzip2")
    text = read_corpus(args.data)
    lm = load_model(args.model)
    train, val = train_val_split(text, min_chars=lm.context_length + 1)
    print(f"train {len(train):,} characters, validation {len(val):,} characters")
    print("| method | validation bits/char |\n|---|---:|")
    print(f"| LyricGPT ({args.model}) | {score_text(lm, val)['bits_per_char']:.3f} |")
    with tempfile.TemporaryDirectory() as tmp:
        ours = {name: bits_given(name, train, val, Path(tmp)) for name in COMPRESSORS}
        for name, bits in ours.items():
            print(f"| {name} | {bits:.3f} |")
        if args.other_splits:
            ppmd = next(iter(COMPRESSORS))
            others = [bits_given(ppmd, *train_val_split(text, min_chars=lm.context_length + 1, salt=f"{i}:"), Path(tmp))
                      for i in range(1, args.other_splits + 1)]
            harder = sum(b >= ours[ppmd] for b in others)
            print(f"{ppmd} on {len(others)} other 5% splits: median {statistics.median(others):.3f}, "
                  f"range {min(others):.3f}-{max(others):.3f}; ours {ours[ppmd]:.3f}, "
                  f"{harder} of {len(others)} as hard or harder")

if __name__ == "__main__":
    main()
