"""Checkpoints of a training run: written atomically (temporary file + rename), so a run killed at any moment
leaves either the previous checkpoint or the new one, never half of one."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from replicate.errors import ReplicateError


def save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(state, temporary)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict | None:
    """The saved state, None when there is no checkpoint; an unreadable file is a one-line error."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as error:
        raise ReplicateError(
            f"checkpoint {path} is unreadable ({type(error).__name__}); delete it to start the "
            "run over, or restore it from a backup"
        ) from None
