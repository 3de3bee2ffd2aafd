"""Evaluation of a tokenizer over a whole evaluation set (official code: collect_eval_info + metric.py):
PSNR (Y channel), SSIM, reconstruction MSE in [-1, 1], the codebook triple (E, U, C) from one histogram over
all tokens, W2 between Gaussian fits of all latents and the codebook, the codebook's pairwise distances, and
LPIPS / rFID where their pretrained weights are on this machine (paths from $VQ_LPIPS_WEIGHTS and
$VQ_INCEPTION_WEIGHTS, else the standard torch hub cache); otherwise those columns hold the reason.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from replicate.metrics.codebook import CodebookUsage, codebook_distances
from replicate.metrics.image import ImageMetrics, RFIDAccumulator, load_inception, load_lpips, lpips_distance
from replicate.models.vqvae import VQVAE
from replicate.quantize.gaussian import gaussian_fit, gaussian_w2


class GaussianFit:
    """Streamed mean and unbiased covariance of (n, d) batches, in float64."""

    def __init__(self, dim: int, device: torch.device) -> None:
        self.count, self.total = 0, torch.zeros(dim, dtype=torch.float64, device=device)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    def add(self, rows: Tensor) -> None:
        rows = rows.double()
        self.count += len(rows)
        self.total += rows.sum(0)
        self.outer += rows.T @ rows

    def result(self) -> tuple[Tensor, Tensor]:
        mean = self.total / self.count
        return mean, (self.outer - self.count * torch.outer(mean, mean)) / max(self.count - 1, 1)


@torch.no_grad()
def evaluate_tokenizer(model: VQVAE, data, *, batch_size: int, device: torch.device, quantized: bool = True) -> dict:
    """One row of evaluation metrics; codebook columns are NaN when the model is not yet quantizing."""
    was_training = model.training
    model.eval()
    lpips_model, lpips_reason = load_lpips(os.environ.get("VQ_LPIPS_WEIGHTS"))
    inception, rfid_reason = load_inception(os.environ.get("VQ_INCEPTION_WEIGHTS"))
    images_metrics = ImageMetrics()
    usage = CodebookUsage(model.quantizer.num_codes, device=device)
    latent_fit = GaussianFit(model.config.codebook_dim, device)
    rfid = RFIDAccumulator(inception) if inception is not None else None
    lpips_sum, count = 0.0, 0
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    for images, _ in loader:
        images = images.to(device)
        reconstructions, latents, out = model(images, quantize=quantized)
        images_metrics.add(reconstructions, images)
        flat = latents.reshape(-1, latents.shape[-1])
        latent_fit.add(flat)
        if out is not None:
            usage.add(flat, out.codes.reshape(flat.shape), out.indices)
        if lpips_model is not None:
            lpips_sum += float(lpips_distance(lpips_model, reconstructions, images).double().sum())
        if rfid is not None:
            rfid.add(reconstructions, images)
        count += len(images)
    row = images_metrics.result()
    row["lpips"] = lpips_sum / count if lpips_model is not None else lpips_reason
    row["rfid"] = rfid.result() if rfid is not None else rfid_reason
    if quantized:
        codebook = model.quantizer.codebook().detach()
        row |= usage.result() | codebook_distances(codebook)
        code_fit = gaussian_fit(codebook.double(), unbiased=True)
        row["w2_distance"] = float(gaussian_w2(*latent_fit.result(), *code_fit, eps_eig=0, eps_sqrt=0))
    else:
        nan = float("nan")
        row |= dict.fromkeys(
            ("quant_error", "utilization", "perplexity", "code_dist_euclid", "code_dist_cosine", "w2_distance"), nan
        )
    model.train(was_training)
    return row
