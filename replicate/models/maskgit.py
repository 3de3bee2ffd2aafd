"""MaskGIT (Chang et al. 2022, "MaskGIT: Masked Generative Image Transformer", arXiv 2202.04200): a class-conditional
bidirectional transformer over a tokenizer's square token grid, the generator with which Deferred Quantization (arXiv
2603.17052, Tables 1-4) checks that a shrunk codebook makes samples less diverse.

Training (Sec. 3.1, masked visual token modeling): draw u ~ U(0, 1) per image, mask ceil(cos(pi/2 u) N) of the N
tokens chosen uniformly, and minimise the cross-entropy of the original tokens at the masked positions only.
Sampling (Sec. 3.2, iterative decoding): start from an all-[MASK] grid; at step t of T predict every position, sample a
token at each masked one, and re-mask the floor(N cos(pi/2 (t+1)/T)) least confident of the new tokens (confidence:
log-probability plus annealed Gumbel noise, as the official code). Classifier-free guidance (a null class, trained by
label dropout) is not in MaskGIT; it follows the public PyTorch port (valeoai/Maskgit-pytorch), as does pre-LayerNorm.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from replicate.configs import MaskGITConfig
from replicate.configs import MaskGITSampling as SamplingConfig
from replicate.errors import ConfigError
from replicate.models.sampling import categorical


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + Attention(LN x), then x + MLP(LN x); full (bidirectional) attention."""

    def __init__(self, config: MaskGITConfig) -> None:
        super().__init__()
        hidden = int(config.width * config.mlp_ratio)
        self.heads, self.dropout = config.heads, config.dropout
        self.norm1, self.norm2 = nn.LayerNorm(config.width), nn.LayerNorm(config.width)
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.proj = nn.Linear(config.width, config.width)
        self.mlp = nn.Sequential(nn.Linear(config.width, hidden), nn.GELU(), nn.Linear(hidden, config.width))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(attended.transpose(1, 2).reshape(batch, length, width)))
        return x + self.drop(self.mlp(self.norm2(x)))


class MaskGIT(nn.Module):
    """Tokens (B, N) with `mask_id` where masked and labels (B,) (`null_class` = unconditional) -> logits (B, N, K),
    or (M, K) at the M positions where `at` (B, N) is True: the head then runs on those rows only (training and
    sampling need the masked positions alone; the head is ~40% of a cpu-scale step's multiply-adds at K = 8192)."""

    def __init__(self, config: MaskGITConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embed = nn.Embedding(config.vocab_size + 1, config.width)  # the last entry is [MASK]
        self.class_embed = nn.Embedding(config.num_classes + 1, config.width)  # the last entry is the null class
        self.position = nn.Parameter(torch.zeros(1, config.tokens + 1, config.width))  # class token first
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.vocab_size)
        # Sec. 4.1: truncated normal initialisation, std 0.02 (biases zero, LayerNorm at its identity default).
        nn.init.trunc_normal_(self.position, std=0.02)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    @property
    def mask_id(self) -> int:
        return self.config.vocab_size

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    def forward(self, tokens: Tensor, labels: Tensor, at: Tensor | None = None) -> Tensor:
        if tokens.ndim != 2 or tokens.shape[1] != self.config.tokens:
            raise ConfigError(f"MaskGIT expects tokens (B, {self.config.tokens}), got {tuple(tokens.shape)}")
        x = torch.cat([self.class_embed(labels)[:, None], self.token_embed(tokens)], dim=1)
        x = self.drop(x + self.position)
        for block in self.blocks:
            x = block(x)
        grid = x[:, 1:]  # the grid positions only
        return self.head(self.norm(grid if at is None else grid[at]))


def mask_ratio(u: Tensor | float) -> Tensor | float:
    """MaskGIT's cosine schedule gamma(u) = cos(pi/2 u) (Sec. 3.3): 1 at u = 0, 0 at u = 1."""
    return torch.cos(math.pi / 2 * u) if isinstance(u, Tensor) else math.cos(math.pi / 2 * u)


def random_mask(tokens: Tensor, generator: torch.Generator) -> Tensor:
    """Boolean mask (B, N): per sample u ~ U(0, 1) (drawn first, (B,)), then ceil(gamma(u) N) positions, clamped to
    [1, N], chosen uniformly (the lowest ranks of fresh uniform scores (B, N))."""
    batch, n = tokens.shape
    u = torch.rand(batch, generator=generator, device=tokens.device)
    counts = torch.ceil(mask_ratio(u) * n).clamp(1, n)
    ranks = torch.rand(batch, n, generator=generator, device=tokens.device).argsort(1).argsort(1)
    return ranks < counts[:, None]


@dataclass
class MaskedLoss:
    """Cross-entropy over the masked positions, their argmax accuracy (detached) and the mask (B, N) drawn."""

    loss: Tensor
    accuracy: Tensor
    mask: Tensor


def training_loss(model: MaskGIT, tokens: Tensor, labels: Tensor, generator: torch.Generator) -> MaskedLoss:
    """One MaskGIT training loss: random_mask, then label dropout (labels -> null class with probability
    label_dropout, drawn after the mask), then label-smoothed cross-entropy at the masked positions only."""
    mask = random_mask(tokens, generator)
    dropped = torch.rand(labels.shape, generator=generator, device=labels.device) < model.config.label_dropout
    logits = model(tokens.masked_fill(mask, model.mask_id), labels.masked_fill(dropped, model.null_class), at=mask)
    loss = F.cross_entropy(logits, tokens[mask], label_smoothing=model.config.label_smoothing)
    accuracy = (logits.argmax(-1) == tokens[mask]).float().mean().detach()
    return MaskedLoss(loss=loss, accuracy=accuracy, mask=mask)


def masked_after_steps(n: int, steps: int) -> list[int]:
    """Masked positions left after each step: floor(N gamma((t+1)/T)), at least one fewer than before (so every step
    fixes a token) and at least 1 until the last step, which leaves none (as the official decoder)."""
    counts, masked = [], n
    for t in range(steps):
        masked = 0 if t == steps - 1 else max(1, min(masked - 1, math.floor(n * mask_ratio((t + 1) / steps))))
        counts.append(masked)
    return counts


def _gumbel(shape: torch.Size, generator: torch.Generator, device: torch.device) -> Tensor:
    """Standard Gumbel noise -log(-log U), U ~ U(0, 1) kept away from 0 and 1."""
    tiny = torch.finfo(torch.float32).tiny
    u = torch.rand(shape, generator=generator, device=device).clamp_min(tiny)
    return -torch.log((-torch.log(u)).clamp_min(tiny))


def _logits(model: MaskGIT, tokens: Tensor, labels: Tensor, config: SamplingConfig, at: Tensor) -> Tensor:
    """Conditional logits (M, K) at the positions `at`, guided when guidance_scale > 0 (cond + s (cond - uncond)),
    top-k filtered."""
    logits = model(tokens, labels, at)
    if config.guidance_scale > 0:
        uncond = model(tokens, torch.full_like(labels, model.null_class), at)
        logits = logits + config.guidance_scale * (logits - uncond)
    if config.top_k is not None and config.top_k < logits.shape[-1]:
        kth = logits.topk(config.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    return logits


@torch.no_grad()
def sample(
    model: MaskGIT,
    labels: Tensor,
    config: SamplingConfig,
    generator: torch.Generator,
    *,
    on_step: Callable[[int, Tensor], None] | None = None,
) -> Tensor:
    """Iterative decoding (Sec. 3.2) of one grid per label -> tokens (B, N), all in [0, K). `generator` lives on the
    model's device; `on_step(t, tokens)` sees a copy of the grid after each step (mask_id where still masked)."""
    training = model.training
    model.eval()
    try:
        n, device = model.config.tokens, labels.device
        tokens = torch.full((labels.shape[0], n), model.mask_id, dtype=torch.long, device=device)
        for t, left in enumerate(masked_after_steps(n, config.steps)):
            masked = tokens == model.mask_id
            logits = _logits(model, tokens, labels, config, masked)  # only masked positions draw a token
            if config.temperature > 0:
                logits = logits / config.temperature
                drawn = categorical(logits, generator)
            else:
                drawn = logits.argmax(-1)
            log_probability = logits.log_softmax(-1).gather(-1, drawn[:, None])[:, 0]
            tokens = tokens.masked_scatter(masked, drawn)
            confidence = torch.full(masked.shape, math.inf, dtype=log_probability.dtype, device=device)  # stay fixed
            confidence = confidence.masked_scatter(masked, log_probability)
            noise = config.choice_temperature * (1 - (t + 1) / config.steps)
            if noise > 0:
                confidence = confidence + noise * _gumbel(confidence.shape, generator, device)
            if left > 0:
                tokens.scatter_(1, confidence.topk(left, dim=1, largest=False).indices, model.mask_id)
            if on_step is not None:
                on_step(t, tokens.clone())
        return tokens
    finally:
        model.train(training)
