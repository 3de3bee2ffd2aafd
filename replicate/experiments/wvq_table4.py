"""Wasserstein VQ (arXiv 2506.15078 v1), Table 4 / App. G: the criterion triple when features and codes come
from the SAME distribution, N_d(0, sigma^2 I) or U_d(-zeta, zeta), K = 8192, d = 8, N = 100,000, 5 repeats.
The paper's point: E scales as sigma^2 (zeta^2) while U and C do not change, so E alone says nothing about
how well a codebook fits. Nothing is trained: each repeat draws a fresh feature set and a fresh codebook.

Choices where the paper is silent: repeat r at spread index i uses seed 100 i + r, so that repeats at different
spreads are independent draws (one seed for all spreads would make U and C identical across spreads sample by
sample, and the scale-invariance claim would hold trivially); features are drawn first, then the codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from replicate.data.synthetic import DISTRIBUTIONS, PAPER_DISTRIBUTIONS, sample
from replicate.errors import ConfigError
from replicate.metrics.codebook import evaluate_codebook
from replicate.results import Workspace
from replicate.spec import Claim, Experiment, RunResult, absolute, relative

SPREADS = (1e-4, 1e-3, 1e-2, 0.1, 1.0)  # sigma (Gaussian) or zeta (uniform)


@dataclass(frozen=True)
class Config:
    distribution: str  # "gaussian": N(0, spread^2 I); "uniform": U(-spread, spread)^d
    spread: float
    method: str = "sampled"  # the codebook is drawn from the feature distribution, not learned
    K: int = 8192
    d: int = 8
    N: int = 100_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(f"unknown distribution {self.distribution!r}; valid: {', '.join(DISTRIBUTIONS)}")
        for name in ("K", "d", "N"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.spread > 0:
            raise ConfigError(f"spread must be > 0, got {self.spread}")


def configs(scale: str) -> list[Config]:
    if scale == "smoke":
        return [
            Config(dist, spread, K=256, N=4000, seed=100 * i + r)
            for dist in PAPER_DISTRIBUTIONS
            for i, spread in enumerate((0.01, 1.0))
            for r in range(2)
        ]
    # cpu = paper: the whole table takes seconds on 2 cores
    return [
        Config(dist, spread, seed=100 * i + r)
        for dist in PAPER_DISTRIBUTIONS
        for i, spread in enumerate(SPREADS)
        for r in range(5)
    ]


def run(config: Config, workspace: Workspace) -> RunResult:
    device = workspace.device
    generator = torch.Generator().manual_seed(config.seed)
    features = sample(config.distribution, config.N, config.d, spread=config.spread, generator=generator)
    codes = sample(config.distribution, config.K, config.d, spread=config.spread, generator=generator)
    return RunResult(evaluate_codebook(features.to(device), codes.to(device)))


def data(config: Config) -> str:
    law = "N(0, s^2 I)" if config.distribution == "gaussian" else "U(-s, s)^d"
    return f"synthetic {law}, s={config.spread:g}, features and codes from the same law"


def claims(results: pd.DataFrame) -> list[Claim]:
    """E / spread^2 constant across spreads (within 3%); U and C unchanged across spreads (0.005, 1%)."""
    found = []
    for dist, rows in results.groupby("distribution"):
        means = rows.groupby("spread")[["quant_error", "utilization", "perplexity"]].mean()
        normalised = means["quant_error"] / means.index.to_series().pow(2)
        spread_e = normalised.max() / normalised.min() - 1
        spread_u = means["utilization"].max() - means["utilization"].min()
        spread_c = means["perplexity"].max() / means["perplexity"].min() - 1
        symbol = "sigma" if dist == "gaussian" else "zeta"
        found.append(
            Claim(
                f"{dist}: E is proportional to {symbol}^2",
                spread_e <= 0.03,
                f"E/{symbol}^2 ranges over {normalised.min():.4g}..{normalised.max():.4g}"
                f" ({spread_e:.2%} apart; allowed 3%)",
            )
        )
        found.append(
            Claim(
                f"{dist}: U and C do not change with {symbol}",
                spread_u <= 0.005 and spread_c <= 0.01,
                f"U range {spread_u:.4f} (allowed 0.005), C range {spread_c:.2%} (allowed 1%)",
            )
        )
    return found


EXPERIMENT = Experiment(
    name="wvq_table4",
    metrics=("quant_error", "utilization", "perplexity"),
    title="Criterion triple (E, U, C) when features and codes share one distribution",
    source="Wasserstein VQ, arXiv 2506.15078 v1, Table 4 (App. G)",
    configs=configs,
    run=run,
    data=data,
    published="wvq_table4.csv",
    keys=("distribution", "spread"),
    tolerances={"quant_error": relative(0.03), "utilization": absolute(0.005), "perplexity": relative(0.01)},
    comparable_scales=("cpu", "paper"),
    notes="cpu scale is the paper configuration (K = 8192, d = 8, N = 100,000, 5 repeats).",
    claims=claims,
)
