"""Named tokenizer configurations for `python -m replicate train --config NAME --scale S`: plain functions of
the scale, the paper's settings at `paper`, every reduction written out at `cpu` and `smoke`."""

from __future__ import annotations

import dataclasses
import functools

from replicate.configs import TokenizerTraining, VQVAEConfig, smoke_scale
from replicate.errors import ConfigError, unknown_name
from replicate.quantize import CODEBOOK_QUANTIZERS
from replicate.spec import SCALES


def cifar10(method: str, scale: str) -> TokenizerTraining:
    """Wasserstein VQ Table 6 row: 32 px, K = 8192, d = 8, channels 64, [1, 1, 2], batch 128, lr 5e-5, 50
    epochs (Table 5). cpu: CIFAR-10's original pixels (the lossless copy), one epoch. smoke: configs.smoke_scale."""
    paper = TokenizerTraining("cifar10", method, 8192, VQVAEConfig(32), epochs=50)
    if scale == "paper":
        return paper
    if scale == "cpu":
        return dataclasses.replace(paper, dataset="cifar10-lossless", epochs=1)
    return smoke_scale(paper)


TRAIN_CONFIGS = {f"cifar10-{method}": functools.partial(cifar10, method) for method in CODEBOOK_QUANTIZERS}


def train_config(name: str, scale: str) -> TokenizerTraining:
    if name not in TRAIN_CONFIGS:
        raise unknown_name("training configuration", name, TRAIN_CONFIGS)
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    return TRAIN_CONFIGS[name](scale)
