"""The serving engine: one thread owns the model and steps every song in flight as one batch.

Requests submit a song and read its characters from their own ``SongStream``. Songs beyond the
batch's capacity wait in a bounded line; beyond that, ``submit`` refuses at once (``EngineBusy``),
so nobody waits without end. A cancelled song leaves the batch before the next step.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Iterator

import torch

from .batching import BatchSampler
from .sampler import SamplingSettings, Step

log = logging.getLogger(__name__)

_END = object()  # put on a stream after its last step
PATIENCE_S = 120.0  # a reader that waits longer than this for its next step gives up: never a hung stream


class EngineBusy(RuntimeError):
    """Every place in the batch and in the line is taken."""


class EngineError(RuntimeError):
    """The engine could not finish a song; the message says why."""


class SongStream:
    """One song's side of the engine: its steps as they come, and a way to cancel it."""

    def __init__(self, prompt: list[int], max_new_tokens: int, settings: SamplingSettings, seed: int | None):
        self.prompt, self.max_new_tokens, self.settings, self.seed = prompt, max_new_tokens, settings, seed
        self.cancelled = threading.Event()
        self._out: queue.SimpleQueue = queue.SimpleQueue()

    def cancel(self) -> None:
        """Ask the engine to drop the song; its row is free before the next step."""
        self.cancelled.set()

    def chunks(self, interval: Callable[[], float] = lambda: 0.0, clock: Callable[[], float] = time.monotonic,
               patience: float = PATIENCE_S) -> Iterator[list[Step]]:
        """The song's steps in chunks: whatever has arrived, at most one chunk per ``interval()``
        seconds (the first as soon as it comes), so that a reader wakes a few times a second
        rather than at every character. Waiting longer than ``patience`` for a step is an error."""
        last = -float("inf")
        while True:
            wait = last + interval() - clock()
            if wait > 0:
                time.sleep(wait)
            try:
                items = [self._out.get(timeout=patience)]  # blocks until the engine has something
            except queue.Empty:
                self.cancel()
                raise EngineError(f"no character came for {patience:g} s") from None
            while last > -float("inf") and not self._out.empty():  # the first character comes on its own
                items.append(self._out.get_nowait())
            last = clock()
            steps = [i for i in items if isinstance(i, Step)]
            if steps:
                yield steps
            for item in items:
                if item is _END:
                    return
                if isinstance(item, Exception):
                    raise item

    def __iter__(self) -> Iterator[Step]:
        for chunk in self.chunks():
            yield from chunk


class Engine:
    """Steps up to ``max_batch`` songs together on a thread of its own; ``max_waiting`` more may wait."""

    def __init__(self, model: torch.nn.Module, max_batch: int = 16, max_waiting: int = 16,
                 refill_keep: int | None = None):
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be at least 0, got {max_waiting}")
        self.sampler = BatchSampler(model, max_batch, refill_keep)
        self.max_waiting = max_waiting
        self._waiting: list[SongStream] = []
        self._joining: list[SongStream] = []  # taken from the line, being prefilled
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lyricgpt-engine", daemon=True)
        self._thread.start()

    @property
    def singing(self) -> int:
        """Songs in the batch now."""
        return len(self.sampler.songs)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def submit(self, prompt: list[int], max_new_tokens: int, settings: SamplingSettings,
               seed: int | None = None) -> SongStream:
        """Queue a song; raise EngineBusy when the batch and the line are both full."""
        if not prompt:
            raise ValueError("the prompt needs at least one token")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        stream = SongStream(list(prompt), max_new_tokens, settings, seed)
        with self._wake:
            if self._closed:
                raise EngineError("the engine has shut down")
            # A cancelled song's place counts as free: the engine drops it before its next step.
            singing = sum(not song.tag.cancelled.is_set() for song in list(self.sampler.songs))
            waiting = sum(not stream.cancelled.is_set() for stream in self._waiting + self._joining)
            if singing + waiting >= self.sampler.capacity + self.max_waiting:
                raise EngineBusy(f"all {self.sampler.capacity} places are singing and "
                                 f"{self.max_waiting} more are waiting")
            self._waiting.append(stream)
            self._wake.notify()
        return stream

    def close(self) -> None:
        """Stop the thread; songs still in flight end with an EngineError."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    # -- the engine thread

    def _run(self) -> None:
        try:
            while self._admit():
                for song in [s for s in self.sampler.songs if s.tag.cancelled.is_set()]:
                    self.sampler.remove(song)
                self._step()
            self._fail(EngineError("the server is shutting down"))
        except BaseException as e:  # the thread itself broke: nobody may be left waiting on it
            log.exception("the engine thread stopped")
            self._fail(EngineError(f"the engine stopped: {e}"))
            raise

    def _admit(self) -> bool:
        """Wait for work; move waiting songs into free rows. False once closed."""
        with self._wake:
            while not self._closed and not self._waiting and not self.sampler.songs:
                self._wake.wait()
            if self._closed:
                return False
            free = self.sampler.capacity - len(self.sampler.songs)
            joining, self._waiting = self._waiting[:free], self._waiting[free:]
            self._joining = list(joining)
        for stream in joining:
            self._join(stream)
            with self._wake:  # counted as singing from now on, not twice
                self._joining.remove(stream)
        return True

    def _join(self, stream: SongStream) -> None:
        if stream.cancelled.is_set():
            return
        try:
            self.sampler.add(stream.prompt, stream.max_new_tokens, stream.settings, stream.seed, tag=stream)
        except Exception as e:  # noqa: BLE001 - a song that cannot start fails alone
            log.exception("a song could not start")
            stream._out.put(EngineError(f"the song could not start: {e}"))

    def _step(self) -> None:
        songs = list(self.sampler.songs)
        try:
            results = self.sampler.step()
        except Exception as e:  # noqa: BLE001 - a fault of the model: fail these songs, keep serving
            log.exception("the batched forward pass failed; ending the %d songs in it", len(songs))
            for song in songs:  # some may have left the batch already, inside step()
                if song in self.sampler.songs:
                    self.sampler.remove(song)
                song.tag._out.put(EngineError(f"the model failed while writing this song: {e}"))
            return
        for song, step in results:
            song.tag._out.put(step)
            if song.finished:
                song.tag._out.put(_END)
        for song in songs:
            if song.error is not None:
                log.error("a song failed while sampling: %s", song.error)
                song.tag._out.put(EngineError(f"sampling this song failed: {song.error}"))

    def _fail(self, error: EngineError) -> None:
        """End every song in the batch and in the line with ``error``."""
        for song in list(self.sampler.songs):
            self.sampler.remove(song)
            song.tag._out.put(error)
        with self._wake:
            waiting, self._waiting = self._waiting + self._joining, []
        for stream in waiting:
            stream._out.put(error)
