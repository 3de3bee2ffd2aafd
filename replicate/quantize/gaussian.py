"""Closed-form quadratic Wasserstein distance between Gaussian fits (Wasserstein VQ, arXiv 2506.15078, Lemma 3;
Olkin & Pukelsheim 1982):

    W2(N(m1, S1), N(m2, S2)) = sqrt(||m1 - m2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)).

Square roots by symmetric eigendecomposition, computed in float64 and clamped, so rank-deficient covariances
(K < d), tiny variances and exact zeros give finite values and finite gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_fit(x: Tensor, *, unbiased: bool) -> tuple[Tensor, Tensor]:
    """Mean (d,) and covariance (d, d) of the rows of x; divisor n - 1 if unbiased else n (at least 1)."""
    mean = x.mean(0)
    centred = x - mean
    divisor = max(x.shape[0] - int(unbiased), 1)
    return mean, centred.T @ centred / divisor


class StreamedGaussianFit:
    """gaussian_fit of all rows added in (n, d) batches, from float64 count, sum and sum of outer products."""

    def __init__(self, *, unbiased: bool) -> None:
        self.unbiased = unbiased
        self.count, self.total, self.outer = 0, 0.0, 0.0  # the sums become tensors on the rows' device

    def add(self, rows: Tensor) -> None:
        rows = rows.double()
        self.count += len(rows)
        self.total = self.total + rows.sum(0)
        self.outer = self.outer + rows.T @ rows

    def result(self) -> tuple[Tensor, Tensor]:
        """Mean (d,) and covariance (d, d); the divisor as gaussian_fit's."""
        if self.count == 0:
            raise ValueError("a Gaussian fit of no rows")
        mean = self.total / self.count
        divisor = max(self.count - int(self.unbiased), 1)
        return mean, (self.outer - self.count * torch.outer(mean, mean)) / divisor


def sqrtm_psd(matrix: Tensor, eps: float = 0.0) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix: Q diag(sqrt(relu(l) + eps)) Q^T."""
    eigenvalues, eigenvectors = torch.linalg.eigh(_symmetric(matrix))
    roots = torch.sqrt(eigenvalues.clamp_min(0) + eps)
    return (eigenvectors * roots) @ eigenvectors.T


def gaussian_w2(
    mean_a: Tensor,
    cov_a: Tensor,
    mean_b: Tensor,
    cov_b: Tensor,
    *,
    eps_eig: float = 1e-8,
    eps_sqrt: float = 1e-10,
) -> Tensor:
    """W2 between N(mean_a, cov_a) and N(mean_b, cov_b) (the distance, not its square).

    The first Gaussian is the fixed reference (the features): its statistics are detached, so gradients flow
    only to (mean_b, cov_b), the codebook, as in the paper and all official code. eps_eig is added under every
    eigenvalue square root and eps_sqrt under the outer one (official code: 1e-8 and 1e-10); pass 0 for an exact
    metric value.
    """
    dtype = mean_b.dtype
    mean_a, cov_a = mean_a.detach().double(), cov_a.detach().double()
    mean_b, cov_b = mean_b.double(), cov_b.double()
    root_a = sqrtm_psd(cov_a, eps_eig)
    # (A^1/2 B A^1/2) is symmetric PSD and has the eigenvalues of A B, so its trace root is tr((AB)^1/2).
    cross = torch.linalg.eigvalsh(_symmetric(root_a @ cov_b @ root_a))
    trace_root = torch.sqrt(cross.clamp_min(0) + eps_eig).sum()
    mean_part = (mean_a - mean_b).square().sum()
    cov_part = (torch.trace(cov_a) + torch.trace(cov_b) - 2 * trace_root).clamp_min(0)
    return torch.sqrt(mean_part + cov_part + eps_sqrt).to(dtype)


def _symmetric(matrix: Tensor) -> Tensor:
    return (matrix + matrix.T) / 2
