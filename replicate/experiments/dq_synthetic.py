"""Deferred Quantization (Zhao et al., arXiv 2603.17052; V2 Sec. 4.1, 5.1, Figs. 2-3; V1's sweeps): early
quantization shrinks the codebook. A small MLP VQ-VAE reconstructs a mixture of 10 equally weighted Gaussians
(1,000 points each) under three schedules with the same step budget (replicate/train/schedule.py): "early"
(k-means on the untrained encoder's outputs, quantize from step 0: the paper's baseline), "deferred" (a
continuous warm-up, then k-means on the trained encoder's outputs, then quantized fine-tuning) and "random"
(the quantizer's own random codes from step 0). Sweeps: schedule x input dimension {2, 4, 8, 16}; codebook size
K and encoder width and depth at input dimension 8 (early vs deferred); 3 seeds each.

Every choice below is ours; the paper leaves it open (digest Sec. 8):
- data: component std 0.5; means uniform in [-5, 5]^D, each at least 2.5 from the others (a fresh mixture per
  seed); latent dimension = input dimension (the paper's plots use t-SNE for high input dimensions).
- model: MLP encoder (width 64, depth 2 by default) and decoder (64, 2), ReLU; Adam, lr 1e-3, batch 256.
- quantizer: EMA VQ, as V2 Sec. 3.2 says (van den Oord et al.): decay 0.99, commitment beta 0.25, K = 32.
- budget: 3,000 steps; deferred = 1,500 continuous + 1,500 quantized; k-means: 50 Lloyd iterations on all
  10,000 encoder outputs. Diagnostics every 100 steps (metrics/shrinkage.py; codebook ones once quantized).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from replicate.configs import WARMED, SyntheticTraining
from replicate.metrics.projection import pca_2d, tsne_2d
from replicate.report.noise import beats
from replicate.report.plotting import figure
from replicate.results import Workspace, with_configuration
from replicate.spec import Claim, Experiment, Figures, RunResult, Tables

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from replicate.train.synthetic import SyntheticResult

DIMS = (2, 4, 8, 16)
SEEDS = (0, 1, 2)
SWEEP_DIM = 8  # input dimension of the K and capacity sweeps
K_SWEEP = (8, 16, 32, 64, 128)
WIDTHS = (16, 64, 256)
DEPTHS = (1, 2, 4)
STEPS, WARMUP = 3000, 1500
POINTS_PER_MODE = 60  # points per component kept for the scatter plots
COLOURS = {"early": "tab:red", "deferred": "tab:blue", "random": "tab:gray"}
SCHEDULES = tuple(COLOURS)  # this study's arms (the equal-budget deferred arm; no pretrained arm)


EMA_SETTINGS = (("decay", 0.99), ("beta", 0.25))  # the paper's EMA VQ (van den Oord et al. 2017)


def make(
    dim: int, schedule: str, *, steps: int = STEPS, warmup: int = WARMUP, method: str = "ema", **fields
) -> SyntheticTraining:
    """A configuration of this study: EMA VQ with the paper's settings unless `quantizer` says otherwise."""
    fields.setdefault("quantizer", EMA_SETTINGS if method == "ema" else ())
    warmup_steps = warmup if schedule in WARMED else 0
    return SyntheticTraining(dim, schedule, method, steps=steps, warmup_steps=warmup_steps, **fields)


def configs(scale: str) -> list[SyntheticTraining]:
    if scale == "smoke":
        return [make(dim, s, steps=60, warmup=30) for dim in (2, 4) for s in SCHEDULES]
    grid = [make(dim, s, seed=seed) for dim in DIMS for s in SCHEDULES for seed in SEEDS]
    for schedule in ("early", "deferred"):
        for seed in SEEDS:
            grid += [make(SWEEP_DIM, schedule, K=K, seed=seed) for K in K_SWEEP]
            grid += [make(SWEEP_DIM, schedule, encoder_width=w, seed=seed) for w in WIDTHS]
            grid += [make(SWEEP_DIM, schedule, encoder_depth=depth, seed=seed) for depth in DEPTHS]
    return list(dict.fromkeys(grid))  # the default point belongs to every sweep: run it once


def run_keeping_points(config: SyntheticTraining, keep_points: bool) -> RunResult:
    """Train one configuration; with keep_points, also the scatter points of its embeddings and codes."""
    from replicate.train.synthetic import train_synthetic  # training code: only to run

    result = train_synthetic(config)
    extra = {"curves": result.history}
    if keep_points:
        extra["points"] = scatter_points(result)
    return RunResult(result.final, extra)


DEFAULT_MODEL = {"K": 32, "encoder_width": 64, "encoder_depth": 2}


def default_model(frame: pd.DataFrame, except_for: str = "") -> pd.DataFrame:
    """Rows with the default K, encoder width and depth (all but `except_for`)."""
    for column, value in DEFAULT_MODEL.items():
        if column != except_for:
            frame = frame[frame[column] == value]
    return frame


def run(config: SyntheticTraining, workspace: Workspace) -> RunResult:
    """The scatter points are kept for seed 0 of the default model."""
    default = all(getattr(config, k) == v for k, v in DEFAULT_MODEL.items())
    return run_keeping_points(config, keep_points=config.seed == 0 and default)


def scatter_points(result: SyntheticResult) -> list[dict]:
    """A subsample of embeddings, codes, data and reconstructions with 2-D coordinates: PCA and t-SNE of
    embeddings + codes (jointly); PCA of the data, with the reconstructions on the same axes."""
    generator = torch.Generator().manual_seed(0)
    keep = torch.cat(
        [
            torch.nonzero(result.labels == k).squeeze(1)[
                torch.randperm(int((result.labels == k).sum()), generator=generator)[:POINTS_PER_MODE]
            ]
            for k in range(len(result.means))
        ]
    )
    embeddings, codes = result.embeddings[keep], result.codebook
    latent = torch.cat([embeddings, codes])
    latent_pca = pca_2d(latent)[0]
    data_pca, reconstruction_pca = pca_2d(result.points[keep], result.reconstructions[keep])
    latent_tsne = tsne_2d(latent)
    labels = result.labels[keep].tolist()
    rows = []
    for index in range(len(latent)):
        is_code = index >= len(embeddings)
        rows.append(
            {
                "kind": "code" if is_code else "embedding",
                "mode": -1 if is_code else labels[index],
                "pca_x": float(latent_pca[index, 0]),
                "pca_y": float(latent_pca[index, 1]),
                "tsne_x": float(latent_tsne[index, 0]),
                "tsne_y": float(latent_tsne[index, 1]),
            }
        )
    for kind, values in (("data", data_pca), ("reconstruction", reconstruction_pca)):
        rows += [
            {"kind": kind, "mode": labels[i], "pca_x": float(values[i, 0]), "pca_y": float(values[i, 1])}
            for i in range(len(values))
        ]
    return rows


def data(config: SyntheticTraining) -> str:
    return (
        f"synthetic: mixture of 10 Gaussians (std 0.5, means in [-5, 5]^{config.dim}, 1,000 points each), "
        f"mixture seed {config.seed}"
    )


def schedule_means(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean of a metric per input dimension (rows) and schedule (columns), default model only."""
    return default_model(results).groupby(["dim", "schedule"])[metric].mean().unstack()


def claims(results: pd.DataFrame) -> list[Claim]:
    """V2's claims, per input dimension: early quantization gives a less spread codebook (pairwise distance),
    lower perplexity and fewer covered modes than deferred quantization, and the gap grows with dimension."""
    found = []
    statements = {
        "code_dist_euclid": ("a smaller average pairwise Euclidean code distance (V3's metric)", True),
        "perplexity": ("a lower codebook perplexity", True),
        "modes_covered": ("fewer mixture modes covered by the reconstructions", True),
        "code_dist_cosine": ("a smaller average pairwise cosine code distance (V2's image metric)", False),
    }
    for metric, (text, relative_gap) in statements.items():
        means = schedule_means(results, metric)
        if not {"early", "deferred"} <= set(means.columns):
            continue
        gap = means["deferred"] - means["early"]
        if relative_gap:
            gap = gap / means["deferred"].abs()
        per_dim = ", ".join(
            f"D={d}: {means.loc[d, 'early']:.3g} vs {means.loc[d, 'deferred']:.3g}" for d in means.index
        )
        # ties count as agreement (modes covered saturates at 10 in low dimension); the largest must differ. The
        # margin judged against the seed noise is the largest dimension's, deferred's seed mean minus early's
        rows = default_model(results)
        largest = rows[rows["dim"] == means.index[-1]]
        early, deferred = (largest.loc[largest["schedule"] == s, metric] for s in ("early", "deferred"))
        judged = beats(
            f"early quantization gives {text} than deferred (never more; less at the largest dimension)",
            metric,
            deferred,
            early,
            f"early vs deferred, {per_dim}",
        )
        found.append(dataclasses.replace(judged, holds=bool((gap >= 0).all() and gap.iloc[-1] > 0)))
        if metric != "code_dist_cosine":
            found.append(
                Claim(
                    f"the gap in {metric} grows with the input dimension",
                    bool(gap.iloc[-1] > gap.iloc[0] and gap.iloc[-1] > 0),
                    f"{'relative ' if relative_gap else ''}gap (deferred - early) by dimension: "
                    + ", ".join(f"{d}: {g:+.3g}" for d, g in gap.items()),
                )
            )
    return found


def figures(tables: Tables, scale: str) -> Figures:
    """Latent-space scatter (PCA and t-SNE), spread curves and the diagnostics against each sweep."""
    results, drawn = tables[""], {}
    if "points" in tables:
        points = with_configuration(tables["points"], results, ["dim", "schedule"])
        drawn["latent_pca"] = shrinkage_plot(points, "pca")
        drawn["latent_tsne"] = shrinkage_plot(points, "tsne")
    if "curves" in tables:
        curves = with_configuration(tables["curves"], results, ["dim", "schedule", *DEFAULT_MODEL])
        drawn["curves"] = distance_curves(curves)
    return drawn | {"diagnostics": diagnostics_plot(results)}


def shrinkage_plot(points: pd.DataFrame, projection: str) -> Figure:
    """Rows: input dimensions. Columns: latent space (embeddings coloured by mode, codes as black crosses) for
    early, deferred and random; then data (grey) vs reconstructions (coloured) for early and deferred."""
    from matplotlib import colormaps

    dims = sorted(points["dim"].unique())
    schedules = [s for s in SCHEDULES if s in set(points["schedule"])]
    columns = [("latent", s) for s in schedules] + [("data", s) for s in ("early", "deferred") if s in schedules]
    fig, axes = figure(len(dims), len(columns), width=2.6 * len(columns), height=2.5 * len(dims))
    palette = np.array(colormaps["tab10"].colors)
    x, y = f"{projection}_x", f"{projection}_y"
    for row, dim in enumerate(dims):
        for column, (panel, schedule) in enumerate(columns):
            axis = axes[row, column]
            shown = points[(points["dim"] == dim) & (points["schedule"] == schedule)]
            if panel == "latent":
                embeddings, codes = shown[shown["kind"] == "embedding"], shown[shown["kind"] == "code"]
                axis.scatter(embeddings[x], embeddings[y], s=2, c=palette[embeddings["mode"] % 10], linewidths=0)
                axis.scatter(codes[x], codes[y], s=22, marker="x", color="black", linewidths=0.9)
                axis.set_title(f"D={dim}, {schedule}: latents, codes (x)")
            else:
                data, reconstruction = shown[shown["kind"] == "data"], shown[shown["kind"] == "reconstruction"]
                axis.scatter(data["pca_x"], data["pca_y"], s=2, color="0.75", linewidths=0)
                axis.scatter(
                    reconstruction["pca_x"],
                    reconstruction["pca_y"],
                    s=4,
                    c=palette[reconstruction["mode"] % 10],
                    linewidths=0,
                )
                axis.set_title(f"D={dim}, {schedule}: data, recon.")
            axis.set_xticks([])
            axis.set_yticks([])
    label = "PCA" if projection == "pca" else "t-SNE (latent) / PCA (data)"
    fig.suptitle(
        f"Deferred Quantization, synthetic mixtures, seed 0 ({label}): latents coloured by mode with "
        "codes (x); data (grey) with reconstructions coloured by the mode of their input"
    )
    fig.tight_layout()
    return fig


def distance_curves(curves: pd.DataFrame) -> Figure:
    """Codebook spread over training: pairwise Euclidean code distance, its ratio to the latent spread, and
    perplexity, per input dimension; mean +- std over seeds."""
    curves = default_model(curves)
    dims = sorted(curves["dim"].unique())
    metrics = (
        ("code_dist_euclid", "pairwise code distance"),
        ("code_to_latent_spread", "code / latent spread"),
        ("perplexity", "perplexity"),
    )
    fig, axes = figure(len(metrics), len(dims), width=3.2 * len(dims), height=2.6 * len(metrics))
    for column, dim in enumerate(dims):
        for row, (metric, label) in enumerate(metrics):
            axis = axes[row, column]
            for schedule, rows in curves[curves["dim"] == dim].groupby("schedule"):
                stats = rows.groupby("step")[metric].agg(["mean", "std"]).dropna(subset=["mean"])
                axis.plot(stats.index, stats["mean"], color=COLOURS[schedule], label=schedule, linewidth=1.2)
                axis.fill_between(
                    stats.index,
                    stats["mean"] - stats["std"].fillna(0),
                    stats["mean"] + stats["std"].fillna(0),
                    color=COLOURS[schedule],
                    alpha=0.2,
                )
            axis.set_title(f"D={dim}: {label}")
            axis.set_xlabel("training step")
            if metric != "perplexity":  # the random arm's unused EMA codes fly off by orders of magnitude
                axis.set_yscale("log")
    axes[0, 0].legend(frameon=False)
    fig.suptitle("Codebook spread during training (deferred: quantized after the warm-up)")
    fig.tight_layout()
    return fig


def diagnostics_plot(results: pd.DataFrame) -> Figure:
    """Each diagnostic against input dimension, codebook size K and encoder width and depth."""
    metrics = (
        ("code_dist_euclid", "pairwise code distance"),
        ("perplexity", "perplexity"),
        ("modes_covered", "modes covered (of 10)"),
        ("mode_entropy", "mode entropy H"),
        ("effective_rank", "latent effective rank"),
        ("rec_mse", "reconstruction MSE"),
    )
    sweeps = [s for s in ("dim", "K", "encoder_width", "encoder_depth") if results[s].nunique() > 1]
    fig, axes = figure(len(sweeps), len(metrics), width=2.7 * len(metrics), height=2.4 * max(len(sweeps), 1))
    for row, sweep in enumerate(sweeps):
        fixed = default_model(results, except_for=sweep)
        if sweep != "dim":
            fixed = fixed[fixed["dim"] == SWEEP_DIM]
        for column, (metric, label) in enumerate(metrics):
            axis = axes[row, column]
            for schedule, rows in fixed.groupby("schedule"):
                stats = rows.groupby(sweep)[metric].agg(["mean", "std"])
                axis.errorbar(
                    stats.index,
                    stats["mean"],
                    yerr=stats["std"].fillna(0),
                    color=COLOURS[schedule],
                    marker="o",
                    markersize=3,
                    capsize=2,
                    linewidth=1,
                    label=schedule,
                )
            if sweep in ("K", "encoder_width"):
                axis.set_xscale("log", base=2)
            axis.set_xlabel({"dim": "input dimension"}.get(sweep, sweep))
            axis.set_title(label)
    axes[0, 0].legend(frameon=False)
    fig.suptitle("Shrinkage diagnostics (mean +- std over 3 seeds; other settings at their defaults)")
    fig.tight_layout()
    return fig


EXPERIMENT = Experiment(
    name="dq_synthetic",
    metrics=(
        "effective_rank",
        "latent_dist_euclid",
        "quant_error",
        "utilization",
        "perplexity",
        "code_dist_euclid",
        "code_dist_cosine",
        "mode_entropy",
        "code_to_latent_spread",
        "rec_mse",
        "modes_covered",
        "mode_error_mean",
        "mode_error_max",
    ),
    title="Early vs deferred quantization on Gaussian mixtures: codebook shrinkage diagnostics",
    source="Deferred Quantization, arXiv 2603.17052 (V2 Sec. 4.1, 5.1, Figs. 2-3; V1 sweeps)",
    configs=configs,
    run=run,
    data=data,
    comparable_scales=("cpu", "paper"),
    notes="The paper reports no numbers for its synthetic study (figures only): the comparison is its "
    "qualitative claims, checked below. cpu scale is our full configuration (the paper gives none).",
    claims=claims,
    figures=figures,
)
