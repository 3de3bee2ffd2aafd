"""VAR-style multi-scale residual quantization (Tian et al. 2024, "Visual Autoregressive Modeling", arXiv
2404.02905, Sec. 3.2, Algorithm 1) with ONE codebook shared by all scales: Wasserstein VQ's "Multi-scale
Wasserstein VQ" (arXiv 2506.15078 v1, Table 3, 680 tokens) and Deferred Quantization's VAR tokenizer (arXiv
2603.17052, Table 1). Any of the five quantizers supplies the codebook, the search and its own extra losses.

For scales p_1 < ... < p_S = h on a square latent z (h x h x d), with r_1 = z: the residual r_s is area-downsampled
to p_s x p_s, each vector is replaced by its nearest code (distances on detached features), the code map e_s is
bicubic-upsampled to h x h (u_s) and subtracted, r_{s+1} = r_s - u_s; the decoder gets z_dec = sum_s u_s through the
straight-through estimator. Loss of the official v1 code (code/VAR/FFHQ/model/wasserstein_quantizer.py, eec8230):

    beta MSE(sg z_dec, z) + MSE(z_dec, sg z)
    + sum_s (p_s / sum_t p_t) [beta MSE(sg e_s, down(r_s)) + MSE(e_s, sg down(r_s))]
    + the inner quantizer's own terms (Wasserstein VQ: gamma W2) over the residual vectors of all scales.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from replicate.errors import ConfigError
from replicate.quantize.base import Quantizer, QuantizerOutput, straight_through
from replicate.quantize.wasserstein import GAN_WASSERSTEIN_SETTINGS

VAR_SCALES = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)  # official --ms_patch_size "1_2_3_4_5_6_8_10_13_16" (VAR's list)
INNER_VQ_TERMS = ("codebook", "commitment")  # the inner's single-scale VQ terms, replaced by the multi-scale ones

# Inner Wasserstein VQ settings of the official multi-scale run (v1 code/VAR/FFHQ, eec8230), for
# quantizer_config("wasserstein", K, 8, **VAR_WASSERSTEIN_SETTINGS): its estimator is the v1 GAN one (codebook-std
# scaling, 1e-6 I on both covariances); its beta 0.1 and alpha 1 weight the multi-scale terms below.
VAR_WASSERSTEIN_SETTINGS = {
    **GAN_WASSERSTEIN_SETTINGS,
    "gamma": 0.5,  # train_var_ffhq_p*.sh: --gamma=0.5
    # Queue.queue_size = 174,080 = 8 steps x 32 images x 680 tokens. Official: each GPU queues only its own
    # residuals (no all-gather); WassersteinVQ gathers all ranks', so 2 GPUs fill it in 4 steps, not 8.
    "queue_size": 174_080,
    "codebook_lr": 0.01,  # train_var.py: AdamW group {'lr': 0.01}, constant (v1 VQGAN: 0.02); own grad clip 1.0
    "init": "normal",  # BaseQuantizer: embedding.weight.normal_(0, 0.01)
    "init_scale": 0.01,
}


def tokens(scales: Sequence[int]) -> int:
    """Tokens per image: sum of p^2 over the scales (680 for VAR_SCALES)."""
    return sum(pn * pn for pn in scales)


def check_scales(scales: Sequence[int]) -> tuple[int, ...]:
    """The scales as a tuple; they must be integers >= 1 in strictly increasing order."""
    scales = tuple(scales)
    if not scales or any(not isinstance(pn, int) or pn < 1 for pn in scales):
        raise ConfigError(f"scales must be a non-empty sequence of integers >= 1, got {scales!r}")
    if any(a >= b for a, b in zip(scales[:-1], scales[1:], strict=True)):
        raise ConfigError(f"scales must be strictly increasing, got {scales!r}")
    return scales


def scales_for(latent_size: int, scales: Sequence[int] = VAR_SCALES) -> tuple[int, ...]:
    """The prefix of `scales` that fits a latent_size x latent_size latent (8 -> (1, 2, 3, 4, 5, 6, 8)).

    It must end at latent_size: the official code quantizes the full-resolution residual at the last scale, and
    a list ending below it would leave that residual unquantized.
    """
    prefix = tuple(pn for pn in check_scales(scales) if pn <= latent_size)
    if not prefix or prefix[-1] != latent_size:
        raise ConfigError(f"no prefix of scales {tuple(scales)} ends at the latent size {latent_size}")
    return prefix


def downsample(x: Tensor, size: int) -> Tensor:
    """(B, d, h, h) -> (B, d, size, size) by area averaging; none at size = h (official: the last scale is the
    full-resolution residual itself)."""
    return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="area")


def upsample(code_map: Tensor, size: int) -> Tensor:
    """(B, d, p, p) -> (B, d, size, size), bicubic with align_corners=False (F.interpolate's default, as the official
    call); none at p = size. No phi convolution (VAR's Phi is commented out in the v1 code)."""
    return code_map if code_map.shape[-1] == size else F.interpolate(code_map, size=(size, size), mode="bicubic")


@dataclass
class MultiScaleOutput(QuantizerOutput):
    """A QuantizerOutput for a latent z (B, h, w, d): `quantized` is z_dec = the sum of the up-sampled codes (value)
    with the gradient straight through to z, `codes` z_dec with gradient to the codebook, `indices` every scale's
    indices (B * tokens,) scale by scale (the official token_cat order): the usage histogram counts all of them."""

    scale_indices: list[Tensor]  # per scale, (B, p, p)
    residuals: Tensor  # (B * tokens, d), detached: the vectors quantized at every scale, in `indices`' order
    inner: QuantizerOutput  # the inner quantizer's terms and output on `residuals` (for its update)


class MultiScaleQuantizer(nn.Module):
    """Residual quantization over `scales` with the codebook, search, weights (beta, alpha) and extra terms of
    `inner`, one of the five quantizers built by the registry."""

    def __init__(self, inner: Quantizer, scales: Sequence[int] = VAR_SCALES) -> None:
        super().__init__()
        self.inner = inner
        self.scales = check_scales(scales)
        self.beta = inner.config.beta  # the inner's commitment weight (Wasserstein VQ: 0.1, the official --beta)
        # Weight of the terms with gradient to the codebook: the official code has none (= 1); methods whose codebook
        # is not trained by gradient (EMA) have no alpha and no such terms.
        self.alpha = getattr(inner.config, "alpha", 1.0)

    @property
    def num_codes(self) -> int:
        return self.inner.num_codes

    @property
    def learned_codebook(self) -> bool:
        """The inner quantizer's (Quantizer.learned_codebook): whether a k-means initialisation may set it."""
        return self.inner.learned_codebook

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def config(self):
        """The inner quantizer's settings (the q_ columns of a result)."""
        return self.inner.config

    def codebook(self) -> Tensor:
        return self.inner.codebook()

    def set_codebook(self, codes: Tensor) -> None:
        self.inner.set_codebook(codes)

    def param_groups(self, lr: float) -> list[dict]:
        return self.inner.param_groups(lr)

    def code_map(self, s: int, codes: Tensor, size: int) -> Tensor:
        """u_s: scale s's code map (B, d, p, p) up-sampled to size x size (VARQuantizer adds its phi here)."""
        return upsample(codes, size)

    def partial_sums(self, scale_indices: Sequence[Tensor]) -> list[Tensor]:
        """f_s = u_1 + ... + u_s (B, d, h, h), in scale order, for each given scale map (B, p_s, p_s), the first
        scales first: the tokenizer's own decoding of tokens, which VAR's teacher forcing and sampling read."""
        if not 1 <= len(scale_indices) <= len(self.scales):
            raise ConfigError(f"need 1 to {len(self.scales)} scale maps, got {len(scale_indices)}")
        size, total, sums = self.scales[-1], 0, []
        for s, (pn, index) in enumerate(zip(self.scales, scale_indices, strict=False)):
            if index.ndim != 3 or index.shape[1:] != (pn, pn):
                raise ConfigError(f"scale map of shape {tuple(index.shape)} does not match its scale (B, {pn}, {pn})")
            total = total + self.code_map(s, self.codebook()[index].permute(0, 3, 1, 2), size)
            sums.append(total)
        return sums

    def forward(self, z: Tensor) -> MultiScaleOutput:
        batch, size = self._check(z)
        trained = self._codebook_trained()
        # The residual is NOT detached (official: z_rest = z_enc): down(r_s) carries gradient to z and to the
        # codes of earlier scales, so the per-scale beta term also moves earlier codes.
        rest = z.permute(0, 3, 1, 2)  # (B, d, h, w) for F.interpolate
        decoded = torch.zeros_like(rest)
        commitment = codebook = z.new_zeros(())
        scale_indices, residuals, indices, codes_used = [], [], [], []
        for s, pn in enumerate(self.scales):
            down = downsample(rest, pn)
            flat, index, codes = self.inner.lookup(down.permute(0, 2, 3, 1))  # search on detached features
            weight = pn / sum(self.scales)  # official: commit_loss += (...) * pn, then * 1 / sum(pn)
            commitment = commitment + weight * self.beta * F.mse_loss(flat, codes.detach())
            if trained:
                codebook = codebook + weight * self.alpha * F.mse_loss(codes, flat.detach())
            up = self.code_map(s, codes.reshape(batch, pn, pn, -1).permute(0, 3, 1, 2), size)
            decoded = decoded + up
            rest = rest - up
            scale_indices.append(index.reshape(batch, pn, pn))
            residuals.append(flat.detach())
            indices.append(index)
            codes_used.append(codes)
        decoded = decoded.permute(0, 2, 3, 1)
        residuals, indices, codes_used = torch.cat(residuals), torch.cat(indices), torch.cat(codes_used)
        # The inner's own terms over all scales' residual vectors at once, from the searches above (detached, so
        # they reach only the codebook): Wasserstein VQ queues them and computes W2 over its queue at training time,
        # over them at evaluation (official forward / collect_eval_info).
        inner_losses = self.inner.losses(residuals, codes_used)
        inner = self.inner.output(residuals, residuals, indices, codes_used, inner_losses)
        losses = {"commitment": self.beta * F.mse_loss(z, decoded.detach())}
        if trained:
            losses["codebook"] = self.alpha * F.mse_loss(decoded, z.detach())
        losses["scale_commitment"] = commitment
        if trained:
            losses["scale_codebook"] = codebook
        losses.update({k: v for k, v in inner_losses.items() if k not in INNER_VQ_TERMS})
        return MultiScaleOutput(
            quantized=straight_through(z, decoded),
            codes=decoded,
            indices=indices,
            losses=losses,
            scale_indices=scale_indices,
            residuals=residuals,
            inner=inner,
        )

    @torch.no_grad()
    def update(self, z: Tensor, out: MultiScaleOutput) -> None:
        """The inner's non-gradient update (EMA averages, online re-seeding) over every scale's residual vectors,
        as the revision's multi-scale EMA and online quantizers do (HEAD code/VAR/models/*_quantizer.py, z_cat)."""
        self.inner.update(out.residuals, out.inner)

    def _codebook_trained(self) -> bool:
        # EMA's codebook is a buffer: terms with gradient only to the codebook would be constants, so they are left
        # out (the revision's multi-scale EMA quantizer has none either).
        return any(p.requires_grad for p in self.inner.parameters())

    def _check(self, z: Tensor) -> tuple[int, int]:
        if z.ndim != 4 or z.shape[1] != z.shape[2]:
            raise ConfigError(f"multi-scale quantization needs a square latent (B, h, h, d), got {tuple(z.shape)}")
        if self.scales[-1] != z.shape[1]:
            raise ConfigError(
                f"the last scale {self.scales[-1]} must equal the latent side {z.shape[1]}; "
                f"use scales_for({z.shape[1]}, scales)"
            )
        return z.shape[0], z.shape[1]
