"""The training loop: AdamW (or Muon with AdamW) on random windows, a planned learning-rate schedule, periodic
evaluation, atomic checkpoints that resume exactly, and DistributedDataParallel under torchrun."""

from __future__ import annotations

import json
import math
import shlex
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import first_lines, random_windows, read_corpus, split_as_trained, split_songs, train_val_split
from .evaluate import score_text, total_nats
from .finetune import grow_vocabulary, load_base
from .lm import EXAMPLES_NAME, LyricModel
from .model import build_model
from .optimizers import lr_at, make_optimizer, progress_of
from .progress import ProgressBar
from .report import write_loss_plot, write_model_card
from .runtime import Runtime
from .sampler import DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from .tokenizer import CharTokenizer
from .train_config import TrainConfig, TrainingError, check_config, make_model_config, saved_model_config


SAMPLE_SEED_LINES = ("", "The river", "Oh my love")  # the model card's samples: unconditional, then seeded
FORGETTING_CHARS = 50_000  # fine-tuning: how much of the base corpus's validation songs the card scores
SAMPLING = {"temperature": DEFAULT_TEMPERATURE, "top_p": DEFAULT_TOP_P}  # the app's defaults
EXAMPLES_SHOWN = 6  # example first lines the model folder offers the page (examples.txt)


# ----------------------------------------------------------------------------- the loop

class Trainer:
    """Holds one run's state, so that it can be saved, resumed and evaluated in one place."""

    def __init__(self, cfg: TrainConfig, rt: Runtime, state: dict | None = None,
                 stop_at_step: int | None = None, base: LyricModel | None = None):
        """``state``: a checkpoint to resume from (see ``resumed_config``). ``base``: the model that
        ``cfg.init_from`` names, if the caller has loaded it already."""
        check_config(cfg)
        if stop_at_step is not None and stop_at_step < 0:
            raise TrainingError(f"--stop-at-step must be at least 0, got {stop_at_step}")
        self.out = Path(cfg.out)
        self.rt = rt
        self.stop_at_step = stop_at_step
        self.interrupted = False  # set by run(): stopped by a signal
        self.cfg = cfg

        text = read_corpus(cfg.data)
        # Fine-tuning (--init-from) starts from a trained model, with a row added for each character
        # of the songbook it has never seen; the base is kept as it is, to compare against.
        self.base = base or (load_base(cfg.init_from) if cfg.init_from else None)
        start, self.new_chars = grow_vocabulary(self.base, text) if self.base else (None, [])
        if state:
            self.tokenizer = CharTokenizer(state["chars"])
        else:
            self.tokenizer = start.tokenizer if start else CharTokenizer.from_text(text)
        train_text, val_text = split_as_trained(text, cfg.context_length + 1, fine_tuned=self.base is not None)
        self.data_summary = {"path": cfg.data, "chars": len(text), "songs": len(split_songs(text)),
                             "train_chars": len(train_text), "val_chars": len(val_text),
                             "val_songs": len(split_songs(val_text)),
                             "vocab_size": self.tokenizer.vocab_size}
        train_enc = self.tokenizer.encode_with_report(train_text)
        if state and train_enc.dropped:
            raise TrainingError("the corpus has changed since the checkpoint was written "
                                f"(new characters {''.join(sorted(train_enc.dropped))!r}); resume needs the same data")
        self.train_ids = torch.tensor(train_enc.ids, dtype=torch.long)
        self.val_text = val_text
        self.val_ids = torch.tensor(self.tokenizer.encode(val_text), dtype=torch.long)
        # Replay: a share of every batch from the base model's own corpus, so that it keeps what it knew.
        self.replay_ids, self.replay_val_text = None, ""
        if cfg.replay_data:
            replay_train, replay_val = train_val_split(read_corpus(cfg.replay_data), min_chars=cfg.context_length + 1)
            # What it forgot is measured on the first of those validation songs, not all of them: scoring
            # the bundled corpus's 330,000 characters twice would take a minute of a five-minute run.
            self.replay_val_text = replay_val[:replay_val.rfind("\n", 0, FORGETTING_CHARS) + 1] or replay_val
            if cfg.replay > 0:
                self.replay_ids = torch.tensor(self.tokenizer.encode(replay_train), dtype=torch.long)

        if start:
            self.model_config = replace(start.model.config, dropout=cfg.dropout)
        else:
            self.model_config = make_model_config(cfg, self.tokenizer.vocab_size)
        torch.manual_seed(cfg.seed + rt.rank)
        self.model = build_model(self.model_config).to(rt.device)
        if start and not state:
            self.model.load_state_dict(start.model.state_dict())
        self.optimizer = make_optimizer(self.model, cfg, rt.device)
        self.data_rng = torch.Generator().manual_seed(cfg.seed)  # same on every rank: rows are shared out
        self.step, self.elapsed_s, self.tokens_seen = 0, 0.0, 0
        # How long the last evaluation took: a time budget keeps this much back for the final one,
        # so that the run, evaluations included, ends within its minutes.
        self.eval_s = 0.0
        # The command that started the run, kept across resumes, for the model card.
        self.command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
        self.best_val_loss = math.inf
        self.base_val_loss = math.nan  # fine-tuning: the base model's validation loss, the score to beat
        self.evals_since_best = 0  # for early stopping (--patience)
        if state is not None:
            self._restore(state)

        self.ddp_model = self.model
        if rt.world > 1:
            self.ddp_model = DistributedDataParallel(
                self.model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
        self.forward = torch.compile(self.ddp_model) if rt.compile else self.ddp_model

    # -- state

    def _state(self) -> dict:
        rng = torch.get_rng_state()
        rng_all = [rng]
        if self.rt.world > 1:
            rng_all = [None] * self.rt.world
            dist.all_gather_object(rng_all, rng)
        return {
            "train_config": asdict(self.cfg), "model_config": asdict(self.model_config),
            "chars": self.tokenizer.chars, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "step": self.step, "elapsed_s": self.elapsed_s,
            "eval_s": self.eval_s,
            "tokens_seen": self.tokens_seen, "best_val_loss": self.best_val_loss,
            "base_val_loss": self.base_val_loss, "evals_since_best": self.evals_since_best,
            "data_rng": self.data_rng.get_state(), "torch_rng": rng_all, "command": self.command,
            "cuda_rng": torch.cuda.get_rng_state(self.rt.device) if self.rt.device.type == "cuda" else None,
        }

    def _restore(self, state: dict) -> None:
        if saved_model_config(state) != asdict(self.model_config):
            raise CheckpointError("the checkpoint's model does not match this run's settings")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"the checkpoint does not fit this model: {str(e)[:200]}") from None
        self.step, self.elapsed_s = state["step"], state["elapsed_s"]
        self.eval_s = state.get("eval_s", 0.0)
        self.tokens_seen, self.best_val_loss = state["tokens_seen"], state["best_val_loss"]
        self.base_val_loss = state.get("base_val_loss", math.nan)
        self.evals_since_best = state.get("evals_since_best", 0)
        self.data_rng.set_state(state["data_rng"])
        self.command = state.get("command", self.command)
        rngs = state["torch_rng"]
        if len(rngs) == self.rt.world:
            torch.set_rng_state(rngs[self.rt.rank])
        if state.get("cuda_rng") is not None and self.rt.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.rt.device)

    def save(self, name: str) -> None:
        state = self._state()  # every rank takes part in gathering the RNG states
        if self.rt.is_main:
            save_checkpoint(state, self.out / name)

    # -- steps

    def autocast(self):
        dtype = self.rt.autocast_dtype
        return torch.autocast(self.rt.device.type, dtype=dtype) if dtype else nullcontext()

    def train_step(self) -> float:
        """One optimiser step over the global batch; returns its mean loss over all ranks."""
        cfg, rt = self.cfg, self.rt
        lr = lr_at(cfg, self.step, self.progress())
        for group in self.optimizer.param_groups:  # each group's peak, on the one schedule
            group["lr"] = group["peak_lr"] * lr / cfg.lr
        # Every rank draws the same global batch and trains on its own rows of it, so a run on
        # N processes sees exactly the windows that one process with N x grad_accum would.
        n_rows = cfg.batch_size * cfg.grad_accum * rt.world
        x_all, y_all = self.batch(n_rows)
        total = torch.zeros((), device=rt.device)
        for micro in range(cfg.grad_accum):
            row = (micro * rt.world + rt.rank) * cfg.batch_size
            x = x_all[row:row + cfg.batch_size].to(rt.device, non_blocking=True)
            y = y_all[row:row + cfg.batch_size].to(rt.device, non_blocking=True)
            last = micro == cfg.grad_accum - 1
            sync = nullcontext() if (last or rt.world == 1) else self.ddp_model.no_sync()
            with sync, self.autocast():
                _, loss = self.forward(x, y)
            (loss / cfg.grad_accum).backward()
            total += loss.detach() / cfg.grad_accum
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens_seen += n_rows * cfg.context_length
        if rt.world > 1:
            dist.all_reduce(total)
            total /= rt.world
        return float(total)

    def batch(self, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows of the training text, a ``replay`` share of them from the base model's corpus."""
        n_replay = round(n_rows * self.cfg.replay) if self.replay_ids is not None else 0
        x, y = random_windows(self.train_ids, self.cfg.context_length, n_rows - n_replay, self.data_rng)
        if n_replay:
            x_old, y_old = random_windows(self.replay_ids, self.cfg.context_length, n_replay, self.data_rng)
            order = torch.randperm(n_rows, generator=self.data_rng)  # replayed rows spread over the ranks
            x, y = torch.cat([x, x_old])[order], torch.cat([y, y_old])[order]
        return x, y

    def evaluate(self) -> float:
        """Mean validation loss (nats per character), each validation character scored once."""
        model = self.model
        nats, count = total_nats(model, self.val_ids, stride=self.cfg.context_length,
                                 batch_size=64, autocast_dtype=self.rt.autocast_dtype)
        return nats / count

    def sync_clock(self, local_elapsed: float, stop: bool) -> tuple[float, bool]:
        """Rank 0's clock, and whether any rank was asked to stop, so that all ranks stop together."""
        if self.rt.world == 1:
            return local_elapsed, stop
        t = torch.tensor([local_elapsed if self.rt.is_main else 0.0, float(stop)], device=self.rt.device)
        dist.all_reduce(t)
        return float(t[0]), bool(t[1] > 0)

    def progress(self, step: int | None = None) -> float:
        """Share of the planned run done after ``step`` (default: now), the final evaluation's time held back."""
        step = self.step if step is None else step
        return progress_of(self.cfg, step, self.elapsed_s + self.eval_s)

    def done(self) -> bool:
        if self.stop_at_step is not None and self.step >= self.stop_at_step:
            return True
        if self.cfg.patience and self.evals_since_best >= self.cfg.patience:
            return True  # early stopping: the validation songs have stopped getting better
        return self.progress() >= 1.0

    # -- the run

    def run(self) -> Path | None:
        """Train until the plan is done; return the exported model folder, or None if it stopped
        early (``self.interrupted`` says whether a signal stopped it rather than --stop-at-step)."""
        cfg, rt = self.cfg, self.rt
        if rt.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._trim_metrics()
            print(self.describe(), flush=True)
        if self.base is not None and self.step == 0:
            self._score_the_base()
        bar = ProgressBar(cfg, enabled=rt.is_main, initial_step=self.step)
        interrupted = False
        losses: list[float] = []
        t_window, tokens_window = time.perf_counter(), self.tokens_seen
        clock = time.perf_counter() - self.elapsed_s
        self.model.train()
        # Ctrl-C and `kill` ask the loop to stop after the current step, which then ends in a
        # checkpoint. SIGINT is set explicitly because a shell starts background jobs with it ignored.
        stop_requested = []
        previous = {sig: signal.signal(sig, lambda *_: stop_requested.append(True))
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not self.done():
                loss = self.train_step()
                losses.append(loss)
                self.elapsed_s, interrupted = self.sync_clock(time.perf_counter() - clock, bool(stop_requested))
                window = time.perf_counter() - t_window
                tok_s = (self.tokens_seen - tokens_window) / max(window, 1e-9)
                bar.update(self.step, loss, tok_s, self.progress(), self.elapsed_s)
                if self.step % cfg.eval_interval == 0 or self.done():
                    started = time.perf_counter()
                    self._evaluate_and_checkpoint(sum(losses) / len(losses), tok_s, bar)
                    # The evaluation's minutes count: without this the loop would take another
                    # step on the clock from before it.
                    self.eval_s, _ = self.sync_clock(time.perf_counter() - started, False)
                    self.elapsed_s, interrupted = self.sync_clock(time.perf_counter() - clock, bool(stop_requested))
                    losses = []
                    t_window, tokens_window = time.perf_counter(), self.tokens_seen
                if interrupted:  # after any evaluation due now, which a resumed run would not redo
                    break
        finally:
            bar.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.interrupted = interrupted
        if interrupted or (self.stop_at_step is not None and self.progress() < 1.0):
            self.save("ckpt_last.pt")
            if rt.is_main:
                why = "interrupted" if interrupted else "stopped as asked"
                print(f"{why} at step {self.step}; checkpoint saved to {self.out / 'ckpt_last.pt'}. "
                      f"Continue with: python train.py --out {self.out} --resume", flush=True)
            return None
        return self.export() if rt.is_main else None

    def _evaluate_and_checkpoint(self, train_loss: float, tok_s: float, bar: "ProgressBar") -> None:
        val_loss = self.evaluate()
        self.model.train()
        record = {"step": self.step, "train_loss": round(train_loss, 5), "val_loss": round(val_loss, 5),
                  "val_bits_per_char": round(val_loss / math.log(2), 5),
                  "lr": lr_at(self.cfg, self.step - 1, self.progress(self.step - 1)),
                  "tokens_per_s": round(tok_s, 1), "elapsed_s": round(self.elapsed_s, 2),
                  "tokens_seen": self.tokens_seen}
        improved = val_loss < self.best_val_loss
        self.best_val_loss = min(self.best_val_loss, val_loss)
        self.evals_since_best = 0 if improved else self.evals_since_best + 1
        if self.rt.is_main:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            write_loss_plot(read_metrics(self.out / "metrics.jsonl"), self.out / "loss.png")
            # From the record, so that the log and metrics.jsonl never disagree in the last digit.
            bar.write(f"step {self.step}: train loss {record['train_loss']:.4f}, val loss {record['val_loss']:.4f} "
                      f"({record['val_bits_per_char']:.3f} bits/char, disjoint windows)"
                      f"{' *best*' if improved else ''}, "
                      f"lr {record['lr']:.2e}, {tok_s:,.0f} tokens/s")
        state = self._state()  # every rank takes part in gathering the RNG states
        if self.rt.is_main:
            save_checkpoint(state, self.out / "ckpt_last.pt")
            if improved:
                save_checkpoint(state, self.out / "ckpt_best.pt")

    def _score_the_base(self) -> None:
        """Fine-tuning's first checkpoint is the base model itself: a later one is kept only if it does better."""
        self.best_val_loss = self.base_val_loss = self.evaluate()
        self.save("ckpt_best.pt")
        if self.rt.is_main:
            print(f"the base model scores {self.base_val_loss / math.log(2):.4f} bits/char on the songbook's "
                  "validation songs (disjoint windows): a checkpoint is kept only if it does better", flush=True)

    def samples(self, lm: LyricModel) -> dict[str, str]:
        """The model card's samples: the same first lines, seed and settings for every model."""
        return {seed_line: "".join(lm.stream(seed_line, self.cfg.sample_chars, seed=self.cfg.seed, **SAMPLING))
                for seed_line in SAMPLE_SEED_LINES}

    def _before_and_after(self, lm: LyricModel, val_bpc: float, kept_base: bool) -> dict:
        """What fine-tuning changed, for the model card: the songbook's validation songs, the base
        model's own validation songs (what it forgot), and samples, before and after."""
        corpus = {}
        if self.replay_val_text:
            corpus = {"corpus": self.cfg.replay_data, "corpus_chars": len(self.replay_val_text),
                      "corpus_before": score_text(self.base, self.replay_val_text)["bits_per_char"],
                      "corpus_after": score_text(lm, self.replay_val_text)["bits_per_char"]}
        return {"base": self.cfg.init_from, "kept_base": kept_base, "new_chars": self.new_chars,
                "val_before": score_text(self.base, self.val_text)["bits_per_char"], "val_after": val_bpc,
                "samples_before": self.samples(self.base), **corpus}

    def _trim_metrics(self) -> None:
        """On resume, forget evaluations made after the checkpoint (they will be made again)."""
        path = self.out / "metrics.jsonl"
        if path.exists():
            kept = [m for m in read_metrics(path) if m["step"] <= self.step]
            path.write_text("".join(json.dumps(m) + "\n" for m in kept))

    def describe(self) -> str:
        """Two lines: what the run will do (recipe, data, budget, folder), then what it found and runs on."""
        cfg = self.cfg
        layers = f"{cfg.n_layer} layer{'s' * (cfg.n_layer > 1)} of width {cfg.n_embd}, " if cfg.model == "gpt" else ""
        budgets = [f"{cfg.max_steps:,} steps" if cfg.max_steps else "",
                   f"{cfg.max_minutes:g} minutes" if cfg.max_minutes else ""]
        budget = " or ".join(filter(None, budgets)) + (", whichever comes first" if all(budgets) else "")
        start = f"Resuming at step {self.step:,}: training" if self.step else "Training"
        stop = f", stopping at step {self.stop_at_step:,} (--stop-at-step)" if self.stop_at_step is not None else ""
        plan = (f"{start} a {cfg.model} model ({layers}context {cfg.context_length}, {cfg.optimizer}) on {cfg.data} "
                f"for {budget}{stop}; checkpoints and the model go to {self.out}")
        return (f"{plan}\n{self.model.num_params():,} parameters; "
                f"data: {self.data_summary['train_chars']:,} training and {self.data_summary['val_chars']:,} "
                f"validation characters, vocabulary {self.tokenizer.vocab_size}; device {self.rt.device}, "
                f"{'bfloat16 autocast' if self.rt.autocast_dtype else 'float32'}"
                f"{', compiled' if self.rt.compile else ''}, {self.rt.world} process(es)"
                + (f"\n{self._describe_finetuning()}" if self.base else ""))

    def _describe_finetuning(self) -> str:
        cfg, data = self.cfg, self.data_summary
        replay = (f"{cfg.replay:.0%} of each batch replays {cfg.replay_data}" if self.replay_ids is not None else
                  "no replay of the base model's corpus (its model card names none on this machine: give "
                  "--replay-data)" if cfg.replay > 0 else "no replay")
        stop = f"stopping early after {cfg.patience} evaluations without a better one" if cfg.patience else ""
        new = (f"; {len(self.new_chars)} characters the base model never saw get new rows: "
               f"{''.join(self.new_chars)!r}" if self.new_chars else "")
        return (f"Fine-tuning {cfg.init_from}: {data['songs'] - data['val_songs']} songs to learn from, "
                f"{data['val_songs']} kept aside for validation; {replay}; {stop or 'no early stopping'}{new}")

    def export(self) -> Path:
        """Write the best model, with its card, plot and samples, to OUT/model."""
        best = self.out / "ckpt_best.pt"
        state = load_checkpoint(best) if best.exists() else {"model": self.model.state_dict(), "step": self.step}
        kept_base = self.base is not None and state["step"] == 0  # fine-tuning never did better
        if kept_base:
            lm = self.base
        else:
            model = build_model(self.model_config)
            model.load_state_dict(state["model"])
            lm = LyricModel(model, self.tokenizer, source=str(self.out / "model"))
        folder = self.out / "model"
        folder.mkdir(parents=True, exist_ok=True)
        val_bpc = score_text(lm, self.val_text)["bits_per_char"]
        samples = self.samples(lm)
        finetune = self._before_and_after(lm, val_bpc, kept_base) if self.base else None
        if (self.out / "loss.png").exists():
            (folder / "loss.png").write_bytes((self.out / "loss.png").read_bytes())
        write_model_card(folder / "README.md", {
            "train_config": asdict(self.cfg), "model_config": asdict(lm.model.config),
            "parameters": lm.model.num_params(), "data": self.data_summary,
            "command": self.command,
            "tokens_seen": self.tokens_seen, "steps": self.step, "minutes": self.elapsed_s / 60,
            "best_step": state["step"], "val_bits_per_char": val_bpc, "samples": samples, "sampling": SAMPLING,
            "has_plot": (folder / "loss.png").exists(), "finetune": finetune,
        })
        lm.save(folder)
        # The page's example first lines for this voice: those of songs held out from training, which
        # it goes on from in its own way rather than reciting a song it learned.
        examples = first_lines(self.val_text, EXAMPLES_SHOWN)
        if examples:
            (folder / EXAMPLES_NAME).write_text("".join(line + "\n" for line in examples), encoding="utf-8")
        if kept_base:
            print(f"fine-tuning never beat the base model on the songbook's validation songs, so {folder} holds "
                  f"the base model {self.cfg.init_from} unchanged ({val_bpc:.4f} bits/char there)", flush=True)
            return folder
        # This differs from the last evaluation line: it may be another checkpoint, and it is scored as
        # `python -m lyricgpt.evaluate` scores, with windows overlapping by half a context (score_text),
        # where the evaluations during training use disjoint ones, whose first characters see little context.
        seen = self.model_config.context_length - self.model_config.context_length // 2
        print(f"model written to {folder}: the best checkpoint (step {state['step']:,} of {self.step:,}), "
              f"validation {val_bpc:.4f} bits/char scored with overlapping windows: every character after "
              f"the first {seen} sees at least {seen} characters of context", flush=True)
        return folder


def read_metrics(path: Path) -> list[dict]:
    """The evaluations recorded in a run's metrics.jsonl; a TrainingError for a file that holds something else."""
    records = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not (isinstance(record, dict) and isinstance(record.get("step"), int)):
            raise TrainingError(f"{path} is not a train.py record (line {n}): move it out of --out, or train "
                                "into another folder")
        records.append(record)
    return records
