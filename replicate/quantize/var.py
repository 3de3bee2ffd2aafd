"""VAR's own multi-scale quantizer (Tian et al. 2024, "Visual Autoregressive Modeling", arXiv 2404.02905, Sec. 3.2;
settings of FoundationVision/VAR, models/vqvae.py and models/quant.py): the tokenizer of Deferred Quantization's VAR
arms (arXiv 2603.17052, Table 1 "VAR's multi-scale tokenizer"). Wasserstein VQ's Table 3 keeps its own v1 residual
quantizer (quantize/multiscale.py); the two differ in four places:

- the residual is detached: r_1 = sg z, r_{s+1} = r_s - sg h_s, so the searches and nothing else see it;
- each up-sampled code map passes a phi convolution, h_s = (1 - q) up(e_s) + q conv3x3(up(e_s)) with q = 0.5
  (`quant_resi`), one of 4 convolutions shared over the scales (`share_quant_resi`): scale s of S uses the one whose
  tick, linspace(1/12, 11/12, 4) (for 4; linspace(1/(2n), 1 - 1/(2n), n) otherwise), is nearest to s / (S - 1);
- the loss is taken on the running sum f_s = h_1 + ... + h_s after every scale and averaged over the S scales,
  (1/S) sum_s [beta MSE(sg f_s, z) + MSE(f_s, sg z)], beta the inner's commitment weight (VAR's VQVAE default and
  Deferred Quantization's setting: 0.25); no per-scale terms on the down-sampled residuals;
- the decoder gets f_S with the straight-through estimator, as the other quantizers.

The codebook and its nearest-code search come from the inner quantizer (Deferred Quantization: Vanilla VQ's, K =
16,384); the inner's own single-scale terms are replaced by the loss above. The k-means initialisation of the
deferred and early schedules is the caller's (train/schedule.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from replicate.errors import ConfigError
from replicate.quantize.base import Quantizer, straight_through
from replicate.quantize.multiscale import VAR_SCALES, MultiScaleOutput, MultiScaleQuantizer, downsample

PHI_RATIO = 0.5  # VQVAE(quant_resi=0.5): phi(h) = 0.5 conv(h) + (1 - 0.5) h
PHI_COUNT = 4  # VQVAE(share_quant_resi=4): four phi convolutions, partially shared over the scales


class Phi(nn.Module):
    """h -> (1 - ratio) h + ratio conv3x3(h), channels kept (padding 1): VAR's residual refinement of a code map."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.ratio = ratio

    def forward(self, h: Tensor) -> Tensor:
        return (1 - self.ratio) * h + self.ratio * self.conv(h)


def phi_of_scales(count: int, scales: int) -> list[int]:
    """Which of `count` shared phi convolutions each of `scales` scales uses: the one whose tick on [0, 1] (VAR:
    margins of a third at the ends for 4, a half otherwise) is nearest to s / (S - 1). Computed with numpy's
    linspace as VAR does: torch's differs in the last bit, which decides exact ties (e.g. 6 phis, 7 scales)."""
    margin = 1 / 3 / count if count == 4 else 1 / 2 / count
    ticks = np.linspace(margin, 1 - margin, count)
    last = max(scales - 1, 1)
    return [int(np.argmin(np.abs(ticks - s / last))) for s in range(scales)]


class VARQuantizer(MultiScaleQuantizer):
    """VAR's quantizer around the codebook and search of `inner` (module docstring)."""

    def __init__(
        self,
        inner: Quantizer,
        scales: Sequence[int] = VAR_SCALES,
        *,
        phi_ratio: float = PHI_RATIO,
        phi_count: int = PHI_COUNT,
    ) -> None:
        super().__init__(inner, scales)
        if not 0 <= phi_ratio <= 1 or phi_count < 1:
            raise ConfigError(f"phi_ratio must be in [0, 1] and phi_count >= 1, got {phi_ratio}, {phi_count}")
        self.phis = nn.ModuleList(Phi(inner.dim, phi_ratio) for _ in range(phi_count))
        self.phi_of_scale = phi_of_scales(phi_count, len(self.scales))

    def param_groups(self, lr: float) -> list[dict]:
        """The inner codebook's groups; the phi convolutions train with the model (group 0 of the optimizer)."""
        return self.inner.param_groups(lr)

    def code_map(self, s: int, codes: Tensor, size: int) -> Tensor:
        """h_s: scale s's code map (B, d, p, p) up-sampled to size x size and refined by its phi convolution."""
        return self.phis[self.phi_of_scale[s]](super().code_map(s, codes, size))

    def forward(self, z: Tensor) -> MultiScaleOutput:
        batch, size = self._check(z)
        target = z.permute(0, 3, 1, 2)  # (B, d, h, w)
        rest = target.detach()
        decoded = torch.zeros_like(rest)
        commitment = codebook = z.new_zeros(())
        scale_indices, residuals, indices, codes_used = [], [], [], []
        for s, pn in enumerate(self.scales):
            flat, index, codes = self.inner.lookup(downsample(rest, pn).permute(0, 2, 3, 1))
            h = self.code_map(s, codes.reshape(batch, pn, pn, -1).permute(0, 3, 1, 2), size)
            decoded = decoded + h
            rest = rest - h.detach()
            commitment = commitment + self.beta * F.mse_loss(decoded.detach(), target)
            codebook = codebook + F.mse_loss(decoded, target.detach())
            scale_indices.append(index.reshape(batch, pn, pn))
            residuals.append(flat)
            indices.append(index)
            codes_used.append(codes)
        residuals, indices, codes_used = torch.cat(residuals), torch.cat(indices), torch.cat(codes_used)
        decoded = decoded.permute(0, 2, 3, 1)
        count = len(self.scales)
        return MultiScaleOutput(
            quantized=straight_through(z, decoded),
            codes=decoded,
            indices=indices,
            losses={"commitment": commitment / count, "codebook": codebook / count},
            scale_indices=scale_indices,
            residuals=residuals,
            inner=self.inner.output(residuals, residuals, indices, codes_used, {}),
        )
