"""Evaluation of a tokenizer over a whole evaluation set (official code: collect_eval_info + metric.py):
PSNR (Y channel), SSIM, reconstruction MSE in [-1, 1], the codebook triple (E, U, C) from one histogram over
all tokens, W2 between Gaussian fits of all latents and the codebook, the codebook's pairwise distances, and
LPIPS / rFID where their pretrained weights are on this machine (paths from $VQ_LPIPS_WEIGHTS and
$VQ_INCEPTION_WEIGHTS, else the standard torch hub cache); otherwise those columns are NaN and `lpips_note` /
`rfid_note` hold the reason (the notes are "" when the metric was computed).
"""

from __future__ import annotations

import torch

from replicate.metrics.codebook import CODEBOOK_COLUMNS, CodebookUsage, codebook_metrics
from replicate.metrics.image import (
    PROTOCOLS,
    CleanFIDAccumulator,
    ImageMetrics,
    RFIDAccumulator,
    load_inception,
    load_lpips,
    lpips_distance,
    official_rfid_unavailable,
)
from replicate.models.vqvae import VQVAE
from replicate.quantize.gaussian import StreamedGaussianFit, gaussian_fit, gaussian_w2


@torch.no_grad()
def evaluate_tokenizer(
    model: VQVAE,
    data,
    *,
    batch_size: int,
    device: torch.device,
    quantized: bool = True,
    protocol: str = "project",
    num_workers: int = 0,
) -> dict:
    """One row of evaluation metrics; codebook columns are NaN when the model is not yet quantizing. protocol:
    how LPIPS and rFID are computed (metrics.image.PROTOCOLS), named in the lpips_protocol / rfid_protocol columns."""
    was_training = model.training
    model.eval()
    lpips_model, lpips_source = load_lpips()
    if protocol == "official":
        rfid_source = official_rfid_unavailable()
        inception = None
    else:
        inception, rfid_source = load_inception()
    images_metrics = ImageMetrics()
    usage = CodebookUsage(model.quantizer.num_codes, device=device)
    latent_fit = StreamedGaussianFit(unbiased=True)
    if protocol == "official":
        rfid = CleanFIDAccumulator() if not rfid_source else None
    else:
        rfid = RFIDAccumulator(inception) if inception is not None else None
    lpips_sum, count = 0.0, 0
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda"
    )
    for images, _ in loader:
        images = images.to(device, non_blocking=True)
        out = model(images, quantize=quantized)
        images_metrics.add(out.reconstructions, images)
        flat = out.latents.reshape(-1, out.latents.shape[-1])
        latent_fit.add(flat)
        if out.quantizer is not None:
            usage.add(flat, out.quantizer.codes.reshape(flat.shape), out.quantizer.indices)
        if lpips_model is not None:
            distances = lpips_distance(lpips_model, out.reconstructions, images, protocol=protocol)
            lpips_sum += float(distances.double().sum())
        if rfid is not None:
            rfid.add(out.reconstructions, images)
        count += len(images)
    row = images_metrics.result()
    nan = float("nan")
    row["lpips"] = lpips_sum / count if lpips_model is not None else nan
    row["rfid"] = rfid.result() if rfid is not None else nan
    if quantized:
        codebook = model.quantizer.codebook().detach()
        row |= codebook_metrics(codebook, usage)
        code_fit = gaussian_fit(codebook.double(), unbiased=True)
        row["w2_distance"] = float(gaussian_w2(*latent_fit.result(), *code_fit, eps_eig=0, eps_sqrt=0))
    else:
        row |= dict.fromkeys((*CODEBOOK_COLUMNS, "w2_distance"), nan)
    row["lpips_note"] = "" if lpips_model is not None else lpips_source  # the reason when not computed
    row["rfid_note"] = "" if rfid is not None else rfid_source
    row["lpips_protocol"], row["rfid_protocol"] = PROTOCOLS[protocol]
    model.train(was_training)
    return row
