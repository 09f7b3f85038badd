"""The serving engine: one process of its own owns the model and steps every song in flight as one batch.

Requests submit a song and read its characters from their own ``SongStream``. Songs beyond the
batch's capacity wait in a bounded line; beyond that, ``submit`` refuses at once (``EngineBusy``),
so nobody waits without end. A cancelled song leaves the batch before the next step. If the
engine's process dies, its songs end with a message and a new process takes the next ones.

Why a process and not a thread: a decoding step is hundreds of small torch calls, and each one
lets go of Python's interpreter lock and must take it back. In the web server's process the lock
is also wanted by every stream's updates, so the engine waited on the server between calls
(docs/benchmarks.md measures it). In a process of its own the engine never waits on the server,
as in vLLM's V1, whose engine core runs in a process apart from its API server.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Callable, Iterator, Sequence

import torch

from .batching import BatchSampler, check_song
from .decoding import warm_up
from .form import Form, FormSpec
from .lexicon import Lexicon
from .sampler import SamplingSettings, SongEnd, Step

log = logging.getLogger(__name__)

_END = object()  # put on a stream after its last step
PATIENCE_S = 120.0  # a reader that waits longer than this for its next step gives up: never a hung stream
START_TIMEOUT_S = 300.0  # for the engine's process to import torch, take the model and compile its step


class EngineBusy(RuntimeError):
    """Every place in the batch and in the line is taken."""


class EngineError(RuntimeError):
    """The engine could not finish a song; the message says why."""


class SongStream:
    """One song's side of the engine: its steps as they come, and a way to cancel it."""

    def __init__(self, cancel: Callable[[], None]):
        self.cancelled = threading.Event()
        self._cancel = cancel
        self._out: queue.SimpleQueue = queue.SimpleQueue()

    def cancel(self) -> None:
        """Ask the engine to drop the song; its row is free before the next step."""
        if not self.cancelled.is_set():
            self.cancelled.set()
            self._cancel()

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
    """Steps up to ``max_batch`` songs together in a process of its own, on ``threads`` torch
    threads; ``max_waiting`` more may wait."""

    def __init__(self, model: torch.nn.Module, max_batch: int = 16, max_waiting: int = 16,
                 refill_keep: int | None = None, threads: int = 1, lexicon: Lexicon | None = None,
                 chars: Sequence[str] = ()):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be at least 0, got {max_waiting}")
        self.capacity, self.max_waiting = max_batch, max_waiting
        self._streams: dict[int, SongStream] = {}  # submitted, not yet ended
        self._ids = itertools.count()
        self._lock = threading.Lock()  # guards _streams, the two flags and sending
        self._closing = False  # close() was called
        self._closed = False  # no process is taking songs: closed, or starting again
        self._broken = False  # a process died and the next one could not be started
        self._singing = self._waiting = 0  # as the engine last reported
        # Plain pickle copies the weights; multiprocessing's pickler would try to share them
        # through a handshake that only processes started by multiprocessing can make.
        # The songs' forms (lyricgpt.form) are made there from the voice's words and characters.
        self._setup = pickle.dumps((model, max_batch, refill_keep, threads, lexicon, list(chars)))
        self._conn, self._process = self._start()
        self._reader = threading.Thread(target=self._read, name="lyricgpt-engine-reader", daemon=True)
        self._reader.start()

    def _start(self) -> tuple[Connection, subprocess.Popen]:
        """Start the engine's process and hand it the model; return once it is ready."""
        ours, theirs = socket.socketpair()
        # A fresh interpreter, not a fork of this one (whose threads may hold locks), that can
        # import whatever this one can, the model's classes included.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)}
        process = subprocess.Popen([sys.executable, "-m", "lyricgpt.engine", str(theirs.fileno())],
                                   pass_fds=[theirs.fileno()], env=env)
        theirs.close()
        conn = Connection(ours.detach())
        try:
            conn.send_bytes(self._setup)
            ready = conn.poll(START_TIMEOUT_S) and conn.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            process.kill()
            raise EngineError(f"the engine's process did not start (exit status {process.poll()})")
        return conn, process

    @property
    def singing(self) -> int:
        """Songs in the batch now."""
        return self._singing

    @property
    def waiting(self) -> int:
        return self._waiting

    def submit(self, prompt: list[int], max_new_tokens: int, settings: SamplingSettings,
               seed: int | None = None, end: SongEnd | None = None, form: FormSpec | None = None) -> SongStream:
        """Queue a song; raise EngineBusy when the batch and the line are both full. Given ``end``,
        the song also ends (and frees its place) where the model ends it; given ``form``, it keeps it."""
        check_song(prompt, max_new_tokens)  # here, so the caller hears of it at once
        song_id = next(self._ids)
        stream = SongStream(lambda: self._send(("cancel", song_id)))
        with self._lock:
            if self._closed:
                raise EngineError("the engine has shut down" if self._closing else
                                  "the engine stopped and could not be started again" if self._broken else
                                  "the engine stopped and is starting again; try again in a few seconds")
            # A cancelled song's place counts as free: the engine drops it before its next step.
            active = sum(not s.cancelled.is_set() for s in self._streams.values())
            if active >= self.capacity + self.max_waiting:
                raise EngineBusy(f"all {self.capacity} places are singing and {self.max_waiting} more are waiting")
            try:
                self._conn.send(("add", song_id, list(prompt), max_new_tokens, settings, seed, end, form))
            except OSError:
                raise EngineError("the engine stopped") from None
            self._streams[song_id] = stream
        return stream

    def close(self) -> None:
        """Stop the engine; songs still in flight end with an EngineError."""
        with self._lock:
            self._closing = True
        self._send(("close",))
        with self._lock:
            self._closed = True
        self._reader.join()
        self._process.wait()

    def _send(self, message: tuple) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._conn.send(message)
            except OSError:  # the engine is gone; the reader ends its songs
                pass

    def _read(self) -> None:
        """Hand each report's steps to their streams. If the engine's process dies, end its songs
        with a message and start a new one; return once the engine is closed."""
        while self._read_until_the_process_ends():
            log.error("the engine's process ended (exit status %s); starting a new one", self._process.poll())
            try:
                conn, process = self._start()
            except EngineError:
                log.exception("the engine could not be started again")
                with self._lock:
                    self._broken = True
                return
            with self._lock:
                self._conn, self._process = conn, process
                if self._closing:  # close() came while it started
                    conn.send(("close",))
                else:
                    self._closed = False

    def _read_until_the_process_ends(self) -> bool:
        """Read reports until the process ends; end the songs still in it. True if it died."""
        try:
            while True:
                steps, ended, failed, self._singing, self._waiting = self._conn.recv()
                with self._lock:
                    streams = [(self._streams.get(i), step) for i, step in steps]
                for stream, step in streams:
                    if stream is not None:
                        stream._out.put(step)
                with self._lock:
                    done = [(self._streams.pop(i, None), _END) for i in ended]
                    done += [(self._streams.pop(i, None), EngineError(why)) for i, why in failed]
                for stream, last in done:
                    if stream is not None:
                        stream._out.put(last)
        except (EOFError, OSError):
            pass
        with self._lock:
            died = not self._closing
            self._closed = True  # until a new process is ready, songs are refused
            left, self._streams = list(self._streams.values()), {}
        for stream in left:
            stream._out.put(EngineError("the engine stopped" if died else "the server is shutting down"))
        return died


# -- the engine's process


def serve(conn: Connection) -> None:
    """The engine's loop: take songs and cancellations, step the batch, report every step.
    It ends when told to, or when the server's end of ``conn`` closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle; it closes us
    model, max_batch, refill_keep, threads, lexicon, chars = pickle.loads(conn.recv_bytes())
    torch.set_num_threads(threads)
    warm_up(model, max_batch)  # compile every batch size before the first song waits for it
    sampler = BatchSampler(model, max_batch, refill_keep)
    forms = functools.lru_cache(maxsize=64)(lambda spec: Form(spec, lexicon, chars))  # one per form asked for
    conn.send("ready")
    try:
        _serve(conn, sampler, forms)
    except (EOFError, OSError):  # the server has gone
        pass


def _serve(conn: Connection, sampler: BatchSampler, forms: Callable[[FormSpec], Form]) -> None:
    line: deque[tuple] = deque()  # songs waiting for a place: (id, prompt, max_new_tokens, settings, seed, end, form)
    while True:
        ended, failed = [], []
        # Messages first, so that a cancelled song leaves before the next step. With nothing to
        # do, wait for one; then take whatever else has come, without waiting, and report.
        wait = not sampler.songs and not line
        while conn.poll(None if wait else 0):
            wait = False
            message = conn.recv()
            if message[0] == "close":
                failed = [(s.tag, "the server is shutting down") for s in sampler.songs]
                failed += [(entry[0], "the server is shutting down") for entry in line]
                conn.send(([], [], failed, 0, 0))
                return
            if message[0] == "add":
                line.append(message[1:])
            elif _drop(sampler, line, message[1]):  # cancel
                ended.append(message[1])
        while line and len(sampler.songs) < sampler.capacity:
            song_id, prompt, max_new_tokens, settings, seed, end, spec = line.popleft()
            try:
                sampler.add(prompt, max_new_tokens, settings, seed, tag=song_id, end=end,
                            form=forms(spec) if spec is not None else None)
            except Exception as e:  # noqa: BLE001 - a song that cannot start fails alone
                failed.append((song_id, f"the song could not start: {e}"))
        songs = list(sampler.songs)
        try:
            results = sampler.step()
        except Exception as e:  # noqa: BLE001 - a fault of the model: fail these songs, keep serving
            results = []
            for song in songs:  # some may have left the batch already, inside step()
                if song in sampler.songs:
                    sampler.remove(song)
                failed.append((song.tag, f"the model failed while writing this song: {e}"))
            print(f"lyricgpt engine: the batched forward pass failed: {e}", file=sys.stderr, flush=True)
        steps = [(song.tag, step) for song, step in results]
        ended += [song.tag for song, _ in results if song.finished and song.error is None]
        failed += [(song.tag, f"sampling this song failed: {song.error}") for song in songs if song.error is not None]
        conn.send((steps, ended, failed, len(sampler.songs), len(line)))


def _drop(sampler: BatchSampler, line: deque, song_id: int) -> bool:
    """Take a cancelled song out of the batch or the line; False if it had ended already."""
    for song in sampler.songs:
        if song.tag == song_id:
            sampler.remove(song)
            return True
    for entry in line:
        if entry[0] == song_id:
            line.remove(entry)
            return True
    return False


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
