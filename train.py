"""Train LyricGPT on a lyrics text and write a model folder that the app can serve.

    python train.py --data my_lyrics.txt --out runs/mine --preset tiny --max-minutes 2
    python train.py --data assets/lyrics.txt --out runs/mine    # the bundled model's recipe: 6,301 steps
    python train.py --data my_songs.txt --init-from assets/model --out runs/mine   # fine-tune, a few minutes
    torchrun --nproc_per_node 2 train.py --data my_lyrics/ --out runs/ddp
    python train.py --out runs/mine --resume                     # the data and settings come from the checkpoint
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from lyricgpt.checkpoint import CheckpointError, load_checkpoint
from lyricgpt.data import CorpusError
from lyricgpt.finetune import RECIPE as FINETUNE_RECIPE
from lyricgpt.finetune import base_corpus, load_base, take_shape
from lyricgpt.export import EXPORT_FILES, ExportError, check_can_export, export, transformers_repo
from lyricgpt.hub import MODEL_FILES, HubError, check_can_push, push
from lyricgpt.lm import LyricModel, load_model
from lyricgpt.runtime import setup_runtime
from lyricgpt.train_config import PRESETS, TrainConfig, TrainingError, check_new_out, resumed_config
from lyricgpt.training import Trainer

HELP = {
    "data": "a UTF-8 text file, or a folder of .txt files",
    "out": "folder for checkpoints, metrics.jsonl, loss.png and the model (OUT/model)",
    "model": "gpt, or bigram for the tutorial's baseline",
    "n_layer": "transformer blocks", "n_head": "attention heads", "n_embd": "embedding width",
    "context_length": "characters the model sees at once", "dropout": "dropout probability",
    "bias": "biases in Linear and LayerNorm layers",
    "activation": "the MLP's nonlinearity: gelu (exact), or gelu_tanh (GPT-2's approximation, slower on a CPU)",
    "batch_size": "windows per micro-batch, per process",
    "grad_accum": "micro-batches per optimiser step (gradient accumulation)",
    "optimizer": "adamw, or muon (Muon for the blocks' matrices, AdamW for the rest)",
    "lr": "peak learning rate (AdamW)", "muon_lr": "peak learning rate of Muon (--optimizer muon)", "min_lr_ratio": "final learning rate as a share of the peak",
    "weight_decay": "weight decay (matrices only)", "beta1": "AdamW beta1", "beta2": "AdamW beta2",
    "grad_clip": "clip the gradient norm to this (0: off)", "warmup_steps": "linear warmup steps",
    "schedule": "cosine, or wsd (warmup-stable-decay)", "decay_fraction": "wsd: share of the run spent decaying",
    "max_steps": "step budget: stop after this many optimiser steps, or sooner if the time budget runs out "
                 "first; 0: no step budget",
    "max_minutes": "time budget: stop after this many minutes, or sooner if the step budget runs out first; "
                   "0: no time budget. A time budget given without --max-steps replaces the preset's step budget. "
                   "The learning-rate schedule is planned to end with the first budget",
    "eval_interval": "evaluate and checkpoint every this many steps",
    "seed": "random seed (weights, data order, dropout)", "device": "auto, cpu, cuda or mps",
    "dtype": "auto, bfloat16 or float32 (autocast precision)", "compile": "torch.compile: auto (CUDA only), on, off",
    "sample_chars": "length of the sample in the model card",
    "voice": "the model's name on the page and in /generate's voice= (its card's voice:); "
             "without it, the page names it after its data (\"songs of my_songs.txt\")",
    "init_from": "fine-tune: start from this model folder or Hub repo id (its shape, weights and vocabulary) "
                 "with the fine-tuning recipe, instead of training from nothing",
    "replay": "share of each batch drawn from the base model's corpus, against forgetting",
    "replay_data": "the base model's corpus, for --replay (default with --init-from: the corpus its model card names)",
    "patience": "stop after this many evaluations without a better validation score (0: never)",
}


def make_parser() -> argparse.ArgumentParser:
    # The usage line names the two ways to start, not each of the 40 flags.
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s --data TEXT [--out OUT] [--preset NAME] [options]\n"
              "       %(prog)s --data SONGS --init-from MODEL [--out OUT] [options]\n"
              "       %(prog)s --out OUT --resume [options]")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="starting values for every setting below (default: bundled, the bundled model's "
                             "recipe; with --init-from, the fine-tuning recipe)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = {"int | None": int, "float | None": float, "str | None": str}.get(str(f.type), f.type)
        kind = {"int": int, "float": float, "str": str, "bool": _bool}.get(kind, kind)
        default = "required, unless --resume" if f.name == "data" else _default_of(f.name)
        parser.add_argument(flag, type=kind, default=None, help=f"{HELP[f.name]} ({default})")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--stop-at-step", type=int, default=None,
                        help="save a checkpoint and stop after this step, as if interrupted; --resume continues")
    parser.add_argument("--push-to-hub", metavar="USER/REPO", default=None,
                        help="upload the model folder to this Hub repo when training ends, and its transformers form "
                             "to USER/REPO-transformers (token: HF_TOKEN or `hf auth login`)")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    parser.add_argument("--push-timeout", type=float, default=600.0, metavar="SECONDS",
                        help="give up pushing after this many seconds; the model is kept (default: 600)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags as given; main() also insists on --data, which a script building its own Trainer
    (benchmarks/train_speed.py) may leave to TrainConfig's default."""
    return make_parser().parse_args(argv)


def _default_of(name: str) -> str:
    """The setting's default, and the presets that change it: "default: 60.0; --preset tiny: none"."""
    default = getattr(TrainConfig, name)
    changed = [f"{preset}: {_show(values[name])}" for preset, values in sorted(PRESETS.items())
               if values.get(name, default) != default]
    recipe = f"; --init-from: {_show(FINETUNE_RECIPE[name])}" if FINETUNE_RECIPE.get(name, default) != default else ""
    return f"default: {_show(default)}" + ("; --preset " + ", ".join(changed) if changed else "") + recipe


def _show(value) -> str:
    return "none" if value is None else str(value)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_config(args: argparse.Namespace, state: dict | None = None, base: LyricModel | None = None) -> TrainConfig:
    """Defaults, then the preset (or, with --init-from, the fine-tuning recipe and ``base``'s shape),
    then the flags given; or, to resume, the saved run's settings."""
    values = dataclasses.asdict(TrainConfig())
    given = {k: v for k, v in vars(args).items() if k in values and v is not None}
    if state is not None:
        return resumed_config(state, given)
    if args.init_from:
        if args.preset:
            raise TrainingError("--preset and --init-from do not go together: fine-tuning takes its shape from "
                                "the base model and its recipe from the fine-tuning recipe (override single settings instead)")
        base = base or load_base(args.init_from)
        values.update(FINETUNE_RECIPE)
        take_shape(values, given, base)
        values["replay_data"] = base_corpus(base)
    else:
        values.update(PRESETS[args.preset or "bundled"])
    values.update(given)
    for key in ("max_steps", "max_minutes"):
        values[key] = values[key] or None  # 0 turns that budget off
    if args.max_minutes and args.max_steps is None:
        values["max_steps"] = None  # a time budget given alone plans the schedule
    return TrainConfig(**values)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.data is None and not args.resume:  # rather than an hour on the bundled songs nobody asked for
        parser.error("--data is required: a UTF-8 text file or a folder of .txt files to train on "
                     "(or --out OUT --resume, to continue a run)")
    try:
        state = load_checkpoint(Path(args.out or TrainConfig.out) / "ckpt_last.pt") if args.resume else None
        # Fine-tuning's base model, loaded once: it gives the run its shape, then its weights.
        base = load_base(args.init_from) if args.init_from and state is None else None
        cfg = build_config(args, state, base)
        if state is None:
            check_new_out(cfg.out)
        if args.push_to_hub:  # fail before training, not after an hour of it
            check_can_push(args.push_to_hub)
            if cfg.model == "gpt":
                check_can_push(transformers_repo(args.push_to_hub))
                check_can_export()
        trainer = Trainer(cfg, setup_runtime(cfg), state=state, stop_at_step=args.stop_at_step, base=base)
        folder = trainer.run()
    except (TrainingError, CorpusError, CheckpointError, HubError, ExportError,
            OSError) as e:  # OSError: disk full, no permission
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        shutdown_distributed()
    if folder is None:
        return 130 if trainer.interrupted else 0
    if args.push_to_hub:
        return push_model(folder, args, with_export=cfg.model == "gpt")
    return 0


def push_model(folder: Path, args: argparse.Namespace, with_export: bool) -> int:
    """Push the model folder to USER/REPO and, with_export, its transformers form to USER/REPO-transformers."""
    uploads = [(folder, args.push_to_hub, MODEL_FILES)]
    if with_export:  # exported before anything is pushed, so that either push can be retried alone
        repo = transformers_repo(args.push_to_hub)
        try:
            exported = export(load_model(folder), folder.parent / "transformers", load_as=repo)
            uploads.append((exported, repo, EXPORT_FILES))
        except (ValueError, OSError) as e:  # ExportError, or a model folder that cannot be read back
            print(f"error: exporting for transformers: {e}\nThe model is kept in {folder}; nothing was pushed",
                  file=sys.stderr)
            return 3
    for local, repo, files in uploads:
        try:
            url = push(local, repo, private=args.private, timeout=args.push_timeout, files=files)
        except HubError as e:
            print(f"error: {e}\nThe model is kept in {local}; push it later with: hf upload {repo} {local} .",
                  file=sys.stderr)
            return 3
        print(f"pushed to {url}")
    return 0


def shutdown_distributed() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
