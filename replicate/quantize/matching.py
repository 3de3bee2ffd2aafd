"""What the distribution-matching quantizers share (Wasserstein VQ, sliced Wasserstein VQ, MMD VQ): vanilla VQ
losses plus gamma * a distance between the feature and codebook distributions, with gradient to the codebook only
(arXiv 2506.15078, Sec. 3.2); the codebook as one parameter in its own optimizer group (Wasserstein VQ's official
VQ-VAE code: Adam at a constant 0.02); optionally a FIFO queue of the latest features as the reference sample
(official VQ-VAE code: 65,536 vectors, initialised N(0, 0.01^2)); and a generator re-seeded per training call for
methods that draw at random (directions, subsets), so that resumed runs and every data-parallel rank draw alike.

Each method declares its own fields, with its own defaults and their sources, in its own order: the order is that
of a result's config_id, so the fields are not moved into a common base.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from replicate.distributed import all_gather_rows
from replicate.errors import ConfigError
from replicate.quantize.base import Quantizer, QuantizerConfig, check_range, init_codebook, vq_losses

INITS = ("normal", "uniform")


@dataclass(frozen=True)
class MatchingConfig(QuantizerConfig):
    """Checks of the fields every distribution-matching configuration declares: alpha, beta, gamma, codebook_lr,
    init, init_scale; and queue_size, queue_init_std where the method has a feature queue."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("alpha", "beta", "gamma"):
            check_range(name, getattr(self, name), 0.0, math.inf)
        if self.codebook_lr is not None and not self.codebook_lr > 0:
            raise ConfigError(f"codebook_lr must be > 0 or None, got {self.codebook_lr!r}")
        if self.init not in INITS:
            raise ConfigError(f"unknown codebook init {self.init!r}; valid: {', '.join(INITS)}")
        if hasattr(self, "queue_size"):  # a method with a feature queue
            if self.queue_size is not None and self.queue_size < 2:
                raise ConfigError(f"queue_size must be >= 2 or None, got {self.queue_size!r}")
            check_range("queue_init_std", self.queue_init_std, 0.0, math.inf)


class MatchingVQ(Quantizer):
    """A codebook parameter matched to the features by `distance(features)`, reported as losses[`term`]."""

    term: str  # the distance's name among the losses (and in every result's loss columns)

    def __init__(self, config: MatchingConfig) -> None:
        super().__init__(config)
        self.weight = nn.Parameter(init_codebook(config.num_codes, config.dim, config.init, config.init_scale))
        self.queued = getattr(config, "queue_size", None) is not None
        if self.queued:
            self.register_buffer("queue", torch.randn(config.queue_size, config.dim) * config.queue_init_std)
            self.register_buffer("queue_next", torch.zeros((), dtype=torch.long))

    def codebook(self) -> Tensor:
        return self.weight

    def distance(self, features: Tensor) -> Tensor:
        """The method's distance between (detached) features (n, d) and the codebook, gradient to the codebook."""
        raise NotImplementedError

    def losses(self, flat: Tensor, codes: Tensor) -> dict[str, Tensor]:
        if self.training and self.queued:
            push_fifo(self.queue, self.queue_next, flat.detach())
            reference = self.queue
        else:  # evaluation (and the atomic setting) use the current features, as the official code does
            reference = flat
        losses = vq_losses(flat, codes, alpha=self.config.alpha, beta=self.config.beta)
        losses[self.term] = self.config.gamma * self.distance(reference)
        return losses

    def add_generator(self) -> None:
        """Give the quantizer its own random generator and the count of training calls that drew (a buffer)."""
        self.register_buffer("draws", torch.zeros((), dtype=torch.long))
        self.generator = torch.Generator()

    def reseed(self) -> torch.Generator:
        """The generator, seeded with `seed` + the count of training calls that drew; a training call counts."""
        self.generator.manual_seed(self.config.seed + int(self.draws))
        if self.training:
            self.draws += 1
        return self.generator

    def param_groups(self, lr: float) -> list[dict]:
        """The codebook in its own group, at `codebook_lr` (None: the model's learning rate)."""
        return [{"params": [self.weight], "lr": lr if self.config.codebook_lr is None else self.config.codebook_lr}]


@torch.no_grad()
def push_fifo(queue: Tensor, position: Tensor, features: Tensor) -> None:
    """Write every rank's features into the FIFO `queue` in place, overwriting the oldest rows from `position` (a 0-d
    long buffer, advanced): Wasserstein VQ's feature queue, also the sliced W2 quantizer's."""
    features = all_gather_rows(features)  # data parallel: every rank queues every rank's features
    size = queue.shape[0]
    features = features[-size:].to(queue.dtype)
    positions = (position + torch.arange(len(features), device=features.device)) % size
    queue[positions] = features
    position.copy_((position + len(features)) % size)
