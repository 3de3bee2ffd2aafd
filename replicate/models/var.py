"""VAR: class-conditional next-scale prediction (Tian et al. 2024, "Visual Autoregressive Modeling: Scalable Image
Generation via Next-Scale Prediction", arXiv 2404.02905, Sec. 3.2 and 4) over the token maps of
quantize/multiscale.py, for Deferred Quantization's generation study (arXiv 2603.17052, VAR "depth 16").

A decoder-only transformer reads L = sum p_s^2 positions with a block-causal mask (scale s sees scales <= s) and
predicts every token of scale s in parallel. The p_1^2 start positions hold the class embedding; the positions of
scale s + 1 hold the tokenizer's partial sum f_s (sum_{i<=s} up_h(e_i), e_i the code map of scale i, each through
its phi convolution with VAR's quantizer) area-downsampled to p_{s+1} x p_{s+1}: the tokenizer's own decoding, so
teacher forcing and sampling see what the decoder would. Blocks are pre-norm with
adaptive LayerNorm on the class embedding (VAR Sec. 4), sampling uses top-k / top-p and VAR's ramped
classifier-free guidance; sampling keeps each block's keys and values (a scale is computed once). Simplifications:
no query/key L2 normalisation, no progressive training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from replicate.configs import VARConfig
from replicate.configs import VARSampling as SamplingConfig
from replicate.errors import ConfigError
from replicate.models.sampling import draw
from replicate.quantize.multiscale import MultiScaleQuantizer, check_scales, downsample, tokens


def block_causal_mask(scales: Sequence[int]) -> Tensor:
    """(L, L) bool, True = may attend: a position of scale s sees every position of scales <= s."""
    level = _levels(check_scales(scales))
    return level[:, None] >= level[None, :]


def _levels(scales: tuple[int, ...]) -> Tensor:
    """The scale index of each of the L positions."""
    counts = torch.tensor([p * p for p in scales])  # output_size: also on the meta device (replicate/plan.py)
    return torch.repeat_interleave(torch.arange(len(scales)), counts, output_size=tokens(scales))


def accumulate(scale_indices: Sequence[Tensor], quantizer: MultiScaleQuantizer) -> Tensor:
    """The tokenizer's quantized latent of all its scale maps, (B, h, h, d): VQVAE.decode(accumulate(...)) gives the
    images of (generated) tokens."""
    if len(scale_indices) != len(quantizer.scales):
        raise ConfigError(f"decoding needs all {len(quantizer.scales)} scale maps, got {len(scale_indices)}")
    return quantizer.partial_sums(scale_indices)[-1].permute(0, 2, 3, 1)


@torch.no_grad()  # the tokenizer is frozen: its decoding is the generator's input, never trained through
def scale_inputs(scale_indices: Sequence[Tensor], quantizer: MultiScaleQuantizer) -> Tensor:
    """Teacher-forcing inputs (B, n, d) of the positions of scales 2 .. min(m + 1, S) for m given scale maps: for
    each given s < S, the tokenizer's partial sum f_s area-downsampled to p_{s+1} x p_{s+1}, flattened row-major;
    n = L - p_1^2 for all S."""
    scales = quantizer.scales
    inputs = []
    for s, total in enumerate(quantizer.partial_sums(scale_indices)[: len(scales) - 1]):
        inputs.append(downsample(total, scales[s + 1]).flatten(2).transpose(1, 2))
    if not inputs:  # only the last scale of a one-scale list: no later positions
        return quantizer.codebook().new_zeros(scale_indices[0].shape[0], 0, quantizer.dim)
    return torch.cat(inputs, dim=1)


class AdaLN(nn.Module):
    """LayerNorm without affine weights, scaled and shifted per sample from the class embedding (VAR Sec. 4).
    Zero-initialised (DiT's adaLN-Zero); official VAR scales its init down instead (gates x 1e-3, the rest x 0.5)."""

    def __init__(self, width: int, chunks: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)  # official norm_eps=1e-6
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, chunks * width))
        self.chunks = chunks
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, cond: Tensor) -> tuple[Tensor, ...]:
        """(shift, scale, [gate, ...]) per sample, each (B, 1, width)."""
        return self.modulation(cond)[:, None].chunk(self.chunks, dim=-1)

    def modulate(self, x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
        return self.norm(x) * (1 + scale) + shift


class Block(nn.Module):
    """Pre-norm transformer block: x + gate * attention(AdaLN(x)), then x + gate * MLP(AdaLN(x))."""

    def __init__(self, config: VARConfig, drop_path: float) -> None:
        super().__init__()
        width, hidden = config.width, round(config.width * config.mlp_ratio)
        self.heads, self.dropout, self.drop_path = config.heads, config.dropout, drop_path
        self.ada = AdaLN(width, 6)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width), nn.Dropout(config.dropout)
        )

    def forward(self, x: Tensor, cond: Tensor, mask: Tensor | None, cache: list[Tensor] | None = None) -> Tensor:
        """`cache`: this block's [keys, values] of the positions before x's (empty at the first scale), extended in
        place with x's; x must then be whole scales, which see every earlier position (mask None)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(cond)
        x = x + self._skip(gate1 * self._attend(self.ada.modulate(x, shift1, scale1), mask, cache))
        return x + self._skip(gate2 * self.mlp(self.ada.modulate(x, shift2, scale2)))

    def _attend(self, x: Tensor, mask: Tensor | None, cache: list[Tensor] | None) -> Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if cache is not None:
            if cache:
                k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return F.dropout(self.proj(out.transpose(1, 2).reshape(batch, length, width)), dropout)

    def _skip(self, branch: Tensor) -> Tensor:
        """Stochastic depth: drop the whole branch per sample (global RNG, as nn.Dropout), rescale the rest."""
        if not self.training or self.drop_path == 0:
            return branch
        keep = torch.rand(branch.shape[0], 1, 1, device=branch.device) >= self.drop_path
        return branch * keep / (1 - self.drop_path)


class VAR(nn.Module):
    """forward(inputs (B, n, d), labels (B,)) -> logits (B, p_1^2 + n, K); n = L - p_1^2 for the whole sequence,
    or a prefix of it (the inputs of the first scales: the mask makes earlier logits independent of later ones)."""

    def __init__(self, config: VARConfig) -> None:
        super().__init__()
        self.config, width = config, config.width
        self.register_buffer("mask", block_causal_mask(config.scales), persistent=False)
        self.register_buffer("levels", _levels(config.scales), persistent=False)
        std = (1 / (3 * width)) ** 0.5  # official init_std = sqrt(1 / 3C) for the embeddings
        self.input_proj = nn.Linear(config.code_dim, width)
        self.class_embed = nn.Parameter(torch.randn(config.num_classes + 1, width) * std)  # last row: null class
        self.position = nn.Parameter(torch.randn(tokens(config.scales), width) * std)
        self.level = nn.Parameter(torch.randn(len(config.scales), width) * std)
        rates = torch.linspace(0, config.drop_path, config.depth, device="cpu").tolist()  # official: rising with depth
        self.blocks = nn.ModuleList(Block(config, rate) for rate in rates)
        self.head_norm = AdaLN(width, 2)
        self.head = nn.Linear(width, config.vocab_size)
        with torch.no_grad():  # official init_head=0.02: near-uniform first predictions
            self.head.weight.mul_(0.02)
            self.head.bias.zero_()

    def forward(self, inputs: Tensor, labels: Tensor, cache: list[list[Tensor]] | None = None) -> Tensor:
        """Without `cache`: the logits of the start positions and of `inputs`' positions. With `cache` (one list per
        block, empty lists before the first scale; see `sample`): the logits of the next scale only, `inputs` that
        scale's inputs (none for the first), every earlier scale's keys and values read from the cache."""
        first = self.config.scales[0] ** 2
        start = cache[0][0].shape[2] if cache is not None and cache[0] else 0
        length = start + inputs.shape[1] + (first if start == 0 else 0)
        if inputs.ndim != 3 or inputs.shape[2] != self.config.code_dim or length > len(self.levels):
            raise ConfigError(
                f"inputs must be (B, <= {len(self.levels) - first}, {self.config.code_dim}), got {tuple(inputs.shape)}"
            )
        cond = self.class_embed[labels]  # (B, width)
        x = self.input_proj(inputs)
        if start == 0:
            x = torch.cat([cond[:, None].expand(-1, first, -1), x], dim=1)
        x = x + self.position[start:length] + self.level[self.levels[start:length]]
        mask = self.mask[:length, :length] if cache is None else None  # a whole new scale sees every cached one
        for index, block in enumerate(self.blocks):
            x = block(x, cond, mask, None if cache is None else cache[index])
        return self.head(self.head_norm.modulate(x, *self.head_norm(cond)))


@dataclass(frozen=True)
class TrainingLoss:
    loss: Tensor  # mean cross-entropy over the B x L tokens, with gradient
    scale_losses: Tensor  # (S,) mean cross-entropy of each scale's tokens, detached
    accuracy: Tensor  # top-1 accuracy over all tokens, detached


def training_loss(
    model: VAR,
    scale_indices: Sequence[Tensor],
    quantizer: MultiScaleQuantizer,
    labels: Tensor,
    generator: torch.Generator,
) -> TrainingLoss:
    """Teacher-forced cross-entropy of every token (targets: the indices scale by scale); each label becomes the
    null class with probability label_dropout, drawn from `generator` (on any device)."""
    config = model.config
    _check_tokenizer(quantizer, config)
    if len(scale_indices) != len(config.scales):
        raise ConfigError(f"training needs all {len(config.scales)} scale maps, got {len(scale_indices)}")
    drop = torch.rand(labels.shape[0], generator=generator, device=generator.device).to(labels.device)
    labels = torch.where(drop < config.label_dropout, config.num_classes, labels)
    logits = model(scale_inputs(scale_indices, quantizer), labels)
    targets = torch.cat([index.flatten(1) for index in scale_indices], dim=1)
    # Over rows of K contiguous logits: the (B, K, L) layout made the log-softmax strided (0.5 s of copies a 3.6 s
    # cpu step, 2026-11-26).
    per_token = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(targets.shape)
    scale_losses = torch.stack([part.mean() for part in per_token.detach().split([p * p for p in config.scales], 1)])
    accuracy = (logits.detach().argmax(-1) == targets).float().mean()
    return TrainingLoss(per_token.mean(), scale_losses, accuracy)


def _check_tokenizer(quantizer: MultiScaleQuantizer, config: VARConfig) -> None:
    if (quantizer.num_codes, quantizer.dim) != (config.vocab_size, config.code_dim):
        raise ConfigError(
            f"the tokenizer's codebook ({quantizer.num_codes}, {quantizer.dim}) != (vocab_size, code_dim) "
            f"({config.vocab_size}, {config.code_dim})"
        )
    if quantizer.scales != config.scales:
        raise ConfigError(f"the tokenizer's scales {quantizer.scales} != the generator's {config.scales}")


@torch.no_grad()
def sample(
    model: VAR, quantizer: MultiScaleQuantizer, labels: Tensor, config: SamplingConfig, generator: torch.Generator
) -> list[Tensor]:
    """Per-scale index maps (B, p, p): scale by scale, every token of a scale drawn at once from the logits of its
    positions given the scales drawn so far; each block keeps the keys and values of the scales computed, so a
    scale's positions pass through the transformer once (the logits equal a full forward's: tests/test_var.py).
    `generator` on the model's device."""
    _check_tokenizer(quantizer, model.config)
    scales, training = model.config.scales, model.training
    model.eval()
    cache: list[list[Tensor]] = [[] for _ in model.blocks]
    try:
        drawn: list[Tensor] = []
        for s, p in enumerate(scales):
            if drawn:  # the inputs of scale s: the partial sum of the scales drawn, at p x p
                inputs = scale_inputs(drawn, quantizer)[:, -p * p :]
            else:
                inputs = quantizer.codebook().new_zeros(labels.shape[0], 0, quantizer.dim)
            logits = _guided_logits(model, inputs, labels, config, s, cache)
            drawn.append(draw(logits, config, generator).view(-1, p, p))
    finally:
        model.train(training)
    return drawn


def _guided_logits(
    model: VAR, inputs: Tensor, labels: Tensor, config: SamplingConfig, s: int, cache: list[list[Tensor]]
) -> Tensor:
    if config.guidance_scale == 0:
        return model(inputs, labels, cache)
    null = torch.full_like(labels, model.config.num_classes)
    cond, uncond = model(torch.cat([inputs, inputs]), torch.cat([labels, null]), cache).chunk(2)
    ramp = s / max(len(model.config.scales) - 1, 1) if config.guidance_ramp else 1.0
    t = config.guidance_scale * ramp
    return (1 + t) * cond - t * uncond
