"""Linear VQ ("VQ + linear": the codebook re-parameterisation of VQGAN-LC, Zhu et al. 2024, arXiv 2406.11837,
and SimVQ, Zhu et al. 2024, arXiv 2411.02038): the code vectors are frozen at their initial values and a
trainable d x d linear map (with bias) is applied to the whole codebook; the codebook loss trains the map."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from replicate.errors import ConfigError
from replicate.quantize.base import Quantizer, QuantizerConfig, init_codebook, vq_losses

PROJECTION_INITS = ("torch_default", "identity")


@dataclass(frozen=True)
class LinearConfig(QuantizerConfig):
    beta: float = 1.0  # commitment weight
    alpha: float = 1.0  # codebook-loss weight (trains the projection)
    init: str = "normal"  # frozen base codes; official atomic code: N(0, I) (Gaussian case) or U(-1, 1)
    init_scale: float = 1.0
    # Official atomic code: torch.nn.Linear(d, d) with PyTorch's default (Kaiming-uniform) initialisation, so the
    # effective initial codebook is a random linear image of the base codes. "identity" starts from the codes.
    projection_init: str = "torch_default"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.projection_init not in PROJECTION_INITS:
            raise ConfigError(f"unknown projection_init {self.projection_init!r}; valid: {', '.join(PROJECTION_INITS)}")


class LinearVQ(Quantizer):
    def __init__(self, config: LinearConfig) -> None:
        super().__init__(config)
        self.register_buffer("base_codes", init_codebook(config.num_codes, config.dim, config.init, config.init_scale))
        self.projection = nn.Linear(config.dim, config.dim)
        if config.projection_init == "identity":
            with torch.no_grad():
                self.projection.weight.copy_(torch.eye(config.dim))
                self.projection.bias.zero_()

    def codebook(self) -> Tensor:
        return self.projection(self.base_codes)

    @torch.no_grad()
    def set_codebook(self, codes: Tensor) -> None:
        """Codes as the frozen base with an identity projection."""
        self.base_codes.copy_(codes)
        self.projection.weight.copy_(torch.eye(self.dim))
        self.projection.bias.zero_()

    def losses(self, flat: Tensor, codes: Tensor) -> dict[str, Tensor]:
        return vq_losses(flat, codes, alpha=self.config.alpha, beta=self.config.beta)
