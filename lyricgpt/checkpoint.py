"""Training checkpoints: written atomically, read without unpickling arbitrary objects."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "lyricgpt-checkpoint"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read, with the reason."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` so that a crash or a full disk never leaves a half-written file:
    the bytes go to a temporary file beside it, which replaces ``path`` only once complete."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, "version": 1, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        tmp.unlink(missing_ok=True)
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise CheckpointError(f"could not write checkpoint {path}: {reason}; "
                              "the previous checkpoint, if any, is unchanged") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        detail = " ".join(str(e).split())[:200]
        raise CheckpointError(f"{path} is truncated, corrupted or not a checkpoint ({detail})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a LyricGPT training checkpoint")
    if state.get("version") != 1:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')!r}; this code reads 1")
    return state
