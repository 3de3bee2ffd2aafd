"""A raster-order, class-conditional, GPT-style autoregressive prior on a single-scale tokenizer's token grid, after
LlamaGen (Sun et al. 2024, "Autoregressive Model Beats Diffusion: Llama for Scalable Image Generation", arXiv
2406.06525): the generator Wasserstein VQ's open question 3 names ("a standard autoregressive transformer (e.g.
GPT-style)") and which Deferred Quantization's later version (arXiv 2603.17052 V4) adds to its generators.

The sequence is [class, t_0, ..., t_{N-2}]: one class-token prefix, then the grid row-major; position i predicts token
t_i, trained by next-token cross-entropy over all N tokens at once (teacher forcing, causal attention). Blocks follow
LlamaGen's Llama design: pre-norm RMSNorm, attention with a 2-D rotary position embedding (each head's first half of
channel pairs turns with the input token's row, the second half with its column; the class token does not turn),
SwiGLU MLP, no biases, weights N(0, 0.02) and the output head at zero (official initialize_weights).
Classifier-free guidance: in training a label becomes the null class with probability label_dropout; in sampling the
logits are uncond + s (cond - uncond), LlamaGen's form, so s = 1 is the conditional model. Tokens are drawn one at a
time (temperature, then top-k, then top-p: models/var.py's filter and models/sampling.py's sampler), each step reading
the keys and values of the positions before it from a KV cache.

Size: configs.LLAMAGEN_B, LlamaGen's smallest published class-conditional model, LlamaGen-B: 12 layers, width 768,
12 heads, ~111M parameters (K = 16,384, 16 x 16 tokens); its training (official train_c2i.py): AdamW, lr 1e-4, betas
(0.9, 0.95), weight decay 0.05, gradient norm clipped to 1.0, batch 256, 300 epochs; sampling (README): cfg 2.0.
Not kept: the official bf16 mixed precision (fp32 here) and its optional EMA (off by default there too).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from replicate.configs import AutoregressiveConfig
from replicate.configs import AutoregressiveSampling as SamplingConfig
from replicate.errors import ConfigError
from replicate.models.sampling import draw


def rotary_angles(grid: int, head_dim: int, base: float) -> Tensor:
    """(N, head_dim / 2) angle of each channel pair at each sequence position: 0 for the class token (position 0),
    (row f_0, .., row f_{q-1}, col f_0, .., col f_{q-1}) for the token at grid index p - 1 read at position p, with
    f_i = base^(-i / q) and q = head_dim / 4 (LlamaGen's 2-D RoPE frequencies)."""
    quarter = head_dim // 4
    freqs = base ** (-torch.arange(quarter, dtype=torch.float64) / quarter)
    index = torch.arange(grid * grid - 1)  # the grid positions of the inputs t_0 .. t_{N-2}
    rows, cols = (index // grid).to(torch.float64), (index % grid).to(torch.float64)
    angles = torch.cat([rows[:, None] * freqs, cols[:, None] * freqs], dim=1)
    return torch.cat([angles.new_zeros(1, 2 * quarter), angles]).float()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x (B, H, L, D) with each channel pair (x_2i, x_2i+1) turned by its angle at each position; cos, sin (L, D/2)."""
    pairs = x.unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    return torch.stack([even * cos - odd * sin, odd * cos + even * sin], dim=-1).flatten(-2)


@dataclass
class KVCache:
    """Each block's keys and values (B, H, N, D) of the positions read so far (the first `length`)."""

    slots: list[tuple[Tensor, Tensor]]
    length: int = 0


class Block(nn.Module):
    """Llama block: x + Attention(RMSNorm x), then x + SwiGLU(RMSNorm x), dropout on each branch's output."""

    def __init__(self, config: AutoregressiveConfig) -> None:
        super().__init__()
        width, multiple = config.width, config.ffn_multiple_of
        hidden = -(-int(8 * width / 3) // multiple) * multiple  # official: 2/3 of 4 w, rounded up to the multiple
        self.heads = config.heads
        self.attention_norm = nn.RMSNorm(width, eps=config.norm_eps)
        self.mlp_norm = nn.RMSNorm(width, eps=config.norm_eps)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        self.gate = nn.Linear(width, hidden, bias=False)
        self.up = nn.Linear(width, hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, slot: tuple[Tensor, Tensor] | None, start: int) -> Tensor:
        x = x + self.drop(self.out(self._attend(self.attention_norm(x), cos, sin, slot, start)))
        h = self.mlp_norm(x)
        return x + self.drop(self.down(F.silu(self.gate(h)) * self.up(h)))

    def _attend(self, x: Tensor, cos: Tensor, sin: Tensor, slot: tuple[Tensor, Tensor] | None, start: int) -> Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if slot is None:  # the whole sequence from position 0
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # one new position at `start`: it reads itself and every cached position before it
            keys, values = slot
            keys[:, :, start : start + length], values[:, :, start : start + length] = k, v
            out = F.scaled_dot_product_attention(q, keys[:, :, : start + length], values[:, :, : start + length])
        return out.transpose(1, 2).reshape(batch, length, width)


class Autoregressive(nn.Module):
    """forward(tokens (B, n), labels (B,)) -> logits (B, min(n + 1, N), K), 0 <= n <= N: row i is the law of token i
    given the class and tokens < i (`null_class` = unconditional); training passes the whole grid (its last token is
    then read by no position). Sampling reads one position at a time through `start` and `advance` with a KVCache."""

    def __init__(self, config: AutoregressiveConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embed = nn.Embedding(config.vocab_size, config.width)
        self.class_embed = nn.Embedding(config.num_classes + 1, config.width)  # the last entry is the null class
        self.drop = nn.Dropout(config.dropout)  # official token_dropout_p, on the input embeddings
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.RMSNorm(config.width, eps=config.norm_eps)
        self.head = nn.Linear(config.width, config.vocab_size, bias=False)
        angles = rotary_angles(config.grid, config.width // config.heads, config.rope_base)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        for module in self.modules():  # official initialize_weights: N(0, 0.02), then the output head at zero
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
        nn.init.zeros_(self.head.weight)

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    def forward(self, tokens: Tensor, labels: Tensor) -> Tensor:
        n = self.config.tokens
        if tokens.ndim != 2 or tokens.shape[1] > n:
            raise ConfigError(f"the autoregressive model expects tokens (B, <= {n}), got {tuple(tokens.shape)}")
        x = torch.cat([self.class_embed(labels)[:, None], self.token_embed(tokens[:, : n - 1])], dim=1)
        return self._run(self.drop(x), None)

    def new_cache(self, batch: int) -> KVCache:
        """An empty cache for `batch` sequences, room for all N positions."""
        shape = (batch, self.config.heads, self.config.tokens, self.config.width // self.config.heads)
        slots = [(self.cos.new_empty(shape), self.cos.new_empty(shape)) for _ in self.blocks]
        return KVCache(slots)

    def start(self, labels: Tensor, cache: KVCache) -> Tensor:
        """Reads the class token into an empty cache -> logits (B, K) of token 0."""
        if cache.length != 0:
            raise ConfigError(f"start needs an empty cache, this one holds {cache.length} positions")
        return self._run(self.drop(self.class_embed(labels)[:, None]), cache)[:, 0]

    def advance(self, tokens: Tensor, cache: KVCache) -> Tensor:
        """Reads token i - 1 (B,) after the i positions in the cache -> logits (B, K) of token i."""
        if not 0 < cache.length < self.config.tokens:
            raise ConfigError(f"advance needs a started cache with room, it holds {cache.length} positions")
        return self._run(self.drop(self.token_embed(tokens)[:, None]), cache)[:, 0]

    def _run(self, x: Tensor, cache: KVCache | None) -> Tensor:
        start = 0 if cache is None else cache.length
        cos, sin = self.cos[start : start + x.shape[1]], self.sin[start : start + x.shape[1]]
        slots = [None] * len(self.blocks) if cache is None else cache.slots
        for block, slot in zip(self.blocks, slots, strict=True):
            x = block(x, cos, sin, slot, start)
        if cache is not None:
            cache.length += x.shape[1]
        return self.head(self.norm(x))


@dataclass(frozen=True)
class NextTokenLoss:
    loss: Tensor  # mean cross-entropy over the B x N tokens, with gradient
    accuracy: Tensor  # top-1 accuracy over the B x N tokens, detached


def training_loss(model: Autoregressive, tokens: Tensor, labels: Tensor, generator: torch.Generator) -> NextTokenLoss:
    """Teacher-forced next-token cross-entropy of every token of the grids (B, N); each label becomes the null class
    with probability label_dropout, drawn from `generator` (on any device). No label smoothing (LlamaGen has none)."""
    config = model.config
    drop = torch.rand(labels.shape[0], generator=generator, device=generator.device).to(labels.device)
    labels = torch.where(drop < config.label_dropout, config.num_classes, labels)
    logits = model(tokens, labels)
    loss = F.cross_entropy(logits.flatten(0, 1), tokens.flatten())
    accuracy = (logits.detach().argmax(-1) == tokens).float().mean()
    return NextTokenLoss(loss, accuracy)


def guide(logits: Tensor, scale: float) -> Tensor:
    """Logits of 2B rows, the conditional then the unconditional ones -> uncond + scale (cond - uncond), (B, ...)."""
    cond, uncond = logits.chunk(2)
    return uncond + scale * (cond - uncond)


def guided_logits(model: Autoregressive, tokens: Tensor, labels: Tensor, scale: float) -> Tensor:
    """forward's logits under classifier-free guidance at `scale`, the conditional and null rows in one batch."""
    null = torch.full_like(labels, model.null_class)
    return guide(model(torch.cat([tokens, tokens]), torch.cat([labels, null])), scale)


def _draw(logits: Tensor, config: SamplingConfig, generator: torch.Generator) -> Tensor:
    return logits.argmax(-1) if config.temperature == 0 else draw(logits, config, generator)


@torch.no_grad()
def sample(
    model: Autoregressive, labels: Tensor, config: SamplingConfig, generator: torch.Generator, *, cache: bool = True
) -> Tensor:
    """One grid per label -> tokens (B, N) in [0, K), drawn token by token in raster order; `generator` on the model's
    device. cache=False recomputes the whole prefix for every token (the reference the cache is tested against)."""
    training = model.training
    model.eval()
    try:
        guided = config.guidance_scale != 1  # at 1 the guided logits are the conditional ones: no null-class rows
        rows = torch.cat([labels, torch.full_like(labels, model.null_class)]) if guided else labels
        kv = model.new_cache(len(rows)) if cache else None
        drawn = labels.new_zeros(len(labels), 0)
        for i in range(model.config.tokens):
            if kv is None:
                logits = model(drawn.repeat(2, 1) if guided else drawn, rows)[:, -1]
            elif i == 0:
                logits = model.start(rows, kv)
            else:
                logits = model.advance(drawn[:, -1].repeat(2) if guided else drawn[:, -1], kv)
            token = _draw(guide(logits, config.guidance_scale) if guided else logits, config, generator)
            drawn = torch.cat([drawn, token[:, None]], dim=1)
        return drawn
    finally:
        model.train(training)
