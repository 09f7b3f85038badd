"""Pulling model folders from, and pushing them to, the Hugging Face Hub, always within a time bound.

huggingface_hub can wait forever on a server that accepts a connection and never answers, so
every call runs in a daemon thread that we stop waiting for after ``timeout`` seconds.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Callable, TypeVar

MODEL_FILES = ["config.json", "model.safetensors", "tokenizer.json", "README.md", "*.png"]
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")

T = TypeVar("T")


class HubError(RuntimeError):
    """The Hub could not be reached, refused, or did not answer in time."""


def looks_like_repo_id(source: str) -> bool:
    return bool(REPO_ID.match(source)) and ".." not in source


def _bounded(work: Callable[[], T], timeout: float, what: str) -> T:
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as e:  # re-raised in the caller's thread below
            result["error"] = e

    thread = threading.Thread(target=run, name=f"hub: {what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise HubError(f"{what}: the Hub did not answer within {timeout:g} s")
    if "error" in result:
        e = result["error"]
        raise HubError(f"{what}: {type(e).__name__}: {_first_line(e)}") from None
    return result["value"]  # type: ignore[return-value]


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else "no details"


def download(repo_id: str, revision: str | None = None, timeout: float = 10.0) -> Path:
    """Download a model repo into the local Hub cache and return its folder.

    If the Hub cannot be reached in time, a copy already in the cache is used instead.
    """
    from huggingface_hub import snapshot_download

    def fetch(local_files_only: bool) -> Path:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=MODEL_FILES,
                                      local_files_only=local_files_only, etag_timeout=timeout))

    try:
        return _bounded(lambda: fetch(False), timeout, f"downloading {repo_id}")
    except HubError as online_error:
        try:
            return _bounded(lambda: fetch(True), timeout, f"reading {repo_id} from the local cache")
        except HubError:
            raise online_error from None


def push(folder: str | Path, repo_id: str, private: bool = False, timeout: float = 600.0) -> str:
    """Upload a model folder to ``repo_id`` (created if needed); return the commit's URL.

    The token comes from HF_TOKEN or a saved ``hf auth login``; it is never printed.
    """
    from huggingface_hub import HfApi, get_token

    if not looks_like_repo_id(repo_id):
        raise HubError(f"{repo_id!r} is not a Hub repo id; expected USER/REPO")
    if get_token() is None:
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login`, then push again")
    api = HfApi()

    def upload() -> str:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                                 commit_message="Upload LyricGPT model")
        return str(getattr(info, "commit_url", info))

    return _bounded(upload, timeout, f"pushing to {repo_id}")
