"""The atomic setting of Wasserstein VQ (arXiv 2506.15078, App. H): features are given, freshly sampled every
step, and only the codebook (or Linear VQ's projection) learns, by SGD with momentum 0.9.

The per-method settings are those of the official simulation code
(SimulationAnalyses/DistributionalMatchingPerspective/*/VariousVQs.py). Its losses sum the squared error over
the d dimensions and average over vectors; our losses average over all elements, so alpha = d reproduces them.
One deliberate difference: the official W2 takes eigh of the non-symmetric product S1 S2; we use the symmetric
S1^1/2 S2 S1^1/2, which has the same eigenvalues (identical when S1 is isotropic, as in every simulation).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from replicate.quantize import Quantizer, QuantizerConfig, QuantizerOutput, build_quantizer, quantizer_config

MOMENTUM = 0.9  # official: SGD(momentum=0.9) for every gradient-trained method


def atomic_settings(method: str, dim: int) -> tuple[dict, float | None]:
    """(quantizer settings, SGD learning rate or None for no optimizer) of the official atomic code."""
    per_vector = float(dim)  # alpha = d: squared error summed over d, as the official loss
    settings = {
        "vanilla": ({"alpha": per_vector, "beta": 0.0}, 1.0),
        "ema": ({"beta": 0.0, "decay": 0.9}, None),
        "online": ({"alpha": per_vector, "beta": 0.0, "decay": 0.9, "anchor": "closest"}, 3.0),
        "linear": ({"alpha": per_vector, "beta": 0.0}, 0.02),
        # loss = 0.1 * codebook loss + 10 * W2 on the current batch, biased covariances, no scale normalisation
        "wasserstein": (
            {
                "alpha": 0.1 * per_vector,
                "beta": 0.0,
                "gamma": 10.0,
                "queue_size": None,
                "normalize_scale": False,
                "unbiased_covariance": False,
                "codebook_lr": None,
            },
            3.0,
        ),
        # Beyond the papers (no official code): Wasserstein VQ's loss weights with its term replaced, and SGD steps
        # that give the same initial pull on the codebook mean. Measured 2026-11-25 (K = 4,096 codes N(0, I), 4,096
        # features N(1, I), d = 8, gamma 1): the mean gradient per code is 2.44e-4 for W2, 8.6e-5 for sliced W2
        # (2.8 = sqrt(8) times less: a random direction sees 1/d of the squared shift) and 7.5e-5 for MMD^2 (3.3 times
        # less); so lr 3 sqrt(d) and 10. MMD keeps 4,096 features and codes a step (its K x K kernel: quantize/mmd.py).
        "mmd": (
            {
                "alpha": 0.1 * per_vector,
                "beta": 0.0,
                "gamma": 10.0,
                "codebook_lr": None,
                "max_features": 4096,
                "max_codes": 4096,
            },
            10.0,
        ),
        "sliced_wasserstein": (
            {"alpha": 0.1 * per_vector, "beta": 0.0, "gamma": 10.0, "queue_size": None, "codebook_lr": None},
            3.0 * math.sqrt(dim),
        ),
    }
    quantizer_config(method, 1, 1)  # an unknown method fails here, naming the valid ones
    return settings[method]


def atomic_quantizer(
    method: str, num_codes: int, dim: int, *, init: str, init_scale: float, device: torch.device | str = "cpu"
) -> tuple[Quantizer, torch.optim.Optimizer | None]:
    """The method's official atomic quantizer with codes initialised as `init` (normal / uniform) and its SGD."""
    settings, lr = atomic_settings(method, dim)
    config = quantizer_config(method, num_codes, dim, init=init, init_scale=init_scale, **settings)
    return build_atomic(config, lr, MOMENTUM, device)


def build_atomic(
    config: QuantizerConfig, lr: float | None, momentum: float, device: torch.device | str = "cpu"
) -> tuple[Quantizer, torch.optim.Optimizer | None]:
    """A quantizer in training mode and its SGD optimizer (None where the method learns without gradients)."""
    quantizer = build_quantizer(config).to(device).train()
    if lr is None:
        return quantizer, None
    params = [p for group in quantizer.param_groups(lr) for p in group["params"]]
    return quantizer, torch.optim.SGD(params, lr=lr, momentum=momentum)


def atomic_step(quantizer: Quantizer, optimizer: torch.optim.Optimizer | None, features: Tensor) -> QuantizerOutput:
    """One training step on a batch of features: gradient step (if any), then the non-gradient update. A method
    with both (Online VQ) first reassigns the features with the stepped codebook, as the official simulation
    (VariousVQs.py) does before its usage average; the VQ-VAE order (replicate/quantize/online.py) differs."""
    out = quantizer(features)
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        if type(quantizer).update is not Quantizer.update:
            with torch.no_grad():
                out = quantizer(features)
    quantizer.update(features, out)
    return out
