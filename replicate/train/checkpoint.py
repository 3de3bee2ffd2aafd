"""Checkpoints of a training run: written atomically (temporary file + rename), so a run killed at any moment
leaves either the previous checkpoint or the new one, never half of one."""

from __future__ import annotations

import dataclasses
import os
import pickle
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import torch

from replicate import distributed
from replicate.errors import ReplicateError
from replicate.results import config_id, git_revision


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


def load_part(part: Any, state: dict, name: str, folder: Path) -> None:
    """Load the checkpoint's entry `name` into `part` (a model, an optimizer, a discriminator: anything with
    load_state_dict). A checkpoint that does not fit, because the code changed under the same configuration, is
    a one-line error naming the run folder and the first difference; the checkpoint is left as it is."""

    def refuse(difference: str) -> ReplicateError:
        return ReplicateError(
            f"the checkpoint in {folder} does not fit this code ({difference}): rerun with --force, or delete the "
            "folder, to train it afresh"
        )

    if name not in state:
        raise refuse(f"it has no {name!r} entry")
    saved = state[name]
    if isinstance(part, torch.nn.Module):
        current = part.state_dict()
        for key in sorted(current.keys() | saved.keys()):
            if key not in saved:
                raise refuse(f"{name}: {key} is not in the checkpoint")
            if key not in current:
                raise refuse(f"{name}: the checkpoint has {key}, the model does not")
            if current[key].shape != saved[key].shape:
                shapes = f"{tuple(saved[key].shape)} saved, {tuple(current[key].shape)} now"
                raise refuse(f"{name}: {key} is {shapes}")
    try:
        part.load_state_dict(saved)
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        raise refuse(f"{name}: {str(error).strip().splitlines()[0]}") from None


@dataclasses.dataclass
class RunState:
    """Where a training run (tokenizer or generator) stands: the next (epoch, step in epoch), the history rows so
    far, this epoch's sums of the step values (loss, accuracy, ...) and its step count, the code revisions that
    trained it (more than one when a run was resumed after a change of the code) and its wall-clock seconds summed
    over every resumed segment. Saved with the run's parts (model, optimizers, discriminator: anything with
    state_dict) in one atomic checkpoint, with the configuration's id (train/loop.py)."""

    epoch: int = 0
    step: int = 0
    history: list = dataclasses.field(default_factory=list)
    sums: dict = dataclasses.field(default_factory=dict)
    steps: int = 0
    revisions: list = dataclasses.field(default_factory=lambda: [git_revision()])
    seconds: float = 0.0  # training and evaluation so far; checkpoints older than this field count from their resume

    def __post_init__(self) -> None:
        self._since = time.monotonic()  # not a field: not saved

    def tick(self) -> float:
        """Add the time since the last tick (or since this state was made or restored) to `seconds`."""
        now = time.monotonic()
        self.seconds, self._since = self.seconds + now - self._since, now
        return self.seconds

    def add(self, values: dict[str, float]) -> None:
        """One step done: its values added to the epoch's sums."""
        self.step, self.steps = self.step + 1, self.steps + 1
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + value

    def next_epoch(self) -> RunState:
        """The state at the start of the next epoch: sums reset, history, revisions and seconds kept."""
        self.tick()
        return dataclasses.replace(self, epoch=self.epoch + 1, step=0, sums={}, steps=0)

    def note_revision(self) -> None:
        """Training goes on under the current code: name it if it is not the last that trained the run."""
        if self.revisions[-1] != git_revision():
            self.revisions.append(git_revision())

    def save(self, path: Path, config, parts: dict[str, Any], context: distributed.Context) -> None:
        if context.is_main:
            self.tick()
            state = {"config_id": config_id(config)} | {name: part.state_dict() for name, part in parts.items()}
            save_checkpoint(path, {**state, "run": dataclasses.asdict(self)})
        distributed.barrier()

    @classmethod
    def restore(cls, path: Path, config, parts: dict[str, Any]) -> RunState:
        """The saved position, with every part loaded; a fresh state when there is no checkpoint."""
        state = load_checkpoint(path)
        if state is None:
            return cls()
        if "run" not in state or "sums" not in state["run"]:
            raise ReplicateError(f"{path} was written by an older version of this code; delete {path.parent}")
        if state["config_id"] != config_id(config):
            raise ReplicateError(f"{path.parent} holds a run with a different configuration; use another run folder")
        for name, part in parts.items():
            load_part(part, state, name, path.parent)
        return cls(**state["run"])
