"""Wasserstein VQ (Fang et al. 2025, "Enhancing Vector Quantization with Distributional Matching",
arXiv 2506.15078, Sec. 3.2): vanilla VQ losses plus gamma * W2 between Gaussian fits of the feature and codebook
distributions (Lemma 3), which pulls the codebook distribution onto the feature distribution.

Official VQ-VAE estimator (code/VQVAE/model/wasserstein_quantizer.py), none of it in the paper's text: feature
statistics come from a FIFO queue of the last 65,536 feature vectors; features and codes are divided by the
largest per-dimension feature std; covariances are unbiased; the codebook has its own learning rate 0.02.
The atomic simulations (App. H) instead use the current batch, no scaling and biased covariances. The v1 VQGAN and
VAR code (code/VQGAN/FFHQ and code/VAR/FFHQ/model/wasserstein_quantizer.py, eec8230) divides by the largest
per-dimension std of the CODEBOOK (unbiased, detached) and adds 1e-6 I to both covariances: the settings
`scale_reference="codebook"`, `covariance_jitter=1e-6` (GAN_WASSERSTEIN_SETTINGS).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from replicate.errors import ConfigError, unknown_name
from replicate.quantize.gaussian import gaussian_fit, gaussian_w2
from replicate.quantize.matching import MatchingConfig, MatchingVQ

SCALE_REFERENCES = ("features", "codebook")
# What the codebook's Gaussian is matched to: "features", the paper's N(mu, S); or "zador", N(mu, (d + 2) / d S), the
# MSE-optimal code density f^(d / (d + 2)) of Zador's theorem (Graf and Luschgy 2000, Thm. 6.2) for Gaussian features
# (beyond the paper: its open question 2, experiments/beyond.py).
TARGETS = ("features", "zador")
# The v1 VQGAN and VAR code's estimator (see the module docstring), for quantizer_config("wasserstein", ...).
GAN_WASSERSTEIN_SETTINGS = {"scale_reference": "codebook", "covariance_jitter": 1e-6}


@dataclass(frozen=True)
class WassersteinConfig(MatchingConfig):
    beta: float = 0.1  # commitment weight; official scripts: --beta 0.1 ("lets the W term dominate")
    alpha: float = 1.0  # codebook-loss weight (official --alpha 1.0)
    gamma: float = 0.5  # W2 weight (official --gamma 0.5 for every VQ-VAE run)
    queue_size: int | None = 65536  # feature FIFO for the statistics; None: use the current batch only
    queue_init_std: float = 0.01  # official queue starts as N(0, 0.01^2) noise
    normalize_scale: bool = True  # divide features and codes by the max per-dimension std (official)
    scale_reference: str = "features"  # whose std: "features" (official VQ-VAE) or "codebook" (v1 VQGAN / VAR)
    covariance_jitter: float = 0.0  # added to both covariances' diagonals (v1 VQGAN / VAR: 1e-6; VQ-VAE: none)
    unbiased_covariance: bool = True  # official VQ-VAE: divide by n - 1; atomic simulations: by n
    codebook_lr: float | None = 0.02  # official: codebook in its own Adam group at a constant 0.02
    init: str = "normal"  # official: normal_(0, 0.01)
    init_scale: float = 0.01
    target: str = "features"  # the paper's; "zador": the density-adjusted target (TARGETS)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target not in TARGETS:
            raise unknown_name("target", self.target, TARGETS)
        if self.scale_reference not in SCALE_REFERENCES:
            raise unknown_name("scale_reference", self.scale_reference, SCALE_REFERENCES)
        if self.covariance_jitter < 0:
            raise ConfigError(f"covariance_jitter must be >= 0, got {self.covariance_jitter!r}")


class WassersteinVQ(MatchingVQ):
    term = "wasserstein"

    def distance(self, features: Tensor) -> Tensor:
        """The estimator's W2 between (detached) features and the codebook, gradient to the codebook only."""
        features, codes = features.detach(), self.codebook()
        if self.config.normalize_scale:
            # official: max per-dimension std (unbiased, detached) + 1e-8; a single vector has std 0, not NaN
            reference = features if self.config.scale_reference == "features" else codes.detach()
            scale = reference.std(0, correction=int(len(reference) > 1)).max() + 1e-8
            features, codes = features / scale, codes / scale
        unbiased, jitter = self.config.unbiased_covariance, self.config.covariance_jitter
        mean_a, cov_a = gaussian_fit(features, unbiased=unbiased)
        mean_b, cov_b = gaussian_fit(codes, unbiased=unbiased)
        if self.config.target == "zador":
            dim = cov_a.shape[0]
            cov_a = cov_a * ((dim + 2) / dim)
        if jitter:
            eye = torch.eye(cov_a.shape[0], dtype=cov_a.dtype, device=cov_a.device)
            cov_a, cov_b = cov_a + jitter * eye, cov_b + jitter * eye
        return gaussian_w2(mean_a, cov_a, mean_b, cov_b)

    wasserstein_distance = distance  # its name in the VQGAN and multi-scale tests
