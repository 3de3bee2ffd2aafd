"""Shrinkage diagnostics of Deferred Quantization (Zhao et al., arXiv 2603.17052; V2 Sec. 4.2 and 6) for data
drawn from a mixture of well-separated components with known means.

mode_coverage: components whose points are mostly (>= half) reconstructed nearer to their own mean than to
    any other; a collapsed model covers few.
mode_entropy:  H = -sum_k p_k log p_k over components, p_k = share of the codes whose decoded vector lies
    nearest to component k (the paper's |T_k| / S); log(number of components) when codes spread evenly.
per_mode_error: Q_k = mean squared reconstruction error of the points of component k (the paper's Q per mode).
effective_rank: exp of the entropy of the normalised eigenvalues of the latent covariance (Roy & Vetterli 2007).
The codebook's spread (average pairwise Euclidean and cosine distance), utilization and perplexity are in
metrics/codebook.py.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from replicate.metrics.codebook import perplexity
from replicate.quantize.base import nearest_code
from replicate.quantize.gaussian import gaussian_fit


def mode_coverage(reconstructions: Tensor, labels: Tensor, means: Tensor, *, share: float = 0.5) -> int:
    """Number of components k for which at least `share` of the points labelled k are reconstructed nearest
    to mean k."""
    nearest = nearest_code(reconstructions.float(), means.float())
    covered = 0
    for k in range(len(means)):
        own = labels == k
        covered += bool(own.any() and (nearest[own] == k).double().mean() >= share)
    return covered


def mode_entropy(decoded_codes: Tensor, means: Tensor) -> float:
    """Entropy (natural log) of the share of codes per component, codes assigned to the nearest mean."""
    counts = torch.bincount(nearest_code(decoded_codes.float(), means.float()), minlength=len(means))
    return math.log(perplexity(counts))


def per_mode_error(data: Tensor, reconstructions: Tensor, labels: Tensor, num_modes: int) -> Tensor:
    """Q_k: mean squared reconstruction error (summed over dimensions) of the points of each component."""
    errors = (data - reconstructions).double().square().sum(1)
    totals = torch.zeros(num_modes, dtype=torch.float64).index_add_(0, labels, errors)
    counts = torch.bincount(labels, minlength=num_modes).double()
    return totals / counts.clamp_min(1)


def effective_rank(latents: Tensor) -> float:
    """exp(entropy of the normalised eigenvalues of the covariance): 1 for a line, d for an isotropic cloud."""
    eigenvalues = torch.linalg.eigvalsh(gaussian_fit(latents.double(), unbiased=True)[1]).clamp_min(0)
    return 0.0 if eigenvalues.sum() == 0 else perplexity(eigenvalues)  # perplexity normalises them
