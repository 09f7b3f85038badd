"""The training run's progress line: step, loss, tokens/s and the time left."""

from __future__ import annotations

import math
import sys
import time

from .train_config import TrainConfig


class ProgressBar:
    """Step, loss, tokens/s and the time left: a tqdm bar on a terminal, and elsewhere (a log file, a
    pipe) a plain line every LINE_EVERY_S seconds, since there tqdm redraws only every 30 s, with
    carriage returns, and its figures sit still in between."""

    LINE_EVERY_S = 10.0
    ESTIMATE_AFTER_S = 30.0  # of this process's training: long enough to know the machine's speed

    def __init__(self, cfg: TrainConfig, enabled: bool, initial_step: int):
        from tqdm import tqdm

        self.total = cfg.max_steps if cfg.max_steps and not cfg.max_minutes else None
        self.lines = enabled and not sys.stderr.isatty()
        self.bar = tqdm(total=self.total, initial=initial_step, unit="step", disable=not enabled or self.lines,
                        dynamic_ncols=True, mininterval=1.0)
        self._last = initial_step
        self._line, self._line_at = "", time.perf_counter()
        self._started_s: float | None = None  # the run's clock at this process's first step
        self._estimated = False

    def update(self, step: int, loss: float, tok_s: float, progress: float, elapsed_s: float) -> None:
        self.bar.update(step - self._last)
        self._last = step
        eta = elapsed_s * (1 - progress) / progress if progress > 0 else float("nan")
        status = f"loss {loss:.3f}, {tok_s:,.0f} tok/s, {progress:.0%}, eta {_fmt_time(eta)}"
        self.bar.set_postfix_str(status, refresh=False)
        if self._started_s is None:
            self._started_s = elapsed_s
        if not self._estimated and elapsed_s - self._started_s >= self.ESTIMATE_AFTER_S and 0 < progress < 1:
            self._estimated = True  # once: the bar's eta keeps it up to date
            self.write(f"time estimate for this machine, at its speed so far: {_fmt_minutes(elapsed_s / progress)} "
                       f"in all, {_fmt_minutes(eta)} to go")
        if self.lines:
            self._line = f"step {step}{f'/{self.total}' if self.total else ''}: {status}"
            if time.perf_counter() - self._line_at >= self.LINE_EVERY_S:
                self._print_line()

    def _print_line(self) -> None:
        print(self._line, file=sys.stderr, flush=True)
        self._line, self._line_at = "", time.perf_counter()

    def write(self, line: str) -> None:
        self.bar.write(line)
        sys.stdout.flush()  # a log file is block-buffered: show each evaluation when it is made

    def close(self) -> None:
        if self.lines and self._line:  # the last step, unless just printed
            self._print_line()
        self.bar.close()


def _fmt_minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"about {minutes:,} minute{'s' * (minutes > 1)}"


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"
