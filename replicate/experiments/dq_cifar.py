"""Deferred Quantization (Zhao et al., arXiv 2603.17052), V2 Fig. 4: CIFAR-10 VQ-VAE, "original VQ" (early
quantization: k-means on the untrained encoder) vs "pretrained" (deferred: a continuous warm-up, then k-means
on the trained encoder), codebook size K over powers of two; reconstruction MSE, perplexity and codebook
distance against K. The paper reports this only as curves: the comparison is its qualitative claims.

Choices (the paper gives no architecture, epochs or sweep range; digest Sec. 8): the Wasserstein VQ CIFAR
VQ-VAE (Table 5: 32 px, channels 64, [1, 1, 2], d = 8, batch 128, lr 5e-5, 50 epochs); EMA VQ as V2 Sec. 3.2
says, with van den Oord et al.'s decay 0.99 and beta 0.25; deferred = 25 continuous + 25 quantized epochs;
k-means on 100,000 encoder outputs, 50 Lloyd iterations; K = 2^6 ... 2^14 at paper scale. The cpu scale uses
the same shortening as wvq_table6 (CIFAR-10 JPEG copy, ch 32, 20,000 training images, 2 epochs: deferred = 1
+ 1) and K in {2^6, 2^8, 2^10, 2^12, 2^13}.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from replicate.experiments.wvq_vqvae import CPU_SHORTENING, data, discard, paper_config, run, scatter_figure
from replicate.report.plotting import figure
from replicate.spec import Claim, Experiment, Figures, Tables
from replicate.train.tokenizer import TokenizerTraining, smoke_scale

EMA_SETTINGS = (("decay", 0.99), ("beta", 0.25))
PAPER_K = tuple(2**p for p in range(6, 15))
CPU_K = (2**6, 2**8, 2**10, 2**12, 2**13)
COLOURS = {"early": "tab:red", "deferred": "tab:blue"}


def arm(K: int, schedule: str, warmup_epochs: int, **changes) -> TokenizerTraining:
    """EMA VQ (decay 0.99, beta 0.25) on the CIFAR-10 model of Table 5, early or deferred quantization."""
    return paper_config(
        "cifar10",
        "ema",
        K,
        schedule=schedule,
        warmup_epochs=warmup_epochs if schedule == "deferred" else 0,
        quantizer=EMA_SETTINGS,
        **changes,
    )


def configs(scale: str) -> list[TokenizerTraining]:
    if scale == "paper":
        return [arm(K, s, 25) for K in PAPER_K for s in COLOURS]
    if scale == "cpu":
        return [dataclasses.replace(arm(K, s, 1), **CPU_SHORTENING) for K in CPU_K for s in COLOURS]
    return [smoke_scale(arm(K, s, 1), epochs=2) for K in (16, 64) for s in COLOURS]


def claims(results: pd.DataFrame) -> list[Claim]:
    """V2 Sec. 5.2: beyond small codebooks the deferred variant has higher perplexity and a more spread
    codebook (cosine distance; V3: Euclidean) than early quantization; both at the largest K."""
    means = results.groupby(["K", "schedule"])[["perplexity", "code_dist_cosine", "code_dist_euclid", "rec_mse"]].mean()
    largest = results["K"].max()
    if {(largest, "early"), (largest, "deferred")} - set(means.index):
        return []
    early, deferred = means.loc[(largest, "early")], means.loc[(largest, "deferred")]
    found = []
    for metric, text in (
        ("perplexity", "higher perplexity"),
        ("code_dist_cosine", "higher pairwise cosine distance"),
        ("code_dist_euclid", "higher pairwise Euclidean distance"),
    ):
        found.append(
            Claim(
                f"at the largest K ({largest}), deferred quantization has {text} than early",
                bool(deferred[metric] > early[metric]),
                f"deferred {deferred[metric]:.4g} vs early {early[metric]:.4g}",
            )
        )
    found.append(
        Claim(
            f"at the largest K ({largest}), deferred quantization reconstructs better (lower MSE)",
            bool(deferred["rec_mse"] < early["rec_mse"]),
            f"deferred {deferred['rec_mse']:.4g} vs early {early['rec_mse']:.4g}",
        )
    )
    return found


def figures(tables: Tables, scale: str) -> Figures:
    """V2 Fig. 4: reconstruction MSE, perplexity, cosine and Euclidean codebook distance against K; and the
    features and codes of each K, early beside deferred."""
    results = tables[""]
    metrics = (
        ("rec_mse", "reconstruction MSE"),
        ("perplexity", "perplexity"),
        ("code_dist_cosine", "pairwise cosine distance"),
        ("code_dist_euclid", "pairwise Euclidean distance"),
    )
    fig, axes = figure(1, len(metrics), width=3.2 * len(metrics), height=2.8)
    for axis, (metric, label) in zip(axes[0], metrics, strict=True):
        for schedule, rows in results.groupby("schedule"):
            stats = rows.groupby("K")[metric].agg(["mean", "std"])
            axis.errorbar(
                stats.index,
                stats["mean"],
                yerr=stats["std"].fillna(0),
                marker="o",
                markersize=3,
                color=COLOURS.get(schedule, "black"),
                label=f"{schedule} quantization",
                capsize=2,
            )
        axis.set_xscale("log", base=2)
        axis.set_xticks(sorted(results["K"].unique()))
        axis.set_xlabel("codebook size K")
        axis.set_title(label)
    axes[0, 0].legend(frameon=False)
    fig.suptitle(f"Deferred Quantization V2 Fig. 4 reproduced ({results['data'].iloc[0]})")
    fig.tight_layout()
    drawn = {"": fig}
    if "points" in tables:  # the latent-space shrinkage plot: early vs deferred codes among the encoder outputs
        names = {schedule: f"{schedule} quantization" for schedule in ("early", "deferred")}
        drawn["scatter"] = scatter_figure(tables["points"], "schedule", names)
    return drawn


EXPERIMENT = Experiment(
    name="dq_cifar_sweep",
    title="CIFAR-10 VQ-VAE: early vs deferred quantization across codebook sizes",
    source="Deferred Quantization, arXiv 2603.17052, V2 Sec. 5.2 and Fig. 4",
    configs=configs,
    run=run,
    data=data,
    comparable_scales=("paper",),
    notes="The paper reports Fig. 4 as curves without numbers; the claims below are its text's statements.",
    claims=claims,
    figures=figures,
    discard=discard,
)
