"""The proxy feature network of replicate.metrics.diversity.proxy_fidelity: a small CNN classifier trained inside the
project on the same dataset's training split, since the Inception weights of FID cannot be had on every machine.

Its penultimate features (global average pool of the last stage) stand in for Inception's pool features; every
number computed from them is a proxy, comparable only between runs that share one trained proxy (same config and
data), never with a published FID. Training is deterministic given the seed: seeded initialisation and data order,
no ops with a known nondeterministic backward (bit-exact on CPU, tested; on CUDA cuDNN is asked for deterministic
algorithms while training, untested here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from replicate.errors import ConfigError

STRIDES = (1, 2, 2, 2)  # our choice: 32 px inputs -> 32, 16, 8, 4 px stages


@dataclass(frozen=True)
class ProxyClassifierConfig:
    num_classes: int = 10  # our choice: CIFAR-10, the dataset it is meant for
    resolution: int = 32  # our choice: inputs are resized to 32 px (bilinear, antialiased) whatever their size
    width: int = 128  # our choice: channels of the last stage = feature dimension (stages width/4, /2, 1, 1)
    epochs: int = 4  # our choice: a few CPU minutes on CIFAR-10
    batch_size: int = 128  # our choice
    lr: float = 2e-3  # our choice: Adam, cosine-annealed to 0 over all steps
    seed: int = 0  # our choice

    def __post_init__(self) -> None:
        for name in ("num_classes", "resolution", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.width < 4 or self.width % 4:
            raise ConfigError(f"width must be a positive multiple of 4, got {self.width}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")


def conv_stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """3 x 3 convolution (no bias: BatchNorm follows), BatchNorm, ReLU; stride 2 halves the resolution."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ProxyClassifier(nn.Module):
    """Four conv stages (32 -> 32, 16, 8, 4 px at width 128), global average pooling, a linear classifier."""

    def __init__(self, config: ProxyClassifierConfig) -> None:
        super().__init__()
        self.resolution = config.resolution
        widths = (config.width // 4, config.width // 2, config.width, config.width)
        stages = zip((3, *widths[:-1]), widths, STRIDES, strict=True)
        self.stages = nn.Sequential(*(conv_stage(c_in, c_out, stride) for c_in, c_out, stride in stages))
        self.head = nn.Linear(config.width, config.num_classes)

    def features(self, images: Tensor) -> Tensor:
        """(N, width) penultimate features of (N, 3, H, W) images in [-1, 1]."""
        if images.shape[-2:] != (self.resolution, self.resolution):
            images = F.interpolate(images, size=self.resolution, mode="bilinear", antialias=True, align_corners=False)
        return self.stages(images).mean((2, 3))  # a mean, not AdaptiveAvgPool2d, whose CUDA backward is not exact

    def forward(self, images: Tensor) -> Tensor:
        """(N, num_classes) logits."""
        return self.head(self.features(images))


class ProxyTraining(NamedTuple):
    model: ProxyClassifier  # in eval mode, on the training device
    test_accuracy: float  # top-1 on test_data, in [0, 1]


@torch.no_grad()
def accuracy(model: ProxyClassifier, data: Dataset, batch_size: int, device: torch.device | str) -> float:
    """Top-1 accuracy of the model (eval mode) on (image, label) items."""
    model.eval()
    correct = total = 0
    for images, labels in DataLoader(data, batch_size=batch_size):
        predictions = model(images.to(device)).argmax(1).cpu()
        correct += int((predictions == torch.as_tensor(labels)).sum())
        total += len(labels)
    return correct / max(total, 1)


def train_proxy(
    config: ProxyClassifierConfig, train_data: Dataset, test_data: Dataset, device: torch.device | str
) -> ProxyTraining:
    """Train the proxy with cross-entropy (Adam, cosine learning rate) on (image in [-1, 1], label) items."""
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's global RNG
        torch.manual_seed(config.seed)
        model = ProxyClassifier(config).to(device)
    order = torch.Generator().manual_seed(config.seed)  # the data order, one permutation per epoch
    loader = DataLoader(train_data, batch_size=config.batch_size, shuffle=True, generator=order)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * len(loader))
    cudnn = torch.backends.cudnn  # deterministic convolutions while training; the flags are restored afterwards
    with cudnn.flags(enabled=cudnn.enabled, benchmark=False, deterministic=True, allow_tf32=cudnn.allow_tf32):
        for epoch in range(config.epochs):
            if hasattr(train_data, "set_epoch"):  # ImageDataset's seeded crops depend on the epoch
                train_data.set_epoch(epoch)
            model.train()
            for images, labels in loader:
                loss = F.cross_entropy(model(images.to(device)), torch.as_tensor(labels).to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return ProxyTraining(model.eval(), accuracy(model, test_data, config.batch_size, device))


@torch.no_grad()
def features_of(model: ProxyClassifier, images: Tensor, batch_size: int) -> Tensor:
    """(N, width) float32 features on the CPU of (N, 3, H, W) images in [-1, 1], in eval mode, by batches."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model.features(batch.to(device)).float().cpu() for batch in images.split(batch_size)])


@torch.no_grad()
def class_probabilities(model: ProxyClassifier, features: Tensor) -> Tensor:
    """(N, num_classes) float64 softmax p(y|x) on the CPU from features_of's (N, width) features: the same forward
    pass serves the feature statistics and the class predictions."""
    device = next(model.parameters()).device
    return model.head(features.to(device)).double().softmax(1).cpu()
