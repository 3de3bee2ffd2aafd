"""Cross-paper comparison (in neither paper): the five quantizers of Wasserstein VQ (arXiv 2506.15078) under
the two schedules of Deferred Quantization (arXiv 2603.17052) on the Gaussian mixtures of dq_synthetic. Which
methods avoid shrinkage under early quantization, and does Wasserstein VQ make deferral unnecessary? And FSQ beside
them (issue 37): does a continuous phase matter for a quantizer without a learned codebook?

Same data, model, learning rate (1e-3), budget and k-means initialisation as dq_synthetic (early: on the
untrained encoder; deferred: after 1,500 continuous steps). Each quantizer keeps the official VQ-VAE settings of
the Wasserstein VQ code (replicate/quantize defaults: EMA decay 0.8; Online farthest anchor; Wasserstein beta 0.1,
gamma 0.5, codebook lr 0.02), and so does the optimiser (official train_vqvae.py: Adam betas (0.9, 0.95), each
parameter group's gradient norm clipped to 1.0), except the Wasserstein feature queue: 2,048 vectors = 8 batches,
as the official 65,536 = 8 steps of 8,192 tokens (the official size would hold 6.5 copies of this 10,000-point
dataset).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from replicate.configs import Optimisation, SyntheticTraining
from replicate.experiments.dq_synthetic import DIMS, SEEDS, data, run_keeping_points
from replicate.experiments.dq_synthetic import EXPERIMENT as DQ_SYNTHETIC
from replicate.experiments.dq_synthetic import make as dq_make
from replicate.quantize import PAPER_METHODS
from replicate.report.plotting import METHOD_NAMES, figure
from replicate.results import Workspace
from replicate.spec import Claim, Experiment, Figures, RunResult, Tables

SCHEDULES = ("early", "deferred")
QUEUE_BATCHES = 8
# Beyond both papers (issue 37): FSQ, no learned codebook, so the schedule only decides when quantization starts.
# Levels for K = 32 by its paper's rule (L_i >= 5, Sec. 3): 6 x 5 = 30 codes on 2 channels, the latents projected
# to them and back (quantize/fsq.py)
FSQ_LEVELS = "6,5"
METHODS = (*PAPER_METHODS, "fsq")


def make(dim: int, schedule: str, method: str, **fields) -> SyntheticTraining:
    """dq_synthetic's configuration with the method's official settings, the Wasserstein queue shortened, and the
    official image code's Adam betas (0.9, 0.95) and clipping (1.0 per group)."""
    changes = {"wasserstein": (("queue_size", QUEUE_BATCHES * 256),), "fsq": (("levels", FSQ_LEVELS),)}.get(method, ())
    optim = Optimisation(1e-3, (0.9, 0.95), grad_clip=1.0)
    return dq_make(dim, schedule, method=method, quantizer=changes, optim=optim, **fields)


def configs(scale: str) -> list[SyntheticTraining]:
    if scale == "smoke":
        return [make(4, s, m, steps=60, warmup=30) for m in METHODS for s in SCHEDULES]
    return [make(dim, s, m, seed=seed) for dim in DIMS for m in METHODS for s in SCHEDULES for seed in SEEDS]


def run(config: SyntheticTraining, workspace: Workspace) -> RunResult:
    return run_keeping_points(config, keep_points=False)


def claims(results: pd.DataFrame) -> list[Claim]:
    """Per method: early quantization avoids shrinkage if, at every input dimension, it covers as many modes
    as deferred quantization (within half a mode on average) and keeps at least 90% of its perplexity."""
    means = results.groupby(["method", "dim", "schedule"])[["modes_covered", "perplexity"]].mean().unstack()
    found = []
    for method in [m for m in METHODS if m in means.index.get_level_values("method")]:
        rows = means.loc[method]
        modes_ok = rows[("modes_covered", "early")] >= rows[("modes_covered", "deferred")] - 0.5
        perplexity_ok = rows[("perplexity", "early")] >= 0.9 * rows[("perplexity", "deferred")]
        detail = "; ".join(
            f"D={d}: modes {r[('modes_covered', 'early')]:.1f} vs {r[('modes_covered', 'deferred')]:.1f}, "
            f"C {r[('perplexity', 'early')]:.1f} vs {r[('perplexity', 'deferred')]:.1f}"
            for d, r in rows.iterrows()
        )
        text = f"{METHOD_NAMES[method]} with early quantization matches deferred quantization (no shrinkage)"
        if method == "wasserstein":
            text += ": Wasserstein VQ makes deferral unnecessary"
        found.append(Claim(text, bool((modes_ok & perplexity_ok).all()), f"early vs deferred, {detail}"))
    return found


def figures(tables: Tables, scale: str) -> Figures:
    """One figure: rows = modes covered, perplexity, codebook / latent spread; columns = input dimension;
    bars = methods, early (light, hatched) beside deferred (dark); error bars = std over seeds."""
    results = tables[""]
    metrics = (
        ("modes_covered", "modes covered (of 10)"),
        ("perplexity", "codebook perplexity"),
        ("code_to_latent_spread", "code / latent spread"),
    )
    dims = sorted(results["dim"].unique())
    methods = [m for m in METHODS if m in set(results["method"])]
    fig, axes = figure(len(metrics), len(dims), width=3.4 * len(dims), height=2.5 * len(metrics))
    positions = np.arange(len(methods))
    for column, dim in enumerate(dims):
        for row, (metric, label) in enumerate(metrics):
            axis = axes[row, column]
            stats = results[results["dim"] == dim].groupby(["method", "schedule"])[metric].agg(["mean", "std"])
            for offset, schedule, style in (
                (-0.2, "early", {"color": "tab:red", "alpha": 0.45, "hatch": "//"}),
                (0.2, "deferred", {"color": "tab:blue"}),
            ):
                values = [stats.loc[(m, schedule)] if (m, schedule) in stats.index else None for m in methods]
                axis.bar(
                    positions + offset,
                    [v["mean"] if v is not None else np.nan for v in values],
                    width=0.4,
                    yerr=[v["std"] if v is not None else 0 for v in values],
                    capsize=2,
                    label=schedule,
                    error_kw={"linewidth": 0.8},
                    **style,
                )
            axis.set_xticks(positions, [METHOD_NAMES[m] for m in methods], rotation=30, fontsize=7)
            axis.set_title(f"D={dim}: {label}")
    axes[0, 0].legend(frameon=False)
    fig.suptitle(
        "Which quantizers shrink under early quantization? (Wasserstein VQ's five methods and FSQ x Deferred "
        "Quantization's two schedules; mean +- std over 3 seeds)"
    )
    fig.tight_layout()
    return {"": fig}


EXPERIMENT = Experiment(
    name="xp_synthetic",
    metrics=(*DQ_SYNTHETIC.metrics, "code_dist_euclid_used", "code_dist_cosine_used"),
    title="Cross-paper: five quantizers x early / deferred quantization on Gaussian mixtures",
    source="Wasserstein VQ (arXiv 2506.15078) quantizers x Deferred Quantization (arXiv 2603.17052) schedules; "
    "in neither paper",
    configs=configs,
    run=run,
    data=data,
    comparable_scales=("cpu", "paper"),
    notes="No published numbers: this comparison is new. Claims below answer the two questions per method.",
    open_question="does a distribution-matching quantizer make Deferred Quantization's continuous phase unnecessary?",
    claims=claims,
    figures=figures,
)
