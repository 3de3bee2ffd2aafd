"""Images as table cells: a picture written as base64 PNG text by a run (reconstructions, samples), read back as
pixels by a figure. Lossless, so a figure redrawn from the table shows exactly the run's pixels."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from torch import Tensor


def png_text(image: Tensor) -> str:
    """An image (3, H, W) in [-1, 1] as base64 PNG text (a table cell), rounded to 8 bits."""
    pixels = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def png_image(text: str) -> np.ndarray:
    """The RGB pixels (H, W, 3), uint8, of a cell written by png_text."""
    with Image.open(io.BytesIO(base64.b64decode(text))) as image:
        return np.asarray(image.convert("RGB"))
