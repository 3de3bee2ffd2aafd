"""Result files: provenance of every row, configuration ids, atomic writes (a crash never leaves half a file)."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import gzip
import os
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
TABLES = ROOT / "tables"
FIGURES = ROOT / "figures"
PUBLISHED = ROOT / "data" / "published"


@functools.cache
def git_revision() -> str:
    """Short commit hash of the checkout, with "-dirty" when tracked files other than the generated outputs
    (tables/, figures/) have uncommitted changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!tables", ":!figures"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def provenance(device: torch.device) -> dict[str, str]:
    """Where and with what a result was produced; stored beside every result row."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return {
        "git_rev": git_revision(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "device": name,
    }


def config_id(config) -> str:
    """A stable text id of a configuration dataclass: its fields as key=value, in declaration order."""
    return ",".join(f"{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config))


def write_atomic(path: Path, text: str) -> None:
    """Write text to path through a temporary file in the same folder and an atomic rename; gzip-compressed
    (reproducibly: no timestamp) where the name ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; results are shared files
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Atomic CSV; floats with 10 significant digits (far beyond any metric's precision, and diffable)."""
    write_atomic(path, frame.to_csv(index=False, float_format="%.10g"))


def read_csv(path: Path) -> pd.DataFrame | None:
    """A result table; the revision column stays text (a hash such as 14e8245 would parse as a float)."""
    return pd.read_csv(path, dtype={"git_rev": str}) if path.exists() else None
