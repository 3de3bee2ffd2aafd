"""Named tokenizer configurations for `python -m replicate train --config NAME --scale S`: plain functions of
the scale, the paper's settings at `paper`, every reduction written out at `cpu` and `smoke`."""

from __future__ import annotations

import functools

from replicate.errors import ConfigError, unknown_name
from replicate.experiments.spec import SCALES
from replicate.quantize import QUANTIZERS
from replicate.train.tokenizer import TokenizerTraining


def cifar10(method: str, scale: str) -> TokenizerTraining:
    """Wasserstein VQ Table 6 row: 32 px, K = 8192, d = 8, channels 64, [1, 1, 2], batch 128, lr 5e-5, 50
    epochs (Table 5). cpu: the CIFAR-10 JPEG copy, one epoch. smoke: a narrow model on 512 images."""
    if scale == "paper":
        return TokenizerTraining("cifar10", 32, method, 8192, epochs=50)
    if scale == "cpu":
        return TokenizerTraining("cifar10-jpeg", 32, method, 8192, epochs=1)
    return TokenizerTraining(
        "cifar10-jpeg",
        32,
        method,
        256,
        channels=32,
        channel_mult=(1, 2),
        epochs=1,
        batch_size=32,
        max_train_images=512,
        max_eval_images=128,
        checkpoint_every=4,
    )


TRAIN_CONFIGS = {f"cifar10-{method}": functools.partial(cifar10, method) for method in QUANTIZERS}


def train_config(name: str, scale: str) -> TokenizerTraining:
    if name not in TRAIN_CONFIGS:
        raise unknown_name("training configuration", name, TRAIN_CONFIGS)
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    return TRAIN_CONFIGS[name](scale)
