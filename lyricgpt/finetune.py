"""Fine-tuning: start a run from a trained model instead of from nothing.

A few dozen songs are far too little to learn English from, but enough to move a model that already
knows it towards one songwriter's voice. The run takes the base model's shape, weights and
vocabulary; replays some of the base model's own corpus in every batch so that it does not forget
the rest; and keeps the checkpoint that does best on the songbook's own validation songs, which may be
the base model itself. How the recipe was chosen: docs/fine-tuning.md.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from .hub import HubError
from .lm import LyricModel, ModelError, card_training_data, card_training_settings, load_model
from .model import build_model
from .tokenizer import CharTokenizer, TokenizerError, normalize
from .train_config import TrainingError
from .weights import WeightsError

# The fine-tuning recipe: what --init-from changes unless a flag says otherwise (docs/fine-tuning.md).
RECIPE: dict = dict(
    optimizer="adamw", lr=3e-4, weight_decay=0.0, dropout=0.1, warmup_steps=10, schedule="wsd", decay_fraction=0.3,
    max_steps=300, max_minutes=4.0, eval_interval=20, patience=5, replay=0.25, batch_size=16,
)

# The settings that make up a model's shape: a fine-tuned model keeps its base model's.
SHAPE = ("model", "n_layer", "n_head", "n_embd", "context_length", "bias", "activation")


def load_base(source: str) -> LyricModel:
    """The model to start from, or a TrainingError that says why it cannot be one."""
    try:
        lm = load_model(source)
    except (ModelError, WeightsError, TokenizerError, HubError, OSError) as e:
        raise TrainingError(f"--init-from {source}: {e}") from None
    if lm.model.config.architecture != "gpt":
        raise TrainingError(f"--init-from {source} is a bigram model: it has nothing to carry over "
                            "(it learns one table of character pairs); start from a GPT model such as assets/model")
    return lm


def take_shape(values: dict, given: dict, base: LyricModel) -> None:
    """Set ``values``' shape settings to the base model's; a flag that asks for another shape is an error."""
    shape = {"model": "gpt", **{k: getattr(base.model.config, k) for k in SHAPE if k != "model"}}
    clashes = [f"--{k.replace('_', '-')} {given[k]}" for k in SHAPE if k in given and given[k] != shape[k]]
    if clashes:
        described = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in shape.items() if k != "model")
        raise TrainingError(f"--init-from takes the model's shape from {base.source} ({described}); "
                            f"drop {' and '.join(clashes)}")
    values.update(shape)


def base_corpus(base: LyricModel) -> str | None:
    """The corpus the base model was trained on, as its model card names it, if it is on this machine."""
    settings = card_training_settings(base.folder)
    return settings["data"] if card_training_data(settings) else None


def grow_vocabulary(lm: LyricModel, text: str) -> tuple[LyricModel, list[str]]:
    """The model with a row added to its embedding (and so its tied output head) for each character of
    ``text`` that it has never seen, and those characters.

    A new row starts as the mean of the old ones: a character the model knows nothing about, which
    it rates like an average character until the songbook teaches it where the character belongs.
    """
    new = sorted(set(normalize(text)) - set(lm.tokenizer.chars))
    if not new:
        return lm, []
    tokenizer = CharTokenizer(sorted(lm.tokenizer.chars + new))
    model = build_model(replace(lm.model.config, vocab_size=tokenizer.vocab_size))
    state = lm.model.state_dict()
    old = state["wte.weight"]
    rows = [old[lm.tokenizer.chars.index(c)] if c in lm.tokenizer else old.mean(dim=0) for c in tokenizer.chars]
    state["wte.weight"] = state["lm_head.weight"] = torch.stack(rows)
    model.load_state_dict(state)
    return LyricModel(model, tokenizer, source=lm.source, folder=lm.folder), new
