"""The atomic setting of Wasserstein VQ (arXiv 2506.15078, App. H): features are given, freshly sampled every
step, and only the codebook (or Linear VQ's projection) learns, by SGD with momentum 0.9.

The per-method settings are those of the official simulation code
(SimulationAnalyses/DistributionalMatchingPerspective/*/VariousVQs.py). Its losses sum the squared error over
the d dimensions and average over vectors; our losses average over all elements, so alpha = d reproduces them.
One deliberate difference: the official W2 takes eigh of the non-symmetric product S1 S2; we use the symmetric
S1^1/2 S2 S1^1/2, which has the same eigenvalues (identical when S1 is isotropic, as in every simulation).
"""

from __future__ import annotations

import torch
from torch import Tensor

from replicate.configs import MOMENTUM, atomic_settings
from replicate.quantize import Quantizer, QuantizerConfig, QuantizerOutput, build_quantizer, quantizer_config


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
