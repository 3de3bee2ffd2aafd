"""Images as table cells (report/png.py): lossless at 8 bits, a figure drawn from a table shows the run's pixels."""

import numpy as np
import torch

from replicate.report.png import png_image, png_text


def test_png_cell_reads_back_the_images_8_bit_pixels_exactly():
    image = torch.rand(3, 5, 7) * 2.4 - 1.2  # beyond [-1, 1] too: clamped
    expected = ((image.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy().astype(np.uint8)
    pixels = png_image(png_text(image))
    assert pixels.dtype == np.uint8 and pixels.shape == (5, 7, 3)
    assert np.array_equal(pixels, expected)
    assert png_image(png_text(torch.tensor([-1.0, 0.0, 1.0]).reshape(3, 1, 1))).tolist() == [[[0, 128, 255]]]
