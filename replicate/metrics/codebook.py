"""Codebook metrics over a whole evaluation set (Wasserstein VQ paper, Sec. 2.2, Criteria 1-3) and the
codebook-spread diagnostics of the Deferred Quantization paper (Sec. 6).

E (quant_error): mean over feature vectors of the squared L2 distance to the assigned code.
U (utilization): fraction of the K codes assigned at least once (normalised by K, as the official code does).
C (perplexity):  exp of the entropy (natural log) of the code-usage distribution; at most K.
Usage is accumulated as one histogram over the whole set, never averaged over batches.
"""

from __future__ import annotations

import torch
from torch import Tensor

from replicate.quantize.base import check_finite, nearest_code


def utilization(counts: Tensor) -> float:
    """Fraction of codes with a non-zero count."""
    return float((counts > 0).double().mean())


def perplexity(counts: Tensor) -> float:
    """exp(-sum_k p_k log p_k) with p_k = counts_k / sum(counts); unused codes contribute 0."""
    probabilities = counts.double() / counts.sum()
    return float(torch.exp(-torch.special.xlogy(probabilities, probabilities).sum()))


class CodebookUsage:
    """Streamed (E, U, C): add batches of (features, assigned codes, indices), read the totals at the end."""

    def __init__(self, num_codes: int, device: torch.device | str = "cpu") -> None:
        self.counts = torch.zeros(num_codes, dtype=torch.long, device=device)
        self.squared_error = torch.zeros((), dtype=torch.float64, device=device)
        self.vectors = 0

    @torch.no_grad()
    def add(self, features: Tensor, codes: Tensor, indices: Tensor) -> None:
        features, codes = features.reshape(-1, features.shape[-1]), codes.reshape(-1, codes.shape[-1])
        self.squared_error += (features.double() - codes.double()).square().sum()
        self.counts += torch.bincount(indices.reshape(-1), minlength=len(self.counts)).to(self.counts.device)
        self.vectors += features.shape[0]

    def result(self) -> dict[str, float]:
        return {
            "quant_error": float(self.squared_error) / max(self.vectors, 1),
            "utilization": utilization(self.counts),
            "perplexity": perplexity(self.counts),
        }


@torch.no_grad()
def evaluate_codebook(features: Tensor, codebook: Tensor, *, batch_size: int = 262144) -> dict[str, float]:
    """E, U and C of assigning every feature vector (N, d) to its nearest code (K, d)."""
    usage = CodebookUsage(codebook.shape[0], device=codebook.device)
    for start in range(0, features.shape[0], batch_size):
        batch = features[start : start + batch_size]
        indices = nearest_code(batch, codebook)
        usage.add(batch, codebook[indices], indices)
    return usage.result()


@torch.no_grad()
def codebook_distances(codebook: Tensor, *, tile: tuple[int, int] = (256, 4096)) -> dict[str, float]:
    """Average pairwise Euclidean and cosine distance over all pairs i != j of code vectors (exact).

    Euclidean: float64, over tiles of (rows x columns) on or above the diagonal, so each pair is counted once
    and memory stays at one tile (8 MB by default); the codebook is centred first, which leaves distances
    unchanged and keeps ||a||^2 + ||b||^2 - 2ab free of cancellation. K = 100,000: about 7 s on 2 CPU cores.
    Cosine: 1 - mean_{i != j} <u_i, u_j> with u = c / ||c|| (uncentred), in closed form from sum_i u_i; a zero
    code has cosine similarity 0 with every other code.
    """
    check_finite(codebook, "codes")
    codes = codebook.detach().double()
    num_codes = codes.shape[0]
    if num_codes < 2:
        return {"code_dist_euclid": 0.0, "code_dist_cosine": 0.0}
    centred = codes - codes.mean(0)
    squared_norms = centred.square().sum(1)
    rows, columns = tile
    total = torch.zeros((), dtype=torch.float64, device=codes.device)
    for row in range(0, num_codes, rows):
        block, block_norms = centred[row : row + rows], squared_norms[row : row + rows, None]
        for column in range(row, num_codes, columns):
            distances = torch.addmm(
                squared_norms[column : column + columns],
                block,
                centred[column : column + columns].T,
                alpha=-2,
            )
            distances = distances.add_(block_norms).clamp_min_(0).sqrt_()
            if column == row:  # the tile holding the diagonal: keep column j > row i only
                distances = distances.triu(diagonal=1)
            total += distances.sum()
    unit = codes / codes.norm(dim=1, keepdim=True).clamp_min(1e-12)
    summed = unit.sum(0)
    off_diagonal_similarity = (summed.dot(summed) - unit.square().sum()) / (num_codes * (num_codes - 1))
    pairs = num_codes * (num_codes - 1) / 2
    return {"code_dist_euclid": float(total / pairs), "code_dist_cosine": float(1 - off_diagonal_similarity)}


def used_code_distances(codebook: Tensor, counts: Tensor) -> dict[str, float]:
    """codebook_distances over the codes that were used (count > 0), as code_dist_euclid_used and
    code_dist_cosine_used: beside the spread over all codes, it tells shrinkage of the used codebook apart from
    unused codes drifting (e.g. EMA codes whose counts decay toward the origin). NaN with fewer than 2 used."""
    used = codebook[counts.to(codebook.device) > 0]
    if len(used) < 2:
        return {"code_dist_euclid_used": float("nan"), "code_dist_cosine_used": float("nan")}
    return {f"{name}_used": value for name, value in codebook_distances(used).items()}


# The columns of codebook_metrics, in their order in a result row: NaN in a row measured before quantization starts.
CODEBOOK_COLUMNS = (
    "quant_error",
    "utilization",
    "perplexity",
    "code_dist_euclid",
    "code_dist_cosine",
    "code_dist_euclid_used",
    "code_dist_cosine_used",
)


def codebook_metrics(codebook: Tensor, usage: CodebookUsage) -> dict[str, float]:
    """The codebook columns of a result row (CODEBOOK_COLUMNS): E, U and C of `usage`, and the spread of all codes
    and of the used ones."""
    return usage.result() | codebook_distances(codebook) | used_code_distances(codebook, usage.counts)
