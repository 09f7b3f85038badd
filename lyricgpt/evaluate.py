"""Score a model on a text: cross-entropy in bits per character.

    python -m lyricgpt.evaluate MODEL_DIR TEXT_FILE [--val-split] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch
import torch.nn.functional as F

from .data import CorpusError, read_corpus, scoring_windows, split_as_trained
from .lm import LyricModel, ModelError, card_training_settings, load_model
from .model import IGNORE_INDEX
from .tokenizer import TokenizerError
from .weights import WeightsError


@torch.no_grad()
def total_nats(model: torch.nn.Module, ids: torch.Tensor, stride: int, batch_size: int = 32,
               autocast_dtype: torch.dtype | None = None) -> tuple[float, int]:
    """Summed cross-entropy (nats) over every target ``ids[1:]``, each scored once, and their count."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    nats, count = 0.0, 0
    for x, y in scoring_windows(ids, model.config.context_length, stride, batch_size):
        x, y = x.to(device), y.to(device)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            logits, _ = model(x)
        nats += F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1),
                                ignore_index=IGNORE_INDEX, reduction="sum").item()
        count += int((y != IGNORE_INDEX).sum())
    model.train(was_training)
    return nats, count


def bits_per_char(nats: float, count: int) -> float:
    return nats / count / math.log(2)


def score_text(lm: LyricModel, text: str) -> dict:
    """Bits per character of ``text``: each character predicted from up to a context of what
    precedes it (windows overlap by half a context), after the same normalisation as sampling."""
    enc = lm.tokenizer.encode_with_report(text)
    if not enc.ids:
        raise CorpusError("the text has no character the model knows, so there is nothing to score")
    # The first character is predicted from a line break, which is how every song begins.
    ids = torch.tensor(lm.start_ids()[-1:] + enc.ids)
    nats, count = total_nats(lm.model, ids, stride=max(1, lm.context_length // 2))
    return {"bits_per_char": round(bits_per_char(nats, count), 5), "chars": count,
            "unscored_chars": enc.dropped_count, "unscored_examples": "".join(sorted(enc.dropped))[:20],
            "context_length": lm.context_length}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lyricgpt.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model folder or Hub repo id (USER/REPO)")
    parser.add_argument("text", help="a text file, or a folder of .txt files")
    parser.add_argument("--val-split", action="store_true",
                        help="score only the validation songs of this corpus, as train.py splits it")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        lm = load_model(args.model)
        text = read_corpus(args.text)
        if args.val_split:
            fine_tuned = bool(card_training_settings(lm.folder).get("init_from"))
            _, text = split_as_trained(text, lm.context_length + 1, fine_tuned)
        result = {"model": args.model, "text": args.text, **score_text(lm, text)}
    except (ModelError, WeightsError, TokenizerError, CorpusError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['bits_per_char']:.4f} bits per character over {result['chars']:,} characters "
              f"({result['unscored_chars']} characters outside the vocabulary could not be scored)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
