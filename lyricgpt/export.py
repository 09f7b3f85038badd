"""Write a model as a transformers GPT-2 folder, which loads with no LyricGPT code at all.

    python -m lyricgpt.export MODEL OUT      # MODEL: a model folder or a Hub repo id (USER/REPO)

Our GPT is GPT-2's architecture, so the weights only change names, and the Linear weights are
transposed to the (in, out) layout of GPT-2's Conv1D. The character tokenizer becomes a
``tokenizers`` BPE with no merges: every character is a token, and, as in ours, characters
outside the vocabulary are dropped. Its normaliser is ours, step by step (lyricgpt.tokenizer).

Needs the ``tokenizers`` package (it comes with ``transformers``), imported only here.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import save

from .hub import HubError
from .lm import LyricModel, ModelError, load_model
from .model import GPT
from .tokenizer import FOLDS, CharTokenizer, TokenizerError
from .weights import WeightsError

EXPORT_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"]
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new"}  # exact GELU; GPT-2's tanh approximation


class ExportError(ValueError):
    """A model that has no transformers form, or a folder that must not be written to."""


def transformers_repo(repo_id: str) -> str:
    """Where ``train.py --push-to-hub USER/REPO`` puts the export: a repo of its own, because the
    Hub's model page, pipeline() and serving engines read a model from a repo's root."""
    return repo_id + "-transformers"


def check_can_export() -> None:
    """Raise ExportError unless the ``tokenizers`` package is at hand."""
    _tokenizers()


def export(lm: LyricModel, out: str | Path, load_as: str | None = None) -> Path:
    """Write ``lm`` to ``out`` as a transformers GPT-2 folder (EXPORT_FILES); return the folder.

    ``load_as`` is what the model card's example loads (default: ``out``), e.g. a Hub repo id."""
    if not isinstance(lm.model, GPT):
        raise ExportError("only a GPT model can be exported to transformers: a bigram has no GPT-2 form")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not _is_export(out):
        raise ExportError(f"{out} already holds other files; export into a new folder")
    hf_tokenizer = gpt2_tokenizer(lm.tokenizer)  # first, so a missing package fails before anything is written
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", gpt2_config(lm.model))
    # Bytes, not safetensors' save_file, which leaves the file readable by its owner only (see weights.py).
    (out / "model.safetensors").write_bytes(save(gpt2_state_dict(lm.model), metadata={"format": "pt"}))
    hf_tokenizer.save(str(out / "tokenizer.json"))
    _write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": lm.context_length,
        "clean_up_tokenization_spaces": False,  # it would join " ." into "." and break the round trip
    })
    (out / "README.md").write_text(model_card(lm, load_as or str(out)), encoding="utf-8")
    return out


def gpt2_config(model: GPT) -> dict:
    c = model.config
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": c.vocab_size,
        "n_positions": c.context_length,
        "n_embd": c.n_embd,
        "n_layer": c.n_layer,
        "n_head": c.n_head,
        "n_inner": 4 * c.n_embd,
        "activation_function": HF_ACTIVATIONS[c.activation],
        "layer_norm_epsilon": model.ln_f.eps,
        "embd_pdrop": c.dropout,
        "resid_pdrop": c.dropout,
        "attn_pdrop": 0.0,  # we drop no attention probabilities
        "tie_word_embeddings": True,
        # No end-of-text token: a song ends with two blank lines (see the model card).
        "bos_token_id": None,
        "eos_token_id": None,
        "dtype": "float32",
    }


def gpt2_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our parameters under GPT-2's names, Linear weights transposed to Conv1D's (in, out) layout.

    GPT-2 always has biases: a model trained without them gets zeros, which compute the same. The
    output head is left out, as in GPT-2's own checkpoints: it is tied to the token embedding.
    """
    tensors = {"transformer.wte.weight": model.wte.weight, "transformer.wpe.weight": model.wpe.weight}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.LayerNorm)) and module is not model.lm_head:
            key = "transformer." + name.replace("blocks.", "h.", 1)
            weight = module.weight
            tensors[f"{key}.weight"] = weight.t() if isinstance(module, nn.Linear) else weight
            tensors[f"{key}.bias"] = module.bias if module.bias is not None else torch.zeros(len(weight))
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tensors.items()}


def gpt2_tokenizer(tokenizer: CharTokenizer):
    """A ``tokenizers.Tokenizer`` that encodes and decodes exactly as ``tokenizer`` does."""
    tk = _tokenizers()
    normalizers = tk.normalizers
    hf = tk.Tokenizer(tk.models.BPE(vocab={c: i for i, c in enumerate(tokenizer.chars)}, merges=[]))
    # lyricgpt.tokenizer.normalize, in its order: line endings, NFKD, no combining marks, the folds.
    hf.normalizer = normalizers.Sequence([
        normalizers.Replace("\r\n", "\n"),
        normalizers.Replace("\r", "\n"),
        *_nfkd_differences(tk),
        normalizers.NFKD(),
        normalizers.Replace(tk.Regex(_combining_marks()), ""),
        *(normalizers.Replace(chr(code), folded) for code, folded in FOLDS.items()),
    ])
    hf.decoder = tk.decoders.Fuse()  # characters are joined as they are, with no spaces between
    return hf


def _tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise ExportError("exporting to transformers needs the tokenizers package: "
                          "pip install tokenizers (or transformers)") from None
    return tokenizers


def _nfkd_differences(tk) -> list:
    """Python's NFKD, spelled out for the characters that the tokenizers library's Unicode tables
    (updated at other times) decompose differently, e.g. U+A7F2, new in Unicode 14."""
    chars = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.decomposition(chr(c))]  # none is "\0"
    theirs = tk.normalizers.NFKD().normalize_str("\0".join(chars)).split("\0")
    return [tk.normalizers.Replace(c, unicodedata.normalize("NFKD", c))
            for c, t in zip(chars, theirs, strict=True) if t != unicodedata.normalize("NFKD", c)]


def _combining_marks() -> str:
    """A regex class of the characters unicodedata.combining() marks, which normalize() drops."""
    ranges, start = [], None
    for code in range(sys.maxunicode + 2):
        marked = code <= sys.maxunicode and unicodedata.combining(chr(code)) != 0
        if marked and start is None:
            start = code
        elif not marked and start is not None:
            ranges.append(f"\\x{{{start:x}}}" + (f"-\\x{{{code - 1:x}}}" if code - 1 > start else ""))
            start = None
    return "[" + "".join(ranges) + "]"


def model_card(lm: LyricModel, load_as: str) -> str:
    c = lm.model.config
    score = (f"Validation: {lm.val_bits_per_char} bits per character (its LyricGPT model card).\n\n"
             if lm.val_bits_per_char is not None else "")
    return f"""---
library_name: transformers
license: mit
tags:
- lyricgpt
- character-level
- gpt2
pipeline_tag: text-generation
---

# LyricGPT, for transformers

A character-level GPT-2 trained on song lyrics with LyricGPT, exported from `{lm.source}` by
`python -m lyricgpt.export`. {c.n_layer} layers, {c.n_head} heads, width {c.n_embd},
{c.context_length} characters of context, a vocabulary of {c.vocab_size} characters.

{score}```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{load_as}")
tokenizer = AutoTokenizer.from_pretrained("{load_as}")
ids = model.generate(**tokenizer("The river", return_tensors="pt"), do_sample=True, temperature=0.7, max_new_tokens=200)
print(tokenizer.decode(ids[0]))
```

- Every character is a token. The tokenizer folds typography and accents to plain letters, as
  LyricGPT does, and drops characters outside the vocabulary.
- There is no end-of-text token: songs end with two blank lines (`stop_strings=["\\n\\n\\n"]`,
  with `tokenizer=tokenizer`, stops `generate` there).
- Prompt and generated text together must fit in the {c.context_length}-character context.
"""


def _is_export(folder: Path) -> bool:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type") == "gpt2"
    except (OSError, ValueError, AttributeError):
        return False


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lyricgpt.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a LyricGPT model folder or Hub repo id (USER/REPO)")
    parser.add_argument("out", help="the folder to write (new, empty, or an earlier export)")
    args = parser.parse_args(argv)
    try:
        folder = export(load_model(args.model), args.out)
    except (ExportError, ModelError, TokenizerError, WeightsError, HubError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {folder}: load it with transformers' AutoModelForCausalLM and AutoTokenizer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
