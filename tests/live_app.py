"""Run app.py as a real server process on a free port, for tests and benchmarks.

    with running_app(env, LYRICGPT_MODEL=folder) as app:   # returns once the page answers
        Client(app.url).submit(...)
        app.log()                                          # what the server printed so far
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LiveApp:
    url: str
    process: subprocess.Popen
    log_path: Path
    startup_s: float  # from starting the process to the page answering

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self) -> str:
        """The end of the log, for a failure's message."""
        return self.log()[-3000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(env: dict[str, str], timeout: float = 180.0, app_py: Path = ROOT / "app.py",
                **settings: str) -> Iterator[LiveApp]:
    """Start ``app_py`` with ``env`` plus ``settings`` (e.g. LYRICGPT_MODEL=...); stop it on exit."""
    port = free_port()
    env = {**env, **settings, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    with tempfile.TemporaryDirectory(prefix="lyricgpt-app-") as tmp:
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            start = time.monotonic()
            process = subprocess.Popen([sys.executable, str(app_py)], env=env, cwd=ROOT,
                                       stdout=log, stderr=subprocess.STDOUT)
        app = LiveApp(f"http://127.0.0.1:{port}", process, log_path, 0.0)
        try:
            app.startup_s = _wait_until_up(app, start, timeout)
            yield app
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(app: LiveApp, start: float, timeout: float) -> float:
    while time.monotonic() - start < timeout:
        if app.process.poll() is not None:
            raise RuntimeError(f"app.py exited with code {app.process.returncode}:\n{app.log_tail()}")
        try:
            with urllib.request.urlopen(app.url + "/", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.1)  # polling a port: nothing to wait on instead
    raise RuntimeError(f"app.py did not answer within {timeout:g} s:\n{app.log_tail()}")
