"""Vanilla VQ (van den Oord et al. 2017, "Neural Discrete Representation Learning", arXiv 1711.00937, Eq. 3):
nearest-code assignment, straight-through gradients, codebook trained by the codebook loss."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from replicate.quantize.base import Quantizer, QuantizerConfig, init_codebook, vq_losses


@dataclass(frozen=True)
class VanillaConfig(QuantizerConfig):
    beta: float = 1.0  # commitment weight; official VQ-VAE scripts run every baseline with --beta 1.0
    alpha: float = 1.0  # codebook-loss weight (official --alpha 1.0)
    init: str = "uniform"  # official vanilla_quantizer.py: uniform_(-1/K, 1/K)
    init_scale: float | None = None  # None means 1/num_codes


class VanillaVQ(Quantizer):
    def __init__(self, config: VanillaConfig) -> None:
        super().__init__(config)
        scale = config.init_scale if config.init_scale is not None else 1.0 / config.num_codes
        self.weight = nn.Parameter(init_codebook(config.num_codes, config.dim, config.init, scale))

    def codebook(self) -> Tensor:
        return self.weight

    def losses(self, flat: Tensor, codes: Tensor) -> dict[str, Tensor]:
        return vq_losses(flat, codes, alpha=self.config.alpha, beta=self.config.beta)
