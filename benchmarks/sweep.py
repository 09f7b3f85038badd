"""Choose the bundled model's recipe by measurement: train each candidate under the same time
budget on this machine, then score it on the validation songs.

    python benchmarks/sweep.py --minutes 5            # all candidates, one after another
    python benchmarks/sweep.py --minutes 5 --only A C  # some of them

Each run lives in runs/sweep/NAME (resumable like any train.py run); the table is printed in
Markdown and written to runs/sweep/results.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BASE = ["--data", "assets/lyrics.txt", "--n-layer", "4", "--n-embd", "256", "--n-head", "4",
        "--context-length", "256", "--batch-size", "16", "--lr", "2e-3", "--dropout", "0",
        "--dtype", "bfloat16", "--schedule", "cosine", "--warmup-steps", "50", "--eval-interval", "100"]

CANDIDATES = {
    "A": ("4x256, ctx 256, batch 16, lr 2e-3, bf16, cosine", []),
    "B": ("as A, float32", ["--dtype", "float32"]),
    "C": ("as A, 6 layers", ["--n-layer", "6"]),
    "D": ("as A, ctx 128, batch 32", ["--context-length", "128", "--batch-size", "32"]),
    "E": ("as A, warmup-stable-decay", ["--schedule", "wsd"]),
    "F": ("as A, lr 1e-3", ["--lr", "1e-3"]),
    "G": ("as A, batch 32", ["--batch-size", "32"]),
    "H": ("as A, dropout 0.1", ["--dropout", "0.1"]),
}


def run(name: str, minutes: float) -> dict:
    out = ROOT / "runs" / "sweep" / name
    description, extra = CANDIDATES[name]
    args = BASE + extra + ["--out", str(out), "--max-minutes", str(minutes)]
    if not (out / "model" / "model.safetensors").exists():
        resume = ["--resume"] if (out / "ckpt_last.pt").exists() else []
        subprocess.run([sys.executable, str(ROOT / "train.py"), *args, *resume], cwd=ROOT, check=True)
    score = subprocess.run([sys.executable, "-m", "lyricgpt.evaluate", str(out / "model"), "assets/lyrics.txt",
                            "--val-split", "--json"], cwd=ROOT, check=True, capture_output=True, text=True)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    config = json.loads((out / "model" / "config.json").read_text())
    params = 12 * config["n_layer"] * config["n_embd"] ** 2 + config["n_embd"] * (config["vocab_size"] + config["context_length"])
    return {"name": name, "description": description, "params": params,
            "tokens": metrics[-1]["tokens_seen"], "minutes": metrics[-1]["elapsed_s"] / 60,
            "best_val_during_training": min(m["val_bits_per_char"] for m in metrics),
            "val_bpc": json.loads(score.stdout)["bits_per_char"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--only", nargs="*", default=sorted(CANDIDATES))
    args = parser.parse_args()
    rows = [run(name, args.minutes) for name in args.only]
    lines = ["| run | config | parameters | tokens seen | minutes | validation bits/char |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['name']} | {r['description']} | {r['params'] / 1e6:.2f} M | {r['tokens'] / 1e6:.1f} M | "
              f"{r['minutes']:.1f} | {r['val_bpc']:.3f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    (ROOT / "runs" / "sweep" / "results.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
