"""Model weights on disk: safetensors (never pickle), with a checksum that catches corruption."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class WeightsError(ValueError):
    """A weights file that is missing, damaged or made for another model."""


def state_digest(model: torch.nn.Module) -> str:
    """SHA-256 over the parameter names and bytes, so a single flipped bit changes it."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_weights(model: torch.nn.Module, path: str | Path) -> None:
    save_model(model, str(path), metadata={"sha256": state_digest(model)})
    # safetensors (0.8) writes through a temporary file, which is created with mode 0600, and renames
    # it into place (safetensors issue #782): the weights would be the one file of a model folder
    # that nobody else can read. Give them the mode open() gives every other file.
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it, so set it straight back
    os.umask(mask)
    return mask


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Fill ``model`` from a safetensors file, refusing one that does not match it exactly."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            expected = (f.metadata() or {}).get("sha256")
        load_model(model, str(path), strict=True)
    except FileNotFoundError:
        raise WeightsError(f"{path.name} is missing") from None
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path.name} is not a readable safetensors file (truncated or corrupted?): {e}") from None
    except RuntimeError as e:  # missing/unexpected tensors or wrong shapes
        first_lines = " ".join(str(e).split())[:400]
        raise WeightsError(f"{path.name} does not match config.json: {first_lines}") from None
    if expected is None:
        raise WeightsError(f"{path.name} carries no checksum; it was not written by LyricGPT")
    if state_digest(model) != expected:
        raise WeightsError(f"{path.name} is corrupted: its tensors do not match their stored checksum")


class HubModule(torch.nn.Module, PyTorchModelHubMixin):
    """A module that ``save_pretrained`` writes as PyTorchModelHubMixin does, plus the checksum."""

    def _save_pretrained(self, save_directory: Path) -> None:
        save_weights(self, Path(save_directory) / WEIGHTS_NAME)
