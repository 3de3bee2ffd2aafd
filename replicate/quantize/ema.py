"""EMA VQ (Razavi et al. 2019, "Generating Diverse High-Fidelity Images with VQ-VAE-2", arXiv 1906.00446,
App. A.1; the paper's "k-means" baseline): the codebook is no gradient parameter; after every training step each
code moves to the exponential moving average of the features assigned to it, with Laplace-smoothed counts:

    n_k <- decay n_k + (1 - decay) count_k,   m_k <- decay m_k + (1 - decay) sum_k,
    e_k = m_k / n'_k,   n'_k = (n_k + eps) / (sum_j n_j + K eps) * sum_j n_j.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from replicate.distributed import all_reduce_sum_
from replicate.errors import ConfigError
from replicate.quantize.base import Quantizer, QuantizerConfig, QuantizerOutput, check_range, init_codebook


@dataclass(frozen=True)
class EMAConfig(QuantizerConfig):
    beta: float = 1.0  # commitment weight (official baselines: --beta 1.0)
    decay: float = 0.8  # official VQ-VAE code uses 0.8 (not the usual 0.99); the atomic simulations use 0.9
    eps: float = 1e-5  # Laplace smoothing of the cluster sizes (official)
    init: str = "normal"  # official ema_quantizer.py: randn(K, d) / K
    init_scale: float | None = None  # None means 1/num_codes
    # cluster size of every code when its codebook is set (Deferred Quantization's k-means initialisation), with
    # embed_avg = the codes: 1 keeps each code where k-means put it until it is used; the official EMA starts its
    # counts at 0 (its random init), with which unused codes are divided by the Laplace eps on the next update.
    # Either way an unused code's count decays (decay^t), and it drifts toward the origin once that nears eps.
    set_count: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("decay", self.decay, 0.0, 1.0)
        if self.set_count < 0:
            raise ConfigError(f"set_count must be >= 0, got {self.set_count}")


class EMAVQ(Quantizer):
    def __init__(self, config: EMAConfig) -> None:
        super().__init__(config)
        scale = config.init_scale if config.init_scale is not None else 1.0 / config.num_codes
        weight = init_codebook(config.num_codes, config.dim, config.init, scale)
        self.register_buffer("weight", weight)
        self.register_buffer("cluster_size", torch.zeros(config.num_codes))  # official: zeros
        self.register_buffer("embed_avg", weight.clone())  # official: a copy of the initial codebook

    def codebook(self) -> Tensor:
        return self.weight

    def losses(self, flat: Tensor, codes: Tensor) -> dict[str, Tensor]:
        return {"commitment": self.config.beta * F.mse_loss(flat, codes.detach())}

    @torch.no_grad()
    def set_codebook(self, codes: Tensor) -> None:
        """Codes with running statistics embed_avg = codes and cluster sizes `set_count` (see EMAConfig)."""
        self.weight.copy_(codes)
        self.embed_avg.copy_(codes)
        self.cluster_size.fill_(self.config.set_count)

    @torch.no_grad()
    def update(self, z: Tensor, out: QuantizerOutput) -> None:
        if not self.training:
            return
        flat = z.detach().reshape(-1, self.dim).to(self.weight.dtype)
        indices = out.indices.reshape(-1)
        counts = torch.bincount(indices, minlength=self.num_codes).to(self.weight.dtype)
        sums = torch.zeros_like(self.embed_avg).index_add_(0, indices, flat)
        all_reduce_sum_(counts)  # under data parallelism every rank applies the same, global update
        all_reduce_sum_(sums)
        self.cluster_size.mul_(self.config.decay).add_(counts, alpha=1 - self.config.decay)
        self.embed_avg.mul_(self.config.decay).add_(sums, alpha=1 - self.config.decay)
        total = self.cluster_size.sum()
        eps = self.config.eps
        smoothed = (self.cluster_size + eps) / (total + self.num_codes * eps) * total
        self.weight.copy_(self.embed_avg / smoothed.unsqueeze(1))
