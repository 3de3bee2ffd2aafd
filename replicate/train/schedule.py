"""When quantization starts and how the codebook is initialised: the schedules of Deferred Quantization
(Zhao et al., arXiv 2603.17052, V2 Sec. 3.2 and 5; V3 "continuous learning phase before discretization").

"early"    the paper's baseline: k-means on the outputs of the untrained encoder, quantize from the first step.
"deferred" the fix at an equal budget: `warmup_steps` steps as a plain autoencoder, then k-means on the trained
           encoder's outputs, then train with quantization for the rest of the same total budget (one optimizer,
           its state carried across the switch).
"pretrained" the paper's wording ("pretrain an autoencoder, then train the VQ-VAE initialised with its weights"):
           `warmup_steps` autoencoder steps, then k-means on the trained encoder, a fresh optimizer and the full
           quantized budget (warmup_steps + budget steps in all).
"random"   quantize from the first step with the quantizer's own random initialisation, untouched (V1's
           trigger; also the Wasserstein VQ paper's setting, with each method's official initialisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from replicate.configs import QUANTIZATION_SCHEDULES as SCHEDULES
from replicate.configs import WARMED  # the schedules with a continuous phase
from replicate.errors import ConfigError
from replicate.quantize.base import Quantizer
from replicate.quantize.kmeans import KMeansResult, kmeans


@dataclass(frozen=True)
class QuantizationSchedule:
    kind: str
    warmup_steps: int = 0  # continuous steps before quantizing (deferred and pretrained only)
    kmeans_iterations: int = 50  # Lloyd iterations of the codebook initialisation (the paper does not say)

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.kind!r}; valid: {', '.join(SCHEDULES)}")
        if self.warmup_steps < 0 or (self.kind in WARMED) != (self.warmup_steps > 0):
            raise ConfigError(
                f"warmup_steps must be > 0 for {' and '.join(WARMED)} and 0 otherwise, got {self.warmup_steps}"
            )

    @property
    def fresh_optimizer(self) -> bool:
        """Whether the quantized phase starts with a new optimizer (the paper's pretrain-then-train arm)."""
        return self.kind == "pretrained"

    def total_steps(self, budget: int) -> int:
        """Steps in all for a quantized budget: the budget itself, plus the autoencoder phase when pretrained."""
        return budget + self.warmup_steps if self.kind == "pretrained" else budget

    def quantizes(self, step: int) -> bool:
        """Whether training step `step` (from 0) runs with the quantizer."""
        return step >= self.warmup_steps

    def initializes(self, step: int) -> bool:
        """Whether the codebook is initialised (see `initialize`) just before step `step`."""
        return step == self.warmup_steps

    def initialize(self, quantizer: Quantizer, features: Tensor, generator: torch.Generator | None = None) -> None:
        """Initialise the codebook with k-means centroids of encoder outputs (n, d) ("early", "deferred");
        "random" keeps the quantizer's own initialisation, and so does a quantizer without a learned codebook (FSQ's
        grid): for it a schedule only decides when quantization starts."""
        if self.kind != "random" and quantizer.learned_codebook:
            kmeans_initialize(quantizer, features, iterations=self.kmeans_iterations, generator=generator)


def kmeans_initialize(
    quantizer: Quantizer, features: Tensor, *, iterations: int, generator: torch.Generator | None = None
) -> KMeansResult:
    """Set the quantizer's codebook to k-means centroids of `features` (encoder outputs, shape (n, d))."""
    result = kmeans(features.detach(), quantizer.num_codes, iterations=iterations, generator=generator)
    quantizer.set_codebook(result.codes.to(features.dtype))
    return result
