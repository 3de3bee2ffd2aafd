"""What distortion predicts, and what the papers' words measure (issue 37, Secs. 4-5): REPORT.md's rank correlations
of the quantization error E and of the codebook utilization U with reconstruction quality across the committed
tokenizer runs, and with sample diversity across the generation arms; and a glossary of the terms the papers use
for codebook geometry, each mapped to the column that measures it here.

A recent paper of the Wasserstein VQ group argues that E, not U, predicts reconstruction quality (Spearman's rho of
E with rFID 0.94-0.996, of U with rFID -0.41 to -0.56). rFID needs Inception weights, absent here: PSNR stands for
reconstruction quality (higher is better, so E should correlate negatively with it if the argument holds). Each
correlation is within one result table (one training budget and dataset), never pooled across tables.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from replicate.results import read_csv, result_path

TOKENIZER_TABLES = ("wvq_table6", "wvq_table2", "wvq_table8", "wvq_table3", "dq_cifar_sweep")
GENERATION_TABLES = ("wvq_generation", "dq_generation")
PAIRS = {  # (kind of table) -> (x, y) columns whose rank correlation is reported
    "tokenizer": (("quant_error", "psnr"), ("utilization", "psnr")),
    "generation": (("quant_error", "pixel_distance"), ("utilization", "pixel_distance")),
}

GLOSSARY = (
    ("codebook collapse (Wasserstein VQ)", "few codes in use: low `utilization` U and `perplexity` C"),
    (
        "codebook shrinkage (Deferred Quantization V2)",
        "codes crowded into a narrow region of the latent space: low `code_dist_euclid` / `code_dist_cosine` (mean "
        "pairwise distance of the codes), `code_to_latent_spread` < 1 (synthetic studies)",
    ),
    (
        "coverage failure (Deferred Quantization V3)",
        "the same geometry as V2's shrinkage, named by its effect: components of the data without a code, "
        "`modes_covered` below the mixture's count (synthetic), low `utilization` (images)",
    ),
    (
        "codebook shrinkage (another 2026 paper)",
        "the opposite geometry: codes spread wider than the features, `code_to_latent_spread` > 1",
    ),
    ("distortion, quantization error E", "`quant_error`: mean squared distance of a feature to its code"),
    ("distribution mismatch (Wasserstein VQ)", "`w2_distance`: Gaussian-fit W2 between features and codes"),
)


def rank_correlation(x: pd.Series, y: pd.Series) -> float:
    """Spearman's rho: the Pearson correlation of the ranks (ties share their average rank)."""
    return float(x.rank().corr(y.rank()))


def correlations(tables: Path, scale: str = "cpu") -> pd.DataFrame:
    """One row per (table, dataset) with at least three runs: the count n and rho of each PAIRS pair."""
    rows = []
    for kind, names in (("tokenizer", TOKENIZER_TABLES), ("generation", GENERATION_TABLES)):
        for name in names:
            path = result_path(name, scale, tables)
            results = read_csv(path) if path.exists() else None
            if results is None:
                continue
            dataset = "tokenizer_dataset" if "tokenizer_dataset" in results else "dataset"
            for value, group in results.groupby(dataset):
                if len(group) < 3:
                    continue
                row = {"table": f"{name}_{scale}", "kind": kind, "dataset": value, "n": len(group)}
                for x, y in PAIRS[kind]:
                    row[f"rho({x}, {y})"] = rank_correlation(group[x], group[y])
                rows.append(row)
    return pd.DataFrame(rows)


def render(frame: pd.DataFrame) -> list[str]:
    """REPORT.md's sections: the correlations (a table per kind) and the glossary."""
    lines = ["", "## What distortion predicts: rank correlations across the committed runs", ""]
    lines += [
        "Spearman's rho within each result table and dataset (runs: every configuration and seed of the table). "
        "PSNR stands for reconstruction quality (rFID needs Inception weights, absent here); the argument that E, "
        "not U, predicts quality expects rho(E, PSNR) near -1 and |rho(U, PSNR)| smaller. Generation arms: "
        "pixel distance of the samples. A rho over 3-4 runs is a description, not evidence.",
        "",
    ]
    for kind in PAIRS:
        shown = frame[frame["kind"] == kind] if len(frame) else frame
        if not len(shown):
            continue
        columns = [f"rho({x}, {y})" for x, y in PAIRS[kind]]
        lines += ["| table | dataset | n | " + " | ".join(columns) + " |", "|---|---|---|" + "---|" * len(columns)]
        for _, row in shown.iterrows():
            values = " | ".join(f"{row[column]:+.2f}" for column in columns)
            lines.append(f"| `{row['table']}` | {row['dataset']} | {row['n']} | {values} |")
        lines.append("")
    lines += ["## Glossary: the papers' words and the columns that measure them", ""]
    lines += [f"- **{term}**: {meaning}." for term, meaning in GLOSSARY]
    return lines
