"""Diversity and proxy-fidelity statistics of generated images and of their features.

pixel_distance: Deferred Quantization's "Pixel Dist." (Zhao et al., arXiv 2603.17052, Tables 2-3), the average
    pairwise pixel-level distance between generated images. The paper states neither the norm, the pixel range nor
    the number of pairs; we take the mean L2 distance ||x_i - x_j||_2 over pairs i < j of RGB images in [0, 1] (all
    pixels and channels), which fits its magnitudes (70-81 at 128 px: 3 * 128 * 128 values). A second reading,
    reading="mad255": the per-pixel mean absolute difference on the 0-255 scale, mean_p 255 |x_i,p - x_j,p| (over
    pixels and channels), which reads the same magnitudes another way (70-81 of 255: ~0.3 per value in [0, 1]);
    one sample_pairs draws the pairs of both readings.
kernel_inception_distance: Binkowski et al. 2018, "Demystifying MMD GANs" (arXiv 1801.01401), KID: the unbiased
    MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets.
inception_score: Salimans et al. 2016, "Improved Techniques for Training GANs" (arXiv 1606.03498): exp(E_x KL(p(y|x)
    || p(y))), p(y) the mean of p(y|x) over the set; here in one split (all samples), on a given classifier's softmax.
vendi_score: Friedman and Dieng 2023, "The Vendi Score" (arXiv 2210.02410): exp of the Shannon entropy of the
    eigenvalues of K / N, here with the cosine-similarity kernel; between 1 (all alike) and N (all orthogonal).
precision_recall_density_coverage: Naeem et al. 2020 (arXiv 2002.09797), k-nearest-neighbour balls, via the prdc
    package (its compute_prdc).
proxy_fidelity: the Fréchet distance (replicate.metrics.image), PRDC and the Vendi score on the features of a proxy
    network trained inside the project (replicate.metrics.proxy), under "proxy_" names: they are comparable
    between the project's own runs only, never with a published FID, precision or recall; so is a KID or an Inception
    Score computed on the proxy's features or softmax (proxy_kid, proxy_is in train/evaluate_generator.py).
relative_to_ceiling: a statistic of generated images over the same statistic of the tokenizer's reconstructions
    (the most its decoder can give), so that diversity the tokenizer's blur removes is not charged to the generator.
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import NamedTuple

import torch
from torch import Tensor

from replicate.errors import ConfigError
from replicate.metrics.codebook import perplexity
from replicate.metrics.image import frechet_distance_of_features

NEAREST_K = 5  # Naeem et al. 2020: k = 5 (with 10,000 real and fake samples), their recommended setting
PIXEL_CHUNK = 128  # our choice: images (or pairs) per block; memory ~ 3 * chunk * 3HW * 8 bytes (150 MB at 128 px)
# torch-fidelity's and torchmetrics' KID defaults (100 subsets of 1,000, after Binkowski et al.'s code): a subset
# of 1,000 keeps the estimate's variance low at a cost of three 1,000 x 1,000 kernels; a set smaller than the subset
# size is used whole (every subset is then the whole set, and the average is the full-set estimate)
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


class PixelDistance(NamedTuple):
    mean: float  # mean of the reading (L2 distance, or mad255) over the pairs
    pairs: int  # how many pairs it averages


def sample_pairs(count: int, max_pairs: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(rows i, columns j), i < j: min(max_pairs, count (count - 1) / 2) distinct pairs of `count` items, drawn
    uniformly without repetition from a seeded CPU generator, in row-major order (all pairs when there are fewer)."""
    total = count * (count - 1) // 2
    if max_pairs >= total:
        flat = torch.arange(total)
    elif total <= 4 * max_pairs:  # dense: a permutation of every pair index costs at most 4 x the sample
        flat = torch.randperm(total, generator=generator)[:max_pairs]
    else:  # sparse: distinct values of uniform draws form a uniform subset given their number; keep max_pairs
        flat = torch.empty(0, dtype=torch.long)
        while len(flat) < max_pairs:
            flat = torch.cat([flat, torch.randint(total, (2 * max_pairs,), generator=generator)]).unique()
        flat = flat[torch.randperm(len(flat), generator=generator)[:max_pairs]]
    flat = flat.sort().values
    lengths = torch.arange(count - 1, -1, -1)  # row i holds the count - 1 - i pairs (i, j > i)
    starts = lengths.cumsum(0) - lengths
    rows = torch.searchsorted(starts, flat, right=True) - 1
    return rows, flat - starts[rows] + rows + 1


def l2_of_pairs(difference: Tensor) -> Tensor:
    """||x_i - x_j||_2 per pair, from the (P, 3HW) differences of images in [0, 1]."""
    return difference.square().sum(1).sqrt()


def mad255_of_pairs(difference: Tensor) -> Tensor:
    """mean_p 255 |x_i,p - x_j,p| per pair: the per-pixel mean absolute difference on the 0-255 scale."""
    return difference.abs().mean(1) * 255


PIXEL_READINGS = {"l2": l2_of_pairs, "mad255": mad255_of_pairs}


@torch.no_grad()
def pixel_distance(
    images: Tensor,
    *,
    max_pairs: int | None,
    generator: torch.Generator | None = None,
    chunk: int = PIXEL_CHUNK,
    reading: str = "l2",
) -> PixelDistance:
    """Mean pair statistic (PIXEL_READINGS[reading]) over image pairs i < j of (N, 3, H, W) images in [0, 1],
    float64 sums.

    max_pairs None (or >= N (N - 1) / 2): all N (N - 1) / 2 pairs, exact (L2 by blocks of `chunk` x `chunk` images,
    ||a||^2 + ||b||^2 - 2ab in float64; other readings pair by pair); otherwise max_pairs pairs drawn by
    sample_pairs from `generator`, so two readings with generators seeded alike average the same pairs.
    The result's `pairs` is the number averaged: report it beside the mean (the DQ paper states neither).
    """
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(f"pixel_distance needs (N >= 2, C, H, W) images, got {tuple(images.shape)}")
    if images.min() < 0 or images.max() > 1:  # e.g. [-1, 1] images would double every distance
        raise ValueError("pixel_distance needs images in [0, 1]; map [-1, 1] images with (x + 1) / 2")
    if max_pairs is not None and max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1 or None, got {max_pairs}")
    if reading not in PIXEL_READINGS:
        raise ValueError(f"unknown pixel reading {reading!r}; valid: {sorted(PIXEL_READINGS)}")
    flat, count = images.flatten(1), len(images)
    total_pairs = count * (count - 1) // 2
    sampled = max_pairs is not None and max_pairs < total_pairs
    if sampled and generator is None:
        raise ValueError("pixel_distance needs a seeded generator to sample pairs")
    if reading == "l2" and not sampled:
        return PixelDistance(_all_pairs_l2(flat, chunk) / total_pairs, total_pairs)
    rows, columns = sample_pairs(count, max_pairs if sampled else total_pairs, generator)
    rows, columns = rows.to(images.device), columns.to(images.device)
    total = torch.zeros((), dtype=torch.float64, device=images.device)
    for start in range(0, len(rows), chunk):
        block = slice(start, start + chunk)
        total += PIXEL_READINGS[reading](flat[rows[block]].double() - flat[columns[block]].double()).sum()
    return PixelDistance(float(total) / len(rows), len(rows))


def _all_pairs_l2(flat: Tensor, chunk: int) -> float:
    """The sum of ||x_i - x_j||_2 over all pairs i < j of the (N, D) rows, by blocks of `chunk` rows."""
    count = len(flat)
    total = torch.zeros((), dtype=torch.float64, device=flat.device)
    norms = torch.cat([block.double().square().sum(1) for block in flat.split(chunk)])
    for row in range(0, count, chunk):
        block = flat[row : row + chunk].double()
        for column in range(row, count, chunk):
            other = block if column == row else flat[column : column + chunk].double()
            squared = torch.addmm(norms[column : column + chunk], block, other.T, alpha=-2)
            distances = squared.add_(norms[row : row + chunk, None]).clamp_min_(0).sqrt_()
            if column == row:  # the block on the diagonal: pairs j > i only
                distances = distances.triu(diagonal=1)
            total += distances.sum()
    return float(total)


def relative_to_ceiling(value: float, ceiling: float) -> float:
    """value / ceiling: a generated set's statistic over the tokenizer's reconstructions' (its ceiling); NaN when the
    ceiling is NaN or not positive (no ceiling to compare with)."""
    if math.isnan(ceiling) or ceiling <= 0:
        return float("nan")
    return value / ceiling


@torch.no_grad()
def vendi_score(features: Tensor) -> float:
    """exp(-sum_i l_i log l_i) over the eigenvalues l_i of K / N, K_ij = <x_i, x_j> / (|x_i| |x_j|), float64.

    The non-zero eigenvalues of K / N = U U^T (U = rows scaled to unit norm / sqrt(N)) are the squared singular
    values of U, so the N x N kernel is never formed: O(N D min(N, D)).
    """
    x = features.detach().double().flatten(1)
    norms = x.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        raise ValueError("vendi_score: the cosine kernel is undefined for a zero feature vector")
    eigenvalues = torch.linalg.svdvals(x / norms / math.sqrt(len(x))).square()  # they sum to trace(K / N) = 1
    return perplexity(eigenvalues)


def polynomial_mmd2(x: Tensor, y: Tensor) -> float:
    """Unbiased MMD^2 of (m, d) x and (n, d) y (m, n >= 2) with k(a, b) = (a.b / d + 1)^3, float64 (Binkowski et al.
    2018): the within-set means leave out the diagonal k(x_i, x_i), the cross mean keeps every pair."""
    x, y = x.double(), y.double()
    m, n, d = len(x), len(y), x.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"polynomial_mmd2 needs two or more items per set, got {m} and {n}")
    k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kernel_inception_distance(
    real: Tensor,
    fake: Tensor,
    *,
    generator: torch.Generator,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
) -> float:
    """KID of (N, D) fake against (M, D) real features: the mean of polynomial_mmd2 over `subsets` pairs of random
    subsets of min(subset_size, N, M) items of each, drawn without replacement from `generator` (CPU, seeded)."""
    size = min(subset_size, len(real), len(fake))
    if size == len(real) == len(fake):  # every subset is both whole sets, and MMD^2 ignores their order
        return polynomial_mmd2(real, fake)
    values = []
    for _ in range(subsets):
        chosen_real = torch.randperm(len(real), generator=generator)[:size]
        chosen_fake = torch.randperm(len(fake), generator=generator)[:size]
        values.append(polynomial_mmd2(real[chosen_real], fake[chosen_fake]))
    return sum(values) / len(values)


def inception_score(probabilities: Tensor) -> float:
    """exp(mean_i KL(p_i || p_mean)) of (N, C) class probabilities p_i (rows summing to 1), float64: 1 when every
    row is the same, C when every row is certain and the classes are equally frequent."""
    p = probabilities.double()
    marginal = p.mean(0, keepdim=True)
    divergence = (torch.special.xlogy(p, p) - torch.special.xlogy(p, marginal)).sum(1)
    return float(divergence.mean().exp())


def precision_recall_density_coverage(real: Tensor, fake: Tensor, nearest_k: int = NEAREST_K) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) of (M, D) fake against (N, D) real features,
    by prdc's compute_prdc (all pairwise distances: memory ~ 8 (N + M)^2 bytes)."""
    try:
        from prdc import compute_prdc
    except ImportError:
        raise ConfigError("precision/recall/density/coverage need the prdc package: pip install prdc") from None
    real_np, fake_np = (t.detach().double().cpu().numpy() for t in (real, fake))
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the two sample counts
        result = compute_prdc(real_features=real_np, fake_features=fake_np, nearest_k=nearest_k)
    return {name: float(value) for name, value in result.items()}


def proxy_fidelity(real_features: Tensor, fake_features: Tensor, *, nearest_k: int = NEAREST_K) -> dict[str, float]:
    """Fréchet distance, PRDC and the fake features' Vendi score on proxy-network features, every key "proxy_*":
    not FID, not Inception precision/recall; comparable only between runs that share one proxy network."""
    prdc = precision_recall_density_coverage(real_features, fake_features, nearest_k)
    return {
        "proxy_frechet": frechet_distance_of_features(real_features, fake_features),
        **{f"proxy_{name}": prdc[name] for name in ("precision", "recall", "density", "coverage")},
        "proxy_vendi": vendi_score(fake_features),
    }
