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

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from replicate.errors import ConfigError
from replicate.quantize.base import Quantizer, QuantizerOutput, straight_through

VAR_SCALES = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)  # official --ms_patch_size "1_2_3_4_5_6_8_10_13_16" (VAR's list)
INNER_VQ_TERMS = ("codebook", "commitment")  # the inner's single-scale VQ terms, replaced by the multi-scale ones

# Inner Wasserstein VQ settings of the official multi-scale run (v1 code/VAR/FFHQ, eec8230), for
# quantizer_config("wasserstein", K, 8, **VAR_WASSERSTEIN_SETTINGS). The inner's alpha and beta are unused here.
# Not expressible in WassersteinConfig yet (so not applied): the v1 VQGAN and VAR quantizers divide features and
# codes by the max per-dimension std of the CODEBOOK (not of the features) and add 1e-6 I to both covariances.
VAR_WASSERSTEIN_SETTINGS = {
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


@dataclass(frozen=True)
class MultiScaleConfig:
    """Multi-scale settings; the codebook and the method's own settings live in the inner quantizer's config."""

    scales: tuple[int, ...] = VAR_SCALES  # last entry = latent side; smaller latents: scales_for(h)
    beta: float = 0.1  # weight of the terms with gradient to the features; official script --beta=0.1
    # Weight of the terms with gradient to the codebook: the official code has none (= 1); its --alpha 1.0 is
    # parsed but unused in the multi-scale quantizer. The per-scale weights p_s / sum p_t are the method's.
    alpha: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", check_scales(self.scales))
        for name in ("beta", "alpha"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    def replace(self, **changes) -> MultiScaleConfig:
        """A copy with some fields changed; an unknown field name fails with the list of valid ones."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise ConfigError(f"unknown MultiScaleConfig field(s) {unknown}; valid: {sorted(valid)}")
        return dataclasses.replace(self, **changes)


@dataclass
class MultiScaleOutput:
    """What MultiScaleQuantizer returns for a latent z of shape (B, h, w, d)."""

    quantized: Tensor  # (B, h, w, d): value z_dec = sum of up-sampled codes, gradient straight-through to z
    indices: list[Tensor]  # per scale, (B, p, p)
    flat_indices: Tensor  # (B * tokens,): every scale's indices, scale by scale (official token_cat order)
    residuals: Tensor  # (B * tokens, d), detached: the vectors quantized at every scale, in flat_indices' order
    losses: dict[str, Tensor]  # each already multiplied by its weight
    inner: QuantizerOutput  # the inner quantizer's output on `residuals` (its extra losses, its update)

    @property
    def loss(self) -> Tensor:
        return torch.stack(list(self.losses.values())).sum()


class MultiScaleQuantizer(nn.Module):
    """Residual quantization over `config.scales` with the codebook of `inner` (built by the registry)."""

    def __init__(self, inner: Quantizer, config: MultiScaleConfig | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.config = config if config is not None else MultiScaleConfig()

    @property
    def num_codes(self) -> int:
        return self.inner.num_codes

    @property
    def dim(self) -> int:
        return self.inner.dim

    def codebook(self) -> Tensor:
        return self.inner.codebook()

    def set_codebook(self, codes: Tensor) -> None:
        self.inner.set_codebook(codes)

    def param_groups(self, lr: float) -> list[dict]:
        return self.inner.param_groups(lr)

    def forward(self, z: Tensor) -> MultiScaleOutput:
        decoded, indices, residuals, scale_losses = self._quantize_scales(z)
        # The inner quantizer sees all scales' residual vectors at once (detached, so its terms reach only the
        # codebook): Wasserstein VQ queues them and computes W2 over its queue at training time, over them at
        # evaluation (official forward / collect_eval_info). Its search repeats the per-scale one (same indices);
        # a Quantizer method for the extra terms alone would avoid that (see the report of issue 12).
        inner_out = self.inner(residuals)
        c = self.config
        losses = {"commitment": c.beta * F.mse_loss(z, decoded.detach())}
        if self._codebook_trained():
            losses["codebook"] = c.alpha * F.mse_loss(decoded, z.detach())
        losses.update(scale_losses)
        losses.update({k: v for k, v in inner_out.losses.items() if k not in INNER_VQ_TERMS})
        return MultiScaleOutput(
            quantized=straight_through(z, decoded),
            indices=indices,
            flat_indices=torch.cat([index.reshape(-1) for index in indices]),
            residuals=residuals,
            losses=losses,
            inner=inner_out,
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

    def _quantize_scales(self, z: Tensor) -> tuple[Tensor, list[Tensor], Tensor, dict[str, Tensor]]:
        """z_dec (B, h, w, d), per-scale indices, the quantized residual vectors and the per-scale VQ terms."""
        batch, size = self._check(z)
        scales, c = self.config.scales, self.config
        # The residual is NOT detached (official: z_rest = z_enc): down(r_s) carries gradient to z and to the
        # codes of earlier scales, so the per-scale beta term also moves earlier codes.
        rest = z.permute(0, 3, 1, 2)  # (B, d, h, w) for F.interpolate
        decoded = torch.zeros_like(rest)
        commitment = codebook = z.new_zeros(())
        indices, residuals = [], []
        for pn in scales:
            # Official: no interpolation at the last scale (p_S = h; area and bicubic would be the identity there).
            down = rest if pn == size else F.interpolate(rest, size=(pn, pn), mode="area")
            flat, index, codes = self.inner.lookup(down.permute(0, 2, 3, 1))  # search on detached features
            weight = pn / sum(scales)  # official: commit_loss += (...) * pn, then * 1 / sum(pn)
            commitment = commitment + weight * c.beta * F.mse_loss(flat, codes.detach())
            codebook = codebook + weight * c.alpha * F.mse_loss(codes, flat.detach())
            code_map = codes.reshape(batch, pn, pn, -1).permute(0, 3, 1, 2)
            # bicubic with align_corners=False (F.interpolate's default, as the official call); no phi convolution
            # (VAR's Phi is commented out in the v1 code).
            up = code_map if pn == size else F.interpolate(code_map, size=(size, size), mode="bicubic")
            decoded = decoded + up
            rest = rest - up
            indices.append(index.reshape(batch, pn, pn))
            residuals.append(flat.detach())
        scale_losses = {"scale_commitment": commitment}
        if self._codebook_trained():
            scale_losses["scale_codebook"] = codebook
        return decoded.permute(0, 2, 3, 1), indices, torch.cat(residuals), scale_losses

    def _check(self, z: Tensor) -> tuple[int, int]:
        if z.ndim != 4 or z.shape[1] != z.shape[2]:
            raise ConfigError(f"multi-scale quantization needs a square latent (B, h, h, d), got {tuple(z.shape)}")
        if self.config.scales[-1] != z.shape[1]:
            raise ConfigError(
                f"the last scale {self.config.scales[-1]} must equal the latent side {z.shape[1]}; "
                f"use scales_for({z.shape[1]}, scales)"
            )
        return z.shape[0], z.shape[1]
