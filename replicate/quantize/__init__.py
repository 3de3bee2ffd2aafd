"""The five quantizers of the Wasserstein VQ paper, two that go beyond its Gaussian closed form (MMD, sliced W2) and
one without a learned codebook (FSQ), behind one interface, and a registry to build them by name. As a library
(examples/wasserstein_autoencoder.py):

    quantizer = build_quantizer(quantizer_config("wasserstein", 512, 8, queue_size=8192))  # K, d, changed settings
    out = quantizer(features)          # features (..., d), channels last
    out.quantized                      # straight-through: the codes' values, the features' gradient
    out.indices, out.losses, out.loss  # code indices (...,), loss terms by name (weighted), their sum
    optimizer = torch.optim.Adam([{"params": model_params, "lr": lr}, *quantizer.param_groups(lr)])
    quantizer.update(features.detach(), out)  # after optimizer.step(): EMA averages, re-seeding (else nothing)
"""

from __future__ import annotations

import dataclasses

from replicate.errors import ConfigError, unknown_name
from replicate.quantize.base import Quantizer, QuantizerConfig, QuantizerOutput, nearest_code
from replicate.quantize.ema import EMAVQ, EMAConfig
from replicate.quantize.fsq import FSQ, FSQConfig
from replicate.quantize.linear import LinearConfig, LinearVQ
from replicate.quantize.mmd import MMDVQ, MMDConfig
from replicate.quantize.multiscale import MultiScaleQuantizer
from replicate.quantize.online import OnlineConfig, OnlineVQ
from replicate.quantize.sliced import SlicedConfig, SlicedWassersteinVQ
from replicate.quantize.vanilla import VanillaConfig, VanillaVQ
from replicate.quantize.var import VARQuantizer
from replicate.quantize.wasserstein import WassersteinConfig, WassersteinVQ

# method name -> (quantizer class, its config class); the names are the `method` column of every result table
QUANTIZERS: dict[str, tuple[type[Quantizer], type[QuantizerConfig]]] = {
    "vanilla": (VanillaVQ, VanillaConfig),
    "ema": (EMAVQ, EMAConfig),
    "online": (OnlineVQ, OnlineConfig),
    "linear": (LinearVQ, LinearConfig),
    "wasserstein": (WassersteinVQ, WassersteinConfig),
    "mmd": (MMDVQ, MMDConfig),  # beyond the papers (issue 14): the later revision's MMD loss
    "sliced_wasserstein": (SlicedWassersteinVQ, SlicedConfig),  # beyond the papers: sliced W2
    "fsq": (FSQ, FSQConfig),  # beyond the papers (issue 37): finite scalar quantization, a fixed grid
}
# the quantizers with a codebook of K learned vectors (nearest-code search, k-means initialisation, an identity
# straight-through gradient): all but FSQ, whose grid is fixed by its levels and whose K is its paper's Table 1
CODEBOOK_QUANTIZERS = tuple(name for name in QUANTIZERS if name != "fsq")
PAPER_METHODS = ("vanilla", "ema", "online", "linear", "wasserstein")  # the five of Wasserstein VQ's Fig. 12
# multi-scale residual quantizers around one of the above (a tokenizer's `multiscale_quantizer`): Wasserstein VQ's
# v1 code (its Table 3) and VAR's own (Deferred Quantization's VAR tokenizer)
MULTISCALE_QUANTIZERS: dict[str, type[MultiScaleQuantizer]] = {
    "wasserstein_v1": MultiScaleQuantizer,
    "var": VARQuantizer,
}


def quantizer_config(method: str, num_codes: int, dim: int, **settings) -> QuantizerConfig:
    """The method's configuration: official defaults, with `settings` replacing named fields."""
    if method not in QUANTIZERS:
        raise unknown_name("method", method, QUANTIZERS)
    config_class = QUANTIZERS[method][1]
    # settings enter the construction, so that validation sees them (FSQ's levels for a K outside its Table 1)
    valid = {f.name for f in dataclasses.fields(config_class)}
    unknown = set(settings) - valid
    if unknown:
        raise ConfigError(f"unknown {config_class.__name__} field(s) {sorted(unknown)}; valid: {sorted(valid)}")
    return config_class(**{"num_codes": num_codes, "dim": dim, **settings})


def build_quantizer(config: QuantizerConfig) -> Quantizer:
    """The quantizer for a configuration made by `quantizer_config`."""
    for quantizer_class, config_class in QUANTIZERS.values():
        if type(config) is config_class:
            return quantizer_class(config)
    raise ConfigError(f"no quantizer for configuration type {type(config).__name__}")


__all__ = [
    "MULTISCALE_QUANTIZERS",
    "PAPER_METHODS",
    "QUANTIZERS",
    "Quantizer",
    "QuantizerConfig",
    "QuantizerOutput",
    "build_quantizer",
    "nearest_code",
    "quantizer_config",
]
