"""Wasserstein VQ (arXiv 2506.15078 v1), Figs. 10 and 11 (App. F): how far the codebook distribution is from
the feature distribution decides (E, U, C). Fig. 10: features N_d(0, I); codes N_d(mu 1, I) ("shift", mu in
0..2.5) or N_d(0, sigma^2 I) ("scale", sigma in 1..6). Fig. 11: features U_d(-1, 1); codes U_d(nu - 1, nu + 1)
or U_d(-zeta, zeta). Each family is swept over K in {128..16384}, d in {2..256} and N in {10k..1M} with the
others at N = 200,000, K = 1024, d = 32; 5 repeats per point; 18 panels per figure. Nothing is trained.

Seeds follow the official protocol (digest Sec. 4): in the K sweep one feature set is drawn once and reused
for every point; in the d and N sweeps the features are redrawn for every (value, repeat) and shared across x;
the codebook is fresh for every point. `feature_seed` and `seed` (the codebook's) are columns of the results.
The official scripts also store the squared Frechet distance; we store W2 (its square root) as `w2_distance`.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from replicate.data.synthetic import sample
from replicate.errors import ConfigError
from replicate.metrics.codebook import evaluate_codebook
from replicate.quantize.gaussian import gaussian_fit, gaussian_w2
from replicate.report.plotting import figure
from replicate.results import Workspace
from replicate.spec import Claim, Experiment, Figures, RunResult, Tables

FAMILIES = {"shift": (0.0, 0.5, 1.0, 1.5, 2.0, 2.5), "scale": (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)}
SWEEPS = {
    "K": (128, 256, 512, 1024, 2048, 4096, 8192, 16384),
    "d": (2, 4, 8, 16, 32, 64, 128, 256),
    "N": (10_000, 50_000, 100_000, 200_000, 300_000, 500_000, 800_000, 1_000_000),
}
DEFAULTS = {"K": 1024, "d": 32, "N": 200_000}
REPEATS = 5
# the paper's curve colours (RGB / 255), one per sweep value
COLOURS = [
    (0, 63, 92),
    (47, 75, 124),
    (102, 81, 145),
    (160, 81, 149),
    (212, 80, 135),
    (249, 93, 106),
    (255, 124, 67),
    (255, 166, 0),
]
SYMBOLS = {"gaussian": {"shift": "mu", "scale": "sigma"}, "uniform": {"shift": "nu", "scale": "zeta"}}


@dataclass(frozen=True)
class Config:
    distribution: str  # "gaussian" (Fig. 10) or "uniform" (Fig. 11)
    family: str  # "shift": codes moved by x along the all-ones direction; "scale": codes x times wider
    x: float
    sweep: str  # the quantity this row's curve varies: "K", "d" or "N"
    K: int
    d: int
    N: int
    repeat: int
    feature_seed: int
    seed: int  # the codebook's seed
    method: str = "sampled"

    def __post_init__(self) -> None:
        if self.family not in FAMILIES or self.sweep not in SWEEPS:
            raise ConfigError(f"family must be one of {sorted(FAMILIES)} and sweep one of {sorted(SWEEPS)}")
        for name in ("K", "d", "N"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.family == "scale" and not self.x > 0:
            raise ConfigError(f"a scale x must be > 0, got {self.x}")


def grid(distribution: str, families: dict, sweeps: dict, defaults: dict, repeats: int) -> list[Config]:
    """Every point of one figure, with the official seed protocol."""
    configs = []
    for family, xs in families.items():
        for sweep, values in sweeps.items():
            for (value_index, value), repeat in itertools.product(enumerate(values), range(repeats)):
                sizes = {**defaults, sweep: value}
                feature_seed = 1 if sweep == "K" else 1000 * (1 + list(SWEEPS).index(sweep)) + 10 * value_index + repeat
                for x in xs:
                    seed = 100_000 * (1 + list(FAMILIES).index(family)) + len(configs)
                    configs.append(
                        Config(
                            distribution, family, x, sweep, **sizes, repeat=repeat, feature_seed=feature_seed, seed=seed
                        )
                    )
    return configs


def configs_for(distribution: str):
    def configs(scale: str) -> list[Config]:
        if scale == "smoke":
            families = {family: xs[::3] for family, xs in FAMILIES.items()}
            sweeps = {"K": (64, 256), "d": (2, 8), "N": (2000, 4000)}
            return grid(distribution, families, sweeps, {"K": 128, "d": 4, "N": 3000}, repeats=2)
        return grid(distribution, FAMILIES, SWEEPS, DEFAULTS, REPEATS)  # cpu = paper: minutes on 2 cores

    return configs


def draw_codes(config: Config, generator: torch.Generator) -> torch.Tensor:
    if config.family == "shift":
        return sample(config.distribution, config.K, config.d, center=config.x, generator=generator)
    return sample(config.distribution, config.K, config.d, spread=config.x, generator=generator)


@functools.lru_cache(maxsize=1)
def feature_set(distribution: str, n: int, d: int, seed: int, device: torch.device) -> tuple[torch.Tensor, tuple]:
    """The features and their Gaussian fit; consecutive configurations share them (x varies fastest)."""
    features = sample(distribution, n, d, generator=torch.Generator().manual_seed(seed)).to(device)
    return features, gaussian_fit(features, unbiased=True)


def run(config: Config, workspace: Workspace) -> RunResult:
    device = workspace.device
    features, fit = feature_set(config.distribution, config.N, config.d, config.feature_seed, device)
    codes = draw_codes(config, torch.Generator().manual_seed(config.seed)).to(device)
    metrics = evaluate_codebook(features, codes)
    w2 = gaussian_w2(*fit, *gaussian_fit(codes, unbiased=True), eps_eig=0, eps_sqrt=0)
    return RunResult({**metrics, "w2_distance": float(w2)})


def data(config: Config) -> str:
    if config.distribution == "gaussian":
        codes = f"N({config.x:g} 1, I)" if config.family == "shift" else f"N(0, {config.x:g}^2 I)"
        return f"synthetic: features N(0, I), codes {codes}, d={config.d}"
    codes = (
        f"U({config.x - 1:g}, {config.x + 1:g})^d" if config.family == "shift" else f"U(-{config.x:g}, {config.x:g})^d"
    )
    return f"synthetic: features U(-1, 1)^d, codes {codes}, d={config.d}"


def trend_failures(results: pd.DataFrame) -> tuple[int, dict[str, list[tuple]]]:
    """(number of curves, claim -> the (family, sweep, K, d, N) curves on which it fails). A step against the
    trend counts only if it exceeds the noise: 1.96 standard errors of the difference of the two means (and,
    for C, 1% of its value); a claim also needs a net move over the whole curve."""
    keys = ["family", "sweep", "K", "d", "N"]
    stats = results.groupby([*keys, "x"])[["quant_error", "utilization", "perplexity"]].agg(["mean", "sem"])
    failures = {"E grows": [], "U falls": [], "C falls": []}
    curves = list(stats.groupby(level=keys))
    for curve_key, curve in curves:
        curve = curve.droplevel(keys).sort_index()
        checks = {
            "E grows": against_trend(curve, "quant_error", -1.0),
            "U falls": against_trend(curve, "utilization", 1.0),
            "C falls": against_trend(curve, "perplexity", 1.0, relative=0.01),
        }
        for name, broken in checks.items():
            if broken:
                failures[name].append(curve_key)
    return len(curves), failures


def claims(results: pd.DataFrame) -> list[Claim]:
    """As the distributions move apart (x grows): E grows, U and C fall, on every curve (means over repeats)."""
    total, failures = trend_failures(results)
    found = []
    for name, failing in failures.items():
        labels = ["{} {}-sweep (K={}, d={}, N={})".format(*key) for key in failing]
        detail = f"{total - len(failing)} of {total} curves" + (f"; not on: {', '.join(labels[:6])}" if labels else "")
        if len(labels) > 6:
            detail += f" and {len(labels) - 6} more"
        found.append(Claim(f"{name} as the distributions move apart (every curve)", not failing, detail))
    return found


def against_trend(curve: pd.DataFrame, metric: str, sign: float, relative: float = 0.0) -> bool:
    """Whether a curve of (mean, sem) over x moves against the expected direction (sign -1: should grow, +1:
    should fall) by more than the noise anywhere, or shows no net move in the expected direction."""
    mean, sem = curve[(metric, "mean")].to_numpy(), curve[(metric, "sem")].fillna(0).to_numpy()
    steps = sign * np.diff(mean)  # positive = against the trend
    noise = 1.96 * np.sqrt(sem[1:] ** 2 + sem[:-1] ** 2) + relative * np.abs(mean[:-1])
    return bool(np.any(steps > noise) or sign * (mean[-1] - mean[0]) >= 0)


def figures_for(distribution: str):
    def figures(tables: Tables, scale: str) -> Figures:
        """18 panels: rows = the K, d, N sweeps; columns = (log10 E, U, log10 C) for shift, then for scale."""
        results = tables[""]
        fig, axes = figure(3, 6, width=16, height=7.5)
        for row, sweep in enumerate(SWEEPS):
            for block, family in enumerate(FAMILIES):
                rows = results[(results["sweep"] == sweep) & (results["family"] == family)]
                for column, metric in enumerate(("quant_error", "utilization", "perplexity")):
                    axis = axes[row, 3 * block + column]
                    _draw_curves(axis, rows, sweep, metric)
                    symbol = SYMBOLS[distribution][family]
                    label = {"quant_error": "log10 E", "utilization": "U", "perplexity": "log10 C"}[metric]
                    axis.set_xlabel(symbol)
                    axis.set_ylabel(label)
                    axis.set_title(
                        f"({chr(ord('a') + 6 * row + 3 * block + column)}) {label} vs {symbol}, {sweep} sweep"
                    )
            axes[row, 0].legend(title=sweep, loc="upper left", ncol=2, frameon=False)
        figure_number = 10 if distribution == "gaussian" else 11
        fig.suptitle(
            f"Wasserstein VQ Fig. {figure_number} reproduced ({distribution}; mean +- 1.96 std over 5 repeats, "
            "of log10 values for E and C)"
        )
        fig.tight_layout()
        return {"": fig}

    return figures


def _draw_curves(axis, rows: pd.DataFrame, sweep: str, metric: str) -> None:
    """One line per sweep value: mean over repeats with a band of +- 1.96 std; E and C on a log10 scale, where
    mean and band are those of the log10 values (a band of the raw values would cross zero)."""
    for colour, (value, curve) in zip(COLOURS, rows.groupby(sweep), strict=False):
        values = curve[metric] if metric == "utilization" else np.log10(curve[metric])
        stats = values.groupby(curve["x"]).agg(["mean", "std"]).fillna(0)
        low, high = stats["mean"] - 1.96 * stats["std"], stats["mean"] + 1.96 * stats["std"]
        if metric == "utilization":
            high = high.clip(upper=1.0)
        rgb = tuple(c / 255 for c in colour)
        axis.plot(stats.index, stats["mean"], marker="o", markersize=2.5, color=rgb, label=f"{value:,}", linewidth=1)
        axis.fill_between(stats.index, low, high, color=rgb, alpha=0.2, linewidth=0)


def experiment(distribution: str) -> Experiment:
    figure_number = 10 if distribution == "gaussian" else 11
    name = f"wvq_fig{figure_number}"
    return Experiment(
        name=name,
        metrics=("quant_error", "utilization", "perplexity", "w2_distance"),
        title=f"Quantitative analysis, {distribution} features and codes: (E, U, C) vs distance of the distributions",
        source=f"Wasserstein VQ, arXiv 2506.15078 v1, Fig. {figure_number} (App. F.{figure_number - 9})",
        configs=configs_for(distribution),
        run=run,
        data=data,
        comparable_scales=("cpu", "paper"),
        notes="The paper reports these results only as figures; the comparison is the qualitative claims below. "
        "cpu scale is the paper configuration. Where E does not grow from scale 1 to 2 in low dimension, that is "
        "what quantization theory predicts: the MSE-optimal code density is f^(d/(d+2)), wider than f "
        "(see wvq_theory), so codes somewhat wider than the features quantize them better.",
        claims=claims,
        figures=figures_for(distribution),
    )


FIG10 = experiment("gaussian")
FIG11 = experiment("uniform")
