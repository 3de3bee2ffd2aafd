"""Shared figure mechanics: a headless backend, one style for every figure, reproducible PNG writes."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from replicate.results import write_atomic

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
    "fsq": "FSQ",
}
METHOD_COLOURS = {
    "vanilla": "tab:brown",
    "ema": "tab:purple",
    "online": "tab:orange",
    "linear": "tab:red",
    "wasserstein": "tab:blue",
    "mmd": "tab:green",
    "sliced_wasserstein": "tab:olive",
    "fsq": "tab:gray",
}

STYLE = {
    "font.family": "serif",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
# 150 dpi and a 256-colour palette keep every figure of the project under ~300 KB (the largest, a scatter of 100,000
# points, ~250 KB; 200 dpi in full colour took up to 1.7 MB): the repository keeps every version of every figure.
DPI = 150


def pyplot():
    """pyplot on the headless backend, imported with the first figure: listing and reporting draw none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(rows: int, columns: int, *, width: float, height: float, **kwargs):
    """A figure with a grid of axes in the project's style (applied to every figure this process draws)."""
    plt = pyplot()
    plt.rcParams.update(STYLE)
    return plt.subplots(rows, columns, figsize=(width, height), squeeze=False, **kwargs)


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes, the same for the same figure: no metadata (matplotlib writes its version), a fixed
    resolution, and colours reduced to a 256-colour palette by a deterministic octree."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
    buffer = io.BytesIO()
    palette.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def save(fig, path: Path) -> Path:
    """Write the figure as PNG (atomically) and close it; a file that already holds the same bytes is left
    untouched, so an unchanged figure is never rewritten, nor re-committed."""
    try:
        data = png_bytes(fig)
    finally:
        pyplot().close(fig)
    if not (path.exists() and path.read_bytes() == data):
        write_atomic(path, data)
    return path
