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
    voice = f"voice: {json.dumps(cfg['voice'], ensure_ascii=False)}\n" if cfg.get("voice") else ""  # the page's name for it
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
{voice}---

# LyricGPT: {cfg['model']} model {_made_how(info)} `{Path(data['path']).name}`

A character-level {'GPT-2' if cfg['model'] == 'gpt' else 'bigram baseline'} model made with
LyricGPT's `train.py`. Load it with `lyricgpt.load_model("<this folder or repo>")`.

{_finetuning_section(info)}## Result

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


def _made_how(info: dict) -> str:
    base = (info.get("finetune") or {}).get("base")
    return f"fine-tuned from `{base}` on" if base else "trained on"


def _finetuning_section(info: dict) -> str:
    """Before and after: the songbook's validation songs, the base model's corpus, and the same samples."""
    ft = info.get("finetune")
    if not ft:
        return ""
    songbook = info["data"]["path"]
    verdict = ("**Fine-tuning never beat the base model on the songbook's validation songs, so this is the base "
               "model, unchanged.**" if ft["kept_base"] else
               f"The best checkpoint came at step {info['best_step']:,}, chosen on the songbook's validation songs.")
    rows = [f"| the songbook's validation songs ({info['data']['val_songs']} songs of `{songbook}`) | "
            f"{ft['val_before']:.4f} | {ft['val_after']:.4f} |"]
    if "corpus" in ft:
        rows.append(f"| the base model's validation songs (the first {ft['corpus_chars']:,} characters of "
                    f"those of `{ft['corpus']}`): what it forgot | "
                    f"{ft['corpus_before']:.4f} | {ft['corpus_after']:.4f} |")
    new = (f"\nCharacters the base model never saw, given new rows in the embedding (and so the tied output "
           f"head), started as the mean of the old rows: `{''.join(ft['new_chars'])!r}`.\n" if ft["new_chars"] else "")
    before = "\n".join(_sample_block(seed, text) for seed, text in ft["samples_before"].items())
    return f"""## Fine-tuning

Base model: `{ft['base']}`. Songbook: `{songbook}`. {verdict}

| bits per character on | before (the base model) | after (this model) |
|---|---:|---:|
{chr(10).join(rows)}
{new}
Samples from the base model, with the same first lines, seed and settings as this model's samples below:

{before}
"""


def _sample_block(seed_line: str, text: str) -> str:
    title = f'After "{seed_line}"' if seed_line else "Unconditional"
    return f"{title}:\n\n```\n{seed_line}{text}\n```\n"
