"""Choose the bundled model's recipe by measurement: train each candidate under one budget, then
score it on the validation songs.

    python benchmarks/sweep.py --minutes 4 --only base muon   # each for 4 minutes on this machine
    python benchmarks/sweep.py --steps 2000 --parallel 2      # each for 2,000 steps, two at once
    python benchmarks/sweep.py --hour --device cuda --parallel 12

--steps compares recipes per token: each trains for the same steps, its schedule planned on them,
so the figures do not depend on how fast the machine ran that day, and two runs can share the two
cores (one thread each) without spoiling each other's result.

--hour stands in for an hour on this 2-core CPU: each candidate trains for the steps the CPU
reaches in 60 minutes (its CPU speed against the first bundled recipe, times the 9,670 steps
that recipe reached in its hour), so a GPU can run a sweep of hour-long runs in minutes. The
learning-rate schedule is then planned on steps instead of on the clock, which is the same plan.

Each run lives in runs/sweep/NAME or runs/sweep-hour/NAME (resumable like any train.py run);
the table is printed in Markdown and written to results.md there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lyricgpt.lm import card_bits_per_char, load_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# The minutes sweep on the song corpus (assets/lyrics.txt, 6.65 MB): how far each recipe gets in
# the same few CPU minutes, its own cost per step included (Muon's orthogonalisation, a deeper model).
# --dtype auto is bf16 on the machine that ran the tables in docs/ (AVX-512 BF16) and on a GPU, and
# float32 on a CPU that only emulates bf16, where forcing it would make every step several times slower.
MINUTES_BASE = ["--n-layer", "4", "--n-embd", "256", "--n-head", "4", "--context-length", "128",
                "--batch-size", "32", "--optimizer", "adamw", "--lr", "2e-3", "--dropout", "0", "--weight-decay", "0.1",
                "--dtype", "auto", "--schedule", "wsd", "--decay-fraction", "0.2", "--warmup-steps", "100",
                "--eval-interval", "250", "--sample-chars", "100", "--activation", "gelu_tanh"]  # as measured
MUON = ["--optimizer", "muon", "--weight-decay", "0"]
MINUTES = {
    "old": ("the old bundled recipe: dropout 0.2, weight decay 1.0", ["--dropout", "0.2", "--weight-decay", "1.0"]),
    "base": ("4x256, ctx 128, batch 32, AdamW lr 2e-3, dropout 0, weight decay 0.1, wsd", []),
    "muon": ("as base, Muon (lr 0.02) for the blocks' matrices", MUON),
    "muon-b64": ("as muon, batch 64", MUON + ["--batch-size", "64"]),
    "muon-6l": ("as muon, 6 layers", MUON + ["--n-layer", "6"]),
    "muon-3x384": ("as muon, 3 layers x 384 wide, 6 heads", MUON + ["--n-layer", "3", "--n-embd", "384", "--n-head", "6"]),
    "muon-ctx256": ("as muon, ctx 256, batch 16", MUON + ["--context-length", "256", "--batch-size", "16"]),
    "muon-lr4": ("as muon, Muon lr 0.04", MUON + ["--muon-lr", "0.04"]),
    "muon-decay4": ("as muon, the last 40% decaying", MUON + ["--decay-fraction", "0.4"]),
    "muon-lr1": ("as muon, Muon lr 0.01", MUON + ["--muon-lr", "0.01"]),
}

# The steps sweep on the song corpus, per token: the recipe of 51ee4bc (train.py's defaults then,
# spelled out so that the table keeps its meaning when they change) and changes to it.
STEPS_BASE = ["--n-layer", "4", "--n-embd", "256", "--n-head", "4", "--optimizer", "muon", "--muon-lr", "0.02",
              "--lr", "2e-3", "--weight-decay", "0", "--dropout", "0", "--schedule", "wsd", "--decay-fraction", "0.4",
              "--min-lr-ratio", "0.1", "--warmup-steps", "100", "--activation", "gelu", "--dtype", "auto",
              "--eval-interval", "500", "--sample-chars", "100"]
CTX256 = ["--context-length", "256", "--batch-size", "16"]
STEPS = {
    "ctx128": ("4x256, Muon, ctx 128, batch 32 (the bundled recipe until 2026-12-03)",
               ["--context-length", "128", "--batch-size", "32"]),
    "ctx256": ("as ctx128, ctx 256, batch 16 (the same characters per step; the bundled recipe of 51ee4bc)", CTX256),
    "ctx256-d2z": ("as ctx256, the decay going to zero", CTX256 + ["--min-lr-ratio", "0"]),
    "ctx256-d2z-decay6": ("as ctx256-d2z, the last 60% decaying", CTX256 + ["--min-lr-ratio", "0", "--decay-fraction", "0.6"]),
}

# The hour sweep on the first corpus (0.7 MB), kept for when a GPU is lent: where each recipe ends, which is what overfitting decides on a small corpus.
# Each entry's speed is its training tokens/s on the 2-core CPU against h-base, measured with
# benchmarks/train_speed.py and the entry's flags (the median of two h-base measurements).
HOUR_BASE = ["--n-layer", "4", "--n-embd", "256", "--n-head", "4", "--context-length", "128",
             "--batch-size", "32", "--optimizer", "adamw", "--lr", "2e-3", "--dropout", "0.2", "--weight-decay", "0.1",
             "--dtype", "auto", "--schedule", "wsd", "--warmup-steps", "100", "--decay-fraction", "0.2",
             "--activation", "gelu_tanh"]
HOUR_STEPS = 9670  # what h-base reached in its hour on the quiet CPU (runs/bundled2)
L6, D3, WD5 = ["--n-layer", "6"], ["--dropout", "0.3"], ["--weight-decay", "0.5"]
HOUR = {
    "h-base": ("4x256, ctx 128, batch 32, dropout 0.2, weight decay 0.1, lr 2e-3, bf16, wsd", 1.0, []),
    "h-seed": ("as h-base, seed 7", 1.0, ["--seed", "7"]),
    "h-d3": ("as h-base, dropout 0.3", 1.0, D3),
    "h-d4": ("as h-base, dropout 0.4", 1.0, ["--dropout", "0.4"]),
    "h-wd5": ("as h-base, weight decay 0.5", 1.0, WD5),
    "h-wd5-seed": ("as h-wd5, seed 7", 1.0, WD5 + ["--seed", "7"]),
    "h-wd10": ("as h-base, weight decay 1.0 (the bundled recipe)", 1.0, ["--weight-decay", "1.0"]),
    "h-d3-wd5": ("as h-base, dropout 0.3, weight decay 0.5", 1.0, D3 + WD5),
    "h-d3-wd10": ("as h-base, dropout 0.3, weight decay 1.0", 1.0, D3 + ["--weight-decay", "1.0"]),
    "h-d3-lr1": ("as h-d3, lr 1e-3", 1.0, D3 + ["--lr", "1e-3"]),
    "h-d3-decay5": ("as h-d3, half the run decaying", 1.0, D3 + ["--decay-fraction", "0.5"]),
    "h-d3-b64": ("as h-d3, batch 64", 0.533, D3 + ["--batch-size", "64"]),
    "h-ctx256": ("as h-base, ctx 256, batch 16", 0.925, ["--context-length", "256", "--batch-size", "16"]),
    "h-d3-ctx256": ("as h-d3, ctx 256, batch 16", 0.925, D3 + ["--context-length", "256", "--batch-size", "16"]),
    "h-d3-ctx512": ("as h-d3, ctx 512, batch 8", 0.795, D3 + ["--context-length", "512", "--batch-size", "8"]),
    "h-3l": ("as h-base, 3 layers", 1.251, ["--n-layer", "3"]),
    "h-d3-384": ("as h-d3, 384 wide, 6 heads", 0.510, D3 + ["--n-embd", "384", "--n-head", "6"]),
    "h-6l-d3": ("as h-d3, 6 layers", 0.637, L6 + D3),
    "h-6l-d3-seed": ("as h-6l-d3, seed 7", 0.637, L6 + D3 + ["--seed", "7"]),
    "h-6l-d4": ("as h-base, 6 layers, dropout 0.4", 0.637, L6 + ["--dropout", "0.4"]),
    "h-6l-d3-ctx256": ("as h-6l-d3, ctx 256, batch 16", 0.60, L6 + D3 + ["--context-length", "256", "--batch-size", "16"]),
    "h-6l-wd5": ("as h-base, 6 layers, weight decay 0.5", 0.637, L6 + WD5),
    "h-6l-d3-wd5": ("as h-6l-wd5, dropout 0.3", 0.637, L6 + D3 + WD5),
    "h-6l-d3-wd5-lr1": ("as h-6l-d3-wd5, lr 1e-3", 0.637, L6 + D3 + WD5 + ["--lr", "1e-3"]),
    "h-6l-d3-wd10": ("as h-base, 6 layers, dropout 0.3, weight decay 1.0", 0.637, L6 + D3 + ["--weight-decay", "1.0"]),
    "h-5l-d3-wd5": ("as h-6l-d3-wd5, 5 layers", 0.77, ["--n-layer", "5"] + D3 + WD5),
    "h-8l-d3-wd5": ("as h-6l-d3-wd5, 8 layers", 0.49, ["--n-layer", "8"] + D3 + WD5),
}


def folder(args: argparse.Namespace) -> Path:
    return ROOT / "runs" / ("sweep-hour" if args.hour else "sweep-steps" if args.steps else "sweep")


def command(name: str, args: argparse.Namespace) -> tuple[list[str], Path]:
    out = folder(args) / name
    if args.hour:
        _, speed, extra = HOUR[name]
        budget = ["--max-minutes", "0", "--max-steps", str(round(HOUR_STEPS * speed)),
                  "--device", args.device, "--compile", "off", "--sample-chars", "100"]
        flags = HOUR_BASE + extra + budget
    elif args.steps:
        flags = STEPS_BASE + STEPS[name][1] + ["--max-minutes", "0", "--max-steps", str(args.steps), "--device", args.device]
    else:
        flags = MINUTES_BASE + MINUTES[name][1] + ["--max-minutes", str(args.minutes), "--device", args.device]
    resume = ["--resume"] if (out / "ckpt_last.pt").exists() else []
    return [sys.executable, str(ROOT / "train.py"), "--data", "assets/lyrics.txt", *flags, "--out", str(out), *resume], out


def score(name: str, out: Path, description: str) -> dict:
    """The run's figures; its validation bits/char is the one train.py scored its model with
    (lyricgpt.evaluate --val-split gives the same), read from the model card."""
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"name": name, "description": description, "params": load_model(out / "model").model.num_params(),
            "tokens": metrics[-1]["tokens_seen"], "steps": metrics[-1]["step"], "minutes": metrics[-1]["elapsed_s"] / 60,
            "val_bpc": card_bits_per_char(out / "model") or evaluate(out / "model")}


def evaluate(model: Path) -> float:
    """For a model card written before cards carried the figure."""
    result = subprocess.run([sys.executable, "-m", "lyricgpt.evaluate", str(model), "assets/lyrics.txt",
                             "--val-split", "--json"], cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(result.stdout)["bits_per_char"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="the budget of each run on this machine")
    parser.add_argument("--steps", type=int, default=None, help="run the steps sweep: each candidate for these steps")
    parser.add_argument("--hour", action="store_true", help="run the hour sweep, as steps (see above)")
    parser.add_argument("--device", default="auto", help="train.py's --device")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once, sharing the cores (--steps on 2 CPU cores: 2; --hour on a GPU: 12)")
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    if args.hour and args.steps:
        parser.error("choose --hour or --steps, not both")
    table = HOUR if args.hour else STEPS if args.steps else MINUTES
    names = args.only or list(table)
    unknown = sorted(set(names) - set(table))
    if unknown:
        parser.error(f"unknown candidates {unknown}; choose from {list(table)}")

    # Each candidate's run is a train.py process; up to --parallel run at once, sharing the cores.
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // args.parallel)))
    rows, queue, running = [], list(names), {}
    while queue or running:
        while queue and len(running) < args.parallel:
            name = queue.pop(0)
            cmd, out = command(name, args)
            if (out / "model" / "model.safetensors").exists():
                rows.append(score(name, out, table[name][0]))
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out.parent / f"{name}.log", "w") as log:
                running[name] = (subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env), out)
        time.sleep(1)
        for name, (proc, out) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            if proc.returncode != 0:
                sys.exit(f"{name} failed (exit {proc.returncode}); see {out.parent / (name + '.log')}")
            rows.append(score(name, out, table[name][0]))
            print(f"{name}: {rows[-1]['val_bpc']:.3f} bits/char", flush=True)

    rows.sort(key=lambda r: names.index(r["name"]))
    lines = ["| run | config | parameters | steps | tokens seen | CPU minutes | validation bits/char |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['name']} | {r['description']} | {r['params'] / 1e6:.2f} M | {r['steps']:,} | {r['tokens'] / 1e6:.1f} M | "
              f"{60 if args.hour else r['minutes']:.1f} | {r['val_bpc']:.3f} |" for r in rows]
    text = "\n".join(lines)
    print(text)
    (folder(args) / "results.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
