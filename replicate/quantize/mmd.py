"""MMD VQ, the later revision of Wasserstein VQ (Fang et al., "Distributional Matching for Vector Quantization:
A Unified Theoretical and Empirical Framework", revision of arXiv 2506.15078; official code at HEAD,
code/VQGAN/models/mmd_quantizer.py): vanilla VQ losses plus gamma * MMD^2 between the current batch's detached
features Z and the codebook E, so that only the codebook is pulled onto the feature distribution:

    MMD^2 = mean_{z,z'} k(z, z') - 2 mean_{z,e} k(z, e) + mean_{e,e'} k(e, e'),

the biased V-statistic MMD_b^2 of Gretton et al. 2012 ("A Kernel Two-Sample Test", JMLR 13): means over all
pairs, the diagonal included, as the official code. D(x, y) = ||x - y||^2 / sqrt(d), k = exp(-D / h) +
exp(-D / (2h)), bandwidth h = (sum of D over all pairs of the joint set Z u E, detached) / (N^2 - N),
N = |Z| + |E|; computed exactly as 2N sum_i ||x_i - mean||^2 / sqrt(d) / (N^2 - N), in O(N d).

Cost is quadratic: the kernel blocks hold |Z|^2 (no gradient), |Z| K and K^2 entries. Peak memory in float32
(fitted to the CPU's peak resident memory of forward + backward at |Z|, K = 4,096, 8,192; 8,192, 8,192; 2,048,
16,384: 0.66, 0.80, 2.24 GB, 2026-11-26): 4 B (|Z| K + K^2) for the two weight matrices kept for the backward
plus 4 B max(|Z|^2, |Z| K, K^2) for the block being summed. Extrapolated to 8,192 features (a VQ-VAE batch of
32 x 16 x 16): K = 16,384 2.7 GB; K = 65,536 37 GB; K = 100,000 83 GB
(needs max_codes).
`max_features` / `max_codes` bound it: each call keeps that many rows, uniformly without replacement, drawn from
the module's own torch.Generator re-seeded with `seed` + the count of training calls that subsampled (a buffer),
so runs, resumed runs and every data-parallel rank draw the same subsets; h always comes from all rows. Under
data parallelism each rank uses its own batch, as the official code (no gathering).
Numerics: distances and kernels in the features' dtype; each kernel row summed there (pairwise summation), the
rows and the bandwidth in float64; the loss returned in the features' dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from replicate.errors import ConfigError
from replicate.quantize.matching import MatchingConfig, MatchingVQ

MIN_BANDWIDTH = 1e-12  # h when every point coincides (the kernel is then 2 everywhere and MMD^2 = 0)


@dataclass(frozen=True)
class MMDConfig(MatchingConfig):
    beta: float = 1.0  # commitment weight; revision's MMD VAR runs (digest 3B: alpha 1, beta 1) = HEAD config.py
    alpha: float = 1.0  # codebook-loss weight; revision's MMD VAR runs and HEAD config.py default
    gamma: float = 0.2  # MMD^2 weight; revision's MMD VAR runs (HEAD config.py's default is 0.5)
    codebook_lr: float | None = 0.02  # our choice, following Wasserstein VQ's VQ-VAE (HEAD GAN code: 0.01 / 0.005)
    init: str = "normal"  # our choice, following Wasserstein VQ's VQ-VAE normal_(0, 0.01) (HEAD: U(-1/K, 1/K))
    init_scale: float = 0.01
    max_features: int | None = None  # subsample the batch's features above this many rows; None: all
    max_codes: int | None = None  # subsample the codebook above this many codes; None: all
    seed: int = 0  # of the subsampling generator

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("max_features", "max_codes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be an integer >= 1 or None, got {value!r}")


def mmd_bandwidth(features: Tensor, codes: Tensor) -> Tensor:
    """h = sum of D over all ordered pairs of the joint set / (N^2 - N), detached, float64."""
    joint = torch.cat([features.detach(), codes.detach()]).double()
    n, dim = joint.shape
    pair_sum = 2 * n * (joint - joint.mean(0)).square().sum() / math.sqrt(dim)  # sum_ij ||x_i - x_j||^2 / sqrt(d)
    return (pair_sum / (n * n - n)).clamp_min(MIN_BANDWIDTH)


class MeanKernel(torch.autograd.Function):
    """mean over all (a_i, b_j) of k = exp(-D / h) + exp(-D / (2h)), as u + u^2 with u = exp(-D / (2h)); float64.

    The gradient is written by hand, to `b` only (a: detached features, or `b` itself for the codes' own term):
    with c = 1 / (2 h sqrt(d)) and W = u (1 + 2u) = -dk/dD / c (kept from the forward, one n x K matrix),
    d mean / d b_j = -2c / (nK) (sum_i W_ij b_j - sum_i W_ij a_i); for a = b, twice that by symmetry. Autograd
    through the same ops kept four n x K intermediates and took 2.8 s for K = 8,192 codes and 8,192 features
    (2 cores, 2026-11-26), 4.7x the forward's 0.6 s; this backward, two passes over W, takes 0.14 s.
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, bandwidth: Tensor, same: bool) -> Tensor:
        scale = 0.5 / (math.sqrt(a.shape[1]) * bandwidth.to(a.dtype))
        distance = torch.addmm(b.square().sum(1), a, b.T, alpha=-2).add_(a.square().sum(1, keepdim=True))
        half = distance.mul_(-scale).exp_()  # in place: one matrix
        value = torch.addcmul(half, half, half).sum(1).double().sum() / (len(a) * len(b))
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(a, b, half.addcmul_(half, half, value=2), scale)  # W = u + 2u^2, in place
            ctx.same = same
        return value

    @staticmethod
    def backward(ctx, grad_value: Tensor):
        a, b, weight, scale = ctx.saved_tensors
        factor = (grad_value.to(b.dtype) * -2 * scale / (len(a) * len(b))) * (2 if ctx.same else 1)
        grad_b = (weight.sum(0).unsqueeze(1) * b - (a.T @ weight).T) * factor  # a^T W: 7x faster than W^T a
        return None, grad_b, None, None


def mean_kernel(a: Tensor, b: Tensor, bandwidth: Tensor) -> Tensor:
    """MeanKernel of (a, b); pass the same tensor twice for a set's kernel with itself (its gradient doubles)."""
    return MeanKernel.apply(a.detach() if a is not b else a, b, bandwidth.detach(), a is b)


def mmd_squared(features: Tensor, codes: Tensor, bandwidth: Tensor | None = None) -> Tensor:
    """Biased MMD^2 between detached features (n, d) and codes (K, d), gradient to the codes only."""
    features = features.detach()
    codes = codes.to(features.dtype)
    bandwidth = mmd_bandwidth(features, codes) if bandwidth is None else bandwidth
    with torch.no_grad():
        within_features = mean_kernel(features, features, bandwidth)
    cross = mean_kernel(features, codes, bandwidth)
    return (within_features - 2 * cross + mean_kernel(codes, codes, bandwidth)).to(features.dtype)


class MMDVQ(MatchingVQ):
    term = "mmd"

    def __init__(self, config: MMDConfig) -> None:
        super().__init__(config)
        self.add_generator()  # its draws count the training calls that subsampled

    def distance(self, features: Tensor) -> Tensor:
        """MMD^2 between the (detached) features and the codebook, each subsampled above its limit; h from all rows."""
        features, book = features.detach(), self.weight
        bandwidth = mmd_bandwidth(features, book)
        max_features, max_codes = self.config.max_features, self.config.max_codes
        if _exceeds(len(features), max_features) or _exceeds(len(book), max_codes):
            generator = self.reseed()
            features, book = _subsample(features, max_features, generator), _subsample(book, max_codes, generator)
        return mmd_squared(features, book, bandwidth)


def _subsample(rows: Tensor, limit: int | None, generator: torch.Generator) -> Tensor:
    if not _exceeds(len(rows), limit):
        return rows
    keep = torch.randperm(len(rows), generator=generator)[:limit]
    return rows.index_select(0, keep.to(rows.device))


def _exceeds(rows: int, limit: int | None) -> bool:
    return limit is not None and rows > limit
