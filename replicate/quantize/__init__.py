"""The five quantizers of the Wasserstein VQ paper behind one interface, and a registry to build them by name."""

from __future__ import annotations

from replicate.errors import ConfigError, unknown_name
from replicate.quantize.base import Quantizer, QuantizerConfig, QuantizerOutput, nearest_code
from replicate.quantize.ema import EMAVQ, EMAConfig
from replicate.quantize.linear import LinearConfig, LinearVQ
from replicate.quantize.online import OnlineConfig, OnlineVQ
from replicate.quantize.vanilla import VanillaConfig, VanillaVQ
from replicate.quantize.wasserstein import WassersteinConfig, WassersteinVQ

# method name -> (quantizer class, its config class); the names are the `method` column of every result table
QUANTIZERS: dict[str, tuple[type[Quantizer], type[QuantizerConfig]]] = {
    "vanilla": (VanillaVQ, VanillaConfig),
    "ema": (EMAVQ, EMAConfig),
    "online": (OnlineVQ, OnlineConfig),
    "linear": (LinearVQ, LinearConfig),
    "wasserstein": (WassersteinVQ, WassersteinConfig),
}


def quantizer_config(method: str, num_codes: int, dim: int, **settings) -> QuantizerConfig:
    """The method's configuration: official defaults, with `settings` replacing named fields."""
    if method not in QUANTIZERS:
        raise unknown_name("method", method, QUANTIZERS)
    config_class = QUANTIZERS[method][1]
    return config_class(num_codes=num_codes, dim=dim).replace(**settings)


def build_quantizer(config: QuantizerConfig) -> Quantizer:
    """The quantizer for a configuration made by `quantizer_config`."""
    for quantizer_class, config_class in QUANTIZERS.values():
        if type(config) is config_class:
            return quantizer_class(config)
    raise ConfigError(f"no quantizer for configuration type {type(config).__name__}")


__all__ = [
    "QUANTIZERS",
    "Quantizer",
    "QuantizerOutput",
    "build_quantizer",
    "nearest_code",
    "quantizer_config",
]
