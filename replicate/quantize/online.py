"""Online VQ (Zheng & Vedaldi 2023, "Online Clustered Codebook", CVQ-VAE, arXiv 2307.15139; the paper's
"k-means++" baseline): vanilla VQ losses, plus after every training step each code is pulled towards an anchor
feature of the batch, strongly when the code is rarely used:

    p_k <- decay p_k + (1 - decay) usage_k,   w_k = exp(-p_k K 10 / (1 - decay) - 1e-3),
    e_k <- (1 - w_k) e_k + w_k anchor_k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from replicate.distributed import all_reduce_sum_, broadcast_
from replicate.errors import ConfigError
from replicate.quantize.base import QuantizerOutput, check_range, nearest_code
from replicate.quantize.vanilla import VanillaConfig, VanillaVQ

ANCHORS = ("farthest", "closest")
USAGE_SHARPNESS = 10.0  # the factor 10 in w_k (CVQ code, kept by the official code)
MIN_DECAY_OFFSET = 1e-3  # the -1e-3 in w_k: even an unused code keeps 0.1% of itself per step


@dataclass(frozen=True)
class OnlineConfig(VanillaConfig):
    """Vanilla VQ's settings (official online_quantizer.py: beta = alpha = 1, codes U(-1/K, 1/K)) and:"""

    decay: float = 0.99  # usage EMA; official VQ-VAE 0.99, atomic simulations 0.9
    # Official VQ-VAE code anchors each code at the batch feature FARTHEST from it (CVQ's "closest" variant is
    # commented out there); the atomic simulations use the CLOSEST feature.
    anchor: str = "farthest"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("decay", self.decay, 0.0, 1.0 - 1e-9)
        if self.anchor not in ANCHORS:
            raise ConfigError(f"unknown anchor {self.anchor!r}; valid: {', '.join(ANCHORS)}")


class OnlineVQ(VanillaVQ):
    """Vanilla VQ's codebook and losses, plus the re-seeding update."""

    def __init__(self, config: OnlineConfig) -> None:
        super().__init__(config)
        self.register_buffer("usage", torch.zeros(config.num_codes))  # the running p_k

    @torch.no_grad()
    def update(self, z: Tensor, out: QuantizerOutput) -> None:
        """Re-seed after the optimizer step. The official VQ-VAE code re-seeds inside forward, before the step;
        the order matters only for used codes, whose pull w_k is then negligible."""
        if not self.training:
            return
        flat = z.detach().reshape(-1, self.dim).to(self.weight.dtype)
        counts = all_reduce_sum_(torch.bincount(out.indices.reshape(-1), minlength=self.num_codes).to(self.usage.dtype))
        decay = self.config.decay
        self.usage.mul_(decay).add_(counts / counts.sum(), alpha=1 - decay)
        farthest = self.config.anchor == "farthest"
        anchors = flat[nearest_code(self.weight, flat, farthest=farthest, backend=self.search_backend)]
        pull = torch.exp(-self.usage * self.num_codes * USAGE_SHARPNESS / (1 - decay) - MIN_DECAY_OFFSET)
        self.weight.mul_(1 - pull.unsqueeze(1)).add_(pull.unsqueeze(1) * anchors)
        broadcast_(self.weight)  # data parallel: usage is global, the anchors are rank 0's batch
