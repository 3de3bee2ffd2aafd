"""Lloyd's algorithm (k-means) with the exact nearest-code search: the optimal-codebook check of Theorem 2
and the k-means codebook initialisation of Deferred Quantization (arXiv 2603.17052, Sec. 3.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from replicate.errors import ConfigError
from replicate.quantize.base import check_finite, nearest_code


@dataclass
class KMeansResult:
    codes: Tensor  # (K, d)
    quant_error: float  # mean squared distance of the features to their nearest code, after the last update
    iterations: int
    converged: bool  # the relative decrease of the error fell below the tolerance


@torch.no_grad()
def kmeans(
    features: Tensor,
    num_codes: int,
    *,
    iterations: int,
    tolerance: float = 1e-6,
    generator: torch.Generator | None = None,
) -> KMeansResult:
    """Lloyd's algorithm from `num_codes` distinct random features; an empty cluster keeps its code."""
    check_finite(features, "features")
    if not 1 <= num_codes <= len(features):
        raise ConfigError(f"k-means needs 1 <= K <= number of features, got K={num_codes}, N={len(features)}")
    start = torch.randperm(len(features), generator=generator)[:num_codes].to(features.device)
    codes = features[start].clone()
    previous = float("inf")
    for iteration in range(1, iterations + 1):
        indices = nearest_code(features, codes)
        error = float((features - codes[indices]).square().sum(1).mean())
        counts = torch.bincount(indices, minlength=num_codes).unsqueeze(1).to(features.dtype)
        sums = torch.zeros_like(codes).index_add_(0, indices, features)
        codes = torch.where(counts > 0, sums / counts.clamp_min(1), codes)
        if previous - error <= tolerance * error:
            return KMeansResult(codes, error, iteration, True)
        previous = error
    indices = nearest_code(features, codes)
    return KMeansResult(codes, float((features - codes[indices]).square().sum(1).mean()), iterations, False)
