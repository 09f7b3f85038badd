"""Pulling model folders from, and pushing them to, the Hugging Face Hub, always within a time bound.

huggingface_hub can wait forever on a server that accepts a connection and never answers (its
``repo_info`` call has no timeout), so every call runs in a daemon thread that we stop waiting for
after ``timeout`` seconds. The Hub's address comes from HF_ENDPOINT, the token from HF_TOKEN or a
saved ``hf auth login``; the token never appears in our messages.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, TypeVar

import httpx2
from huggingface_hub import HfApi, constants, get_token, snapshot_download
from huggingface_hub.errors import (HfHubHTTPError, HFValidationError, LocalEntryNotFoundError,
                                    RepositoryNotFoundError, RevisionNotFoundError)
from huggingface_hub.utils import validate_repo_id

MODEL_FILES = ["config.json", "model.safetensors", "tokenizer.json", "README.md", "*.png", "examples.txt"]

T = TypeVar("T")
log = logging.getLogger(__name__)


class HubError(RuntimeError):
    """The Hub could not be reached, refused, or did not answer in time."""


def looks_like_repo_id(source: str) -> bool:
    """USER/REPO, spelled as the Hub allows (the user part is required)."""
    try:
        validate_repo_id(source)
    except HFValidationError:
        return False
    return source.count("/") == 1


def download(repo_id: str, revision: str | None = None, timeout: float = 10.0) -> Path:
    """Download a model repo into the local Hub cache and return its folder.

    ``timeout`` bounds the whole download, so a big model needs a bigger one. If the Hub cannot be
    reached in time, a copy already in the cache is used instead; a cached commit sha needs no Hub.
    """
    def fetch(local_files_only: bool) -> Path:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=MODEL_FILES,
                                      local_files_only=local_files_only, etag_timeout=timeout))

    try:
        return _bounded(lambda: fetch(False), timeout, f"downloading {repo_id}")
    except HubError as online_error:
        # The online attempt may still be stuck in its thread; reading the cache needs no network.
        try:
            folder = _bounded(lambda: fetch(True), timeout, f"reading {repo_id} from the local cache")
        except HubError:
            raise online_error from None
        log.warning("%s; using the copy in the local cache", online_error)
        return folder


def push(folder: str | Path, repo_id: str, private: bool = False, timeout: float = 600.0,
         files: list[str] = MODEL_FILES) -> str:
    """Upload a model folder's ``files`` (names or patterns) to ``repo_id`` (created if needed);
    return the commit's URL."""
    check_can_push(repo_id)

    def upload() -> str:
        api = HfApi()
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.upload_folder(folder_path=str(folder), repo_id=repo_id, allow_patterns=files,
                                 commit_message="Upload LyricGPT model").commit_url

    return _bounded(upload, timeout, f"pushing to {repo_id}")


def check_can_push(repo_id: str) -> None:
    """Raise HubError unless ``repo_id`` is well formed and a token is at hand (no network)."""
    if not looks_like_repo_id(repo_id):
        raise HubError(f"{repo_id!r} is not a Hub repo id; expected USER/REPO")
    if get_token() is None:
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")


def _bounded(work: Callable[[], T], timeout: float, what: str) -> T:
    """Run ``work`` in a daemon thread; raise HubError if it fails or is not done in ``timeout`` s."""
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
        raise HubError(f"{what}: the Hub at {constants.ENDPOINT} did not answer within {timeout:g} s")
    if "error" in result:
        raise HubError(_scrub(f"{what}: {_describe(result['error'])}")) from None
    return result["value"]  # type: ignore[return-value]


def _describe(e: BaseException) -> str:
    """Say what went wrong in a user's words, not in huggingface_hub's."""
    if isinstance(e, LocalEntryNotFoundError) and e.__cause__ is not None:
        e = e.__cause__  # "not in the cache" hides why the Hub could not be asked
    where = constants.ENDPOINT
    if isinstance(e, RepositoryNotFoundError):
        return f"{where} has no such repo (or it is private and your token cannot see it)"
    if isinstance(e, RevisionNotFoundError):
        return f"{where} has no such revision in this repo"
    if isinstance(e, HfHubHTTPError) and e.response is not None:  # the server's own words say most
        return f"{where} answered HTTP {e.response.status_code}: {_first_line(e.server_message or str(e))}"
    if isinstance(e, httpx2.TransportError):
        return f"cannot reach the Hub at {where}: {_first_line(str(e))}"
    return f"{type(e).__name__}: {_first_line(str(e))}"


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else "no details"


def _scrub(text: str) -> str:
    """A server may echo request headers in an error; never pass the token on."""
    token = get_token()
    return text.replace(token, "hf_***") if token else text
