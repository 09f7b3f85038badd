"""What a training run leaves for people to read: the loss plot and the model card."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_loss_plot(metrics: list[dict], path: Path) -> None:
    """Training and validation loss (bits/char) against tokens seen, written atomically."""
    import matplotlib

    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt

    ln2 = 0.6931471805599453
    tokens = [m["tokens_seen"] / 1e6 for m in metrics]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(tokens, [m["train_loss"] / ln2 for m in metrics], label="train", marker=".")
    ax.plot(tokens, [m["val_bits_per_char"] for m in metrics], label="validation", marker=".")
    ax.set_xlabel("tokens seen (millions)")
    ax.set_ylabel("bits per character")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def write_model_card(path: Path, info: dict) -> None:
    cfg = info["train_config"]
    data = info["data"]
    plot = "![Loss curve](loss.png)\n\n" if info["has_plot"] else ""
    samples = "\n".join(_sample_block(seed, text) for seed, text in info["samples"].items())
    top_p = info["sampling"]["top_p"]  # 1 leaves every character in, as the sampler reads it
    card = f"""---
library_name: pytorch
license: mit
tags:
- lyricgpt
- character-level
- gpt2
- text-generation
pipeline_tag: text-generation
val_bits_per_char: {info['val_bits_per_char']:.4f}
---

# LyricGPT: {cfg['model']} model trained on `{Path(data['path']).name}`

A character-level {'GPT-2' if cfg['model'] == 'gpt' else 'bigram baseline'} model made with
LyricGPT's `train.py`. Load it with `lyricgpt.load_model("<this folder or repo>")`.

## Result

- Validation: **{info['val_bits_per_char']:.4f} bits per character** on songs held out from training,
  by the best checkpoint, from step {info['best_step']:,}
  (scored with `python -m lyricgpt.evaluate MODEL {data['path']} --val-split`).
- Parameters: {info['parameters']:,}
- Trained for {info['steps']:,} steps, {info['tokens_seen']:,} tokens, {info['minutes']:.1f} minutes.

{plot}## Data

`{data['path']}`: {data['chars']:,} characters, {data['songs']:,} songs, a vocabulary of
{data['vocab_size']} characters. Split by song: {data['train_chars']:,} characters for training,
{data['val_chars']:,} for validation.

## Command

```
{info['command']}
```

## Configuration

```json
{json.dumps({"model": info['model_config'], "training": cfg}, indent=2)}
```

## Samples

Temperature {info['sampling']['temperature']:g}, top-p {f"{top_p:g}" if top_p < 1 else "off"} (the app's defaults), seed {cfg['seed']},
{cfg['sample_chars']} new characters after each seed line:

{samples}"""
    path.write_text(card, encoding="utf-8")


def _sample_block(seed_line: str, text: str) -> str:
    title = f'After "{seed_line}"' if seed_line else "Unconditional"
    return f"{title}:\n\n```\n{seed_line}{text}\n```\n"
