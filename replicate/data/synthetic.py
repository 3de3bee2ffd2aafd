"""Synthetic feature and code distributions of the Wasserstein VQ simulations (App. F-H)."""

from __future__ import annotations

import torch
from torch import Tensor

from replicate.errors import ConfigError

PAPER_DISTRIBUTIONS = ("gaussian", "uniform")  # Wasserstein VQ's simulations (Table 4, Figs. 10-12)
# Beyond the papers (open question 1, beyond_nongaussian): laws where the Gaussian fit is wrong. Our choices: two
# unit-variance Gaussian modes at center -+ BIMODAL_OFFSET on every axis (4 sqrt(d) apart: well separated), and
# i.i.d. Student-t coordinates with STUDENT_DOF degrees of freedom (heavy tails: finite variance, infinite kurtosis).
# The two-peak benchmark of the revised Wasserstein VQ paper (experiments/wvq_twopeak.py): 1/2 N(zeta 1, I) +
# 1/2 N(-zeta 1, I), zeta = center
DISTRIBUTIONS = (*PAPER_DISTRIBUTIONS, "bimodal", "student_t", "two_peak")
BIMODAL_OFFSET = 2.0
STUDENT_DOF = 3  # an integer: chi2 as a sum of squared normals


def sample(
    distribution: str,
    n: int,
    d: int,
    *,
    center: float = 0.0,
    spread: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """n vectors in R^d: "gaussian" = N(center 1, spread^2 I); "uniform" = U(center - spread, center + spread)^d;
    "bimodal" = an equal mixture of N((center -+ BIMODAL_OFFSET) 1, spread^2 I); "student_t" = center + spread t,
    t with i.i.d. Student-t coordinates (STUDENT_DOF degrees of freedom); "two_peak" = an equal mixture of
    N(center 1, spread^2 I) and N(-center 1, spread^2 I)."""
    if n < 1 or d < 1:
        raise ConfigError(f"need n >= 1 and d >= 1, got n={n}, d={d}")
    if distribution == "gaussian":
        return center + spread * torch.randn(n, d, generator=generator)
    if distribution == "uniform":
        return center + spread * (2 * torch.rand(n, d, generator=generator) - 1)
    if distribution == "bimodal":
        signs = 2 * torch.randint(0, 2, (n, 1), generator=generator) - 1
        return center + BIMODAL_OFFSET * signs + spread * torch.randn(n, d, generator=generator)
    if distribution == "two_peak":
        signs = 2 * torch.randint(0, 2, (n, 1), generator=generator) - 1
        return center * signs + spread * torch.randn(n, d, generator=generator)
    if distribution == "student_t":  # t = z / sqrt(chi2_nu / nu)
        z = torch.randn(n, d, generator=generator)
        chi2 = torch.randn(n, d, STUDENT_DOF, generator=generator).square().sum(-1)
        return center + spread * z / torch.sqrt(chi2 / STUDENT_DOF)
    raise ConfigError(f"unknown distribution {distribution!r}; valid: {', '.join(DISTRIBUTIONS)}")


def sample_disk(
    n: int, *, center: tuple[float, float] = (0.0, 0.0), radius: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """n points uniform on a 2-D disk: angle U(0, 2 pi), distance radius * sqrt(U(0, 1)) (Fig. 3's sampler)."""
    if n < 1 or not radius > 0:
        raise ConfigError(f"need n >= 1 and radius > 0, got n={n}, radius={radius}")
    angle = 2 * torch.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    distance = radius * torch.sqrt(torch.rand(n, generator=generator, dtype=torch.float64))
    points = torch.stack([distance * torch.cos(angle), distance * torch.sin(angle)], 1)
    return (points + torch.tensor(center, dtype=torch.float64)).float()


def gaussian_mixture(
    dim: int,
    *,
    components: int = 10,
    per_component: int = 1000,
    std: float = 0.5,
    box: float = 5.0,
    min_separation: float = 2.5,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(points, labels, means) of an equally weighted mixture of isotropic Gaussians with a common std and
    distinct means, drawn uniformly in [-box, box]^dim one at a time, a draw kept only if it is at least
    min_separation from the means kept so far."""
    if dim < 1 or components < 1 or per_component < 1 or not std > 0:
        raise ConfigError(
            f"need dim, components, per_component >= 1 and std > 0; got {dim}, {components}, {per_component}, {std}"
        )
    means = torch.empty(0, dim)
    for _ in range(1000 * components):  # dart throwing: keep a candidate only if it is far from the others
        candidate = box * (2 * torch.rand(1, dim, generator=generator) - 1)
        if len(means) == 0 or torch.cdist(candidate, means).min() >= min_separation:
            means = torch.cat([means, candidate])
            if len(means) == components:
                break
    else:
        raise ConfigError(f"cannot place {components} means {min_separation} apart in [-{box}, {box}]^{dim}")
    labels = torch.arange(components).repeat_interleave(per_component)
    points = means[labels] + std * torch.randn(len(labels), dim, generator=generator)
    return points, labels, means
