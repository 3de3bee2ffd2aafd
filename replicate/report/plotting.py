"""Shared figure mechanics: a headless backend, one style for every figure, atomic PNG writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# One name and one colour per quantizer in every figure and claim. The colours of the five paper methods are
# Wasserstein VQ's Fig. 12 (App. H); MMD and sliced W2 (issue 14, in neither paper) take two unused ones.
METHOD_NAMES = {
    "vanilla": "Vanilla VQ",
    "ema": "EMA VQ",
    "online": "Online VQ",
    "linear": "Linear VQ",
    "wasserstein": "Wasserstein VQ",
    "mmd": "MMD VQ",
    "sliced_wasserstein": "Sliced-W2 VQ",
}
METHOD_COLOURS = {
    "vanilla": "tab:brown",
    "ema": "tab:purple",
    "online": "tab:orange",
    "linear": "tab:red",
    "wasserstein": "tab:blue",
    "mmd": "tab:green",
    "sliced_wasserstein": "tab:olive",
}

STYLE = {
    "font.family": "serif",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 200,
}


def figure(rows: int, columns: int, *, width: float, height: float, **kwargs):
    """A figure with a grid of axes in the project's style (applied to every figure this process draws)."""
    plt.rcParams.update(STYLE)
    return plt.subplots(rows, columns, figsize=(width, height), squeeze=False, **kwargs)


def save(fig, path: Path) -> Path:
    """Write the figure as PNG through a temporary file and an atomic rename, then close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(handle)
    try:
        fig.savefig(temporary, bbox_inches="tight")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
        plt.close(fig)
    return path
