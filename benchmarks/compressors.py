"""General-purpose compressors on the same validation songs as the model.

    apt-get install -y p7zip-full xz-utils bzip2   # once
    python benchmarks/compressors.py [--data assets/lyrics.txt] [--model assets/model]

Bits per validation character given the training text:
(compressed size of train + validation - compressed size of train) x 8 / validation characters.
"""

from __future__ import annotations

import argparse
import os
import shutil
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="assets/lyrics.txt")
    parser.add_argument("--model", default="assets/model")
    args = parser.parse_args()
    missing = [tool for tool in ("7z", "xz", "bzip2") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: apt-get install -y p7zip-full xz-utils bzip2")
    lm = load_model(args.model)
    train, val = train_val_split(read_corpus(args.data), min_chars=lm.context_length + 1)
    print(f"train {len(train):,} characters, validation {len(val):,} characters")
    print("| method | validation bits/char |\n|---|---:|")
    print(f"| LyricGPT ({args.model}) | {score_text(lm, val)['bits_per_char']:.3f} |")
    with tempfile.TemporaryDirectory() as tmp:
        for name in COMPRESSORS:
            both = compressed_size(name, train + SONG_BREAK + val, Path(tmp))
            alone = compressed_size(name, train, Path(tmp))
            print(f"| {name} | {(both - alone) * 8 / len(val):.3f} |")


if __name__ == "__main__":
    main()
