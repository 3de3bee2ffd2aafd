"""Reproduced beside published: per-row deltas and verdicts against stated tolerances, the paper's qualitative
claims checked on our results, rendered as tables/E_S.md (and tables/E_S_comparison.csv)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from replicate.report.noise import NOISE_RULE
from replicate.results import PUBLISHED, ResultFileError, read_csv, read_table, recovery, result_path
from replicate.spec import NOT_CONVERGED, TIE, Claim, Experiment

PASS, FAIL, NOT_RUN, NOT_COMPARABLE, LISTED, CITED = (
    "pass",
    "FAIL",
    "not run at this scale",
    "not comparable",
    "listed",
    "cited by the paper, not run",
)
CITED_SUFFIX = "_cited"  # data/published: a method whose numbers the paper copies from another paper


PUBLISHED_COLUMNS = ("paper", "artifact", "metric", "value", "unit", "source")  # data/published/README.md


def load_published(experiment: Experiment) -> pd.DataFrame | None:
    """The paper's numbers that the experiment compares with, checked: its keys, every PUBLISHED_COLUMNS column, a
    number in `value`."""
    if not experiment.published:
        return None
    path = PUBLISHED / experiment.published
    required = (*PUBLISHED_COLUMNS, *experiment.keys)
    published = read_table(path, "published data file", required, numeric=("value",), recomputed=False)
    if published is None:
        raise ResultFileError(f"published data file {path} is missing; {recovery(path, recomputed=False)}")
    return published


def summarize(results: pd.DataFrame, keys: tuple[str, ...], metrics: list[str]) -> pd.DataFrame:
    """Mean, std (ddof 1) and number of seeds of each metric per published key, in long form."""
    present = [m for m in metrics if m in results.columns]
    long = results.melt(id_vars=list(keys), value_vars=present, var_name="metric", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    grouped = long.dropna(subset=["value"]).groupby([*keys, "metric"])["value"]
    return grouped.agg(reproduced="mean", reproduced_std="std", seeds="count").reset_index()


def curves_for(experiment: Experiment, scale: str, tables: Path) -> pd.DataFrame | None:
    """The per-epoch evaluations a comparison reads, where the experiment names the epoch the paper read."""
    if experiment.published_epoch is None:
        return None
    return read_csv(result_path(experiment.name, scale, tables, "curves"))


def at_published_epoch(experiment: Experiment, results: pd.DataFrame, curves: pd.DataFrame | None) -> pd.DataFrame:
    """The rows the comparison reads: where the experiment names the epoch at which the paper read a row
    (`Experiment.published_epoch`) and the row's curve holds that epoch, its evaluation then; otherwise the row as
    it is (its last evaluation). Column `compared_epoch`: the epoch read, or "last"."""
    rows = results.copy()
    rows["compared_epoch"] = "last"
    if experiment.published_epoch is None or curves is None or "epoch" not in curves.columns:
        return rows
    for index, row in rows.iterrows():
        epoch = experiment.published_epoch(row)
        match = curves[(curves["config_key"] == row["config_key"]) & (curves["epoch"] == epoch)]
        if epoch is None or not len(match):
            continue
        for metric in [m for m in experiment.metrics if m in match.columns]:
            rows.at[index, metric] = match.iloc[0][metric]
        rows.at[index, "compared_epoch"] = str(epoch)
    return rows


def compare(
    experiment: Experiment, results: pd.DataFrame | None, scale: str, curves: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per published number: reproduced mean +- std, delta, tolerance and verdict; where the experiment
    names the epoch the paper read (`published_epoch`), the reproduced value at that epoch from `curves` and the
    epoch read (column `epoch`)."""
    published = load_published(experiment)
    if published is None:
        return pd.DataFrame()
    keys = experiment.keys
    table = published[[*keys, "metric", "value", "unit", "source"]].rename(columns={"value": "published"})
    if results is not None and len(results):
        rows = at_published_epoch(experiment, results, curves)
        summary = summarize(rows, keys, list(table["metric"].unique()))
        table = table.merge(summary, on=[*keys, "metric"], how="left")
        if experiment.published_epoch is not None:
            epochs = rows.groupby(list(keys))["compared_epoch"].agg(lambda e: "/".join(sorted(set(e))))
            table = table.merge(epochs.rename("epoch").reset_index(), on=list(keys), how="left")
    else:
        table["reproduced"], table["reproduced_std"], table["seeds"] = float("nan"), float("nan"), 0
    table["delta"] = table["reproduced"] - table["published"]
    table["delta_rel"] = table["delta"] / table["published"].abs()
    table["tolerance"] = [str(experiment.tolerances.get(m, "")) for m in table["metric"]]
    table["verdict"] = [_verdict(experiment, scale, row) for row in table.itertuples()]
    return table


def agreement_by_method(experiment: Experiment, comparison: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Per method: (reproduced numbers within their stated tolerance, reproduced numbers with a tolerance),
    whatever the scale (at a reduced one, for reference only)."""
    if "method" not in comparison.columns:
        return {}
    counts = {}
    for method, rows in comparison.groupby("method", sort=False):
        judged = [
            experiment.tolerances[r.metric].allows(r.reproduced, r.published)
            for r in rows.itertuples()
            if r.metric in experiment.tolerances and not pd.isna(r.reproduced)
        ]
        if judged:
            counts[method] = (sum(judged), len(judged))
    return counts


def _verdict(experiment: Experiment, scale: str, row) -> str:
    if pd.isna(row.reproduced):
        return CITED if str(getattr(row, "method", "")).endswith(CITED_SUFFIX) else NOT_RUN
    if scale not in experiment.comparable_scales:
        return NOT_COMPARABLE
    tolerance = experiment.tolerances.get(row.metric)
    if tolerance is None:
        return LISTED
    return PASS if tolerance.allows(row.reproduced, row.published) else FAIL


def claim_mark(experiment: Experiment, claim: Claim) -> str:
    """A paper's claim PASSes or FAILs; an open question's hypothesis is answered YES or NO; a margin inside the
    seed noise is a TIE, a threshold missed while the metric still rises NOT CONVERGED (report/noise.py); n/a when
    unchecked."""
    if claim.holds is None:
        return {TIE: "TIE", NOT_CONVERGED: "NOT CONVERGED"}.get(claim.verdict, "n/a")
    if experiment.open_question:
        return "YES" if claim.holds else "NO"
    return "PASS" if claim.holds else "FAIL"


def render(
    experiment: Experiment,
    scale: str,
    results: pd.DataFrame | None,
    comparison: pd.DataFrame,
    claims: list[Claim],
    noise: pd.DataFrame | None = None,
) -> str:
    """The Markdown comparison: provenance, caveats, every published number beside ours, claims judged against the
    seed noise (report/noise.py), and the noise table itself."""
    lines = [
        f"# {experiment.name} at scale `{scale}`: {experiment.title}",
        "",
        f"Source: {experiment.source}.",
        "",
    ]
    if results is not None and len(results):
        labels = sorted(results["data"].astype(str).unique())
        data = labels[0] if len(labels) == 1 else f"{len(labels)} settings (column `data`), e.g. {labels[0]}"
        lines += [
            f"- Data: {data}",
            f"- Code revision(s): {', '.join(sorted(results['git_rev'].astype(str).unique()))}; "
            f"device: {', '.join(sorted(results['device'].astype(str).unique()))}",
            f"- Result rows: {len(results)} (one per configuration and seed) in `tables/{experiment.name}_{scale}.csv`",
        ]
    if scale not in experiment.comparable_scales:
        lines.append(
            f"- **Scale `{scale}` is reduced: its configuration differs from the paper's, so no number "
            "below is a replication of the published one.**"
        )
    if experiment.notes:
        lines.append(f"- {experiment.notes}")
    if len(comparison):
        verdicts = comparison["verdict"].value_counts()
        lines += [
            "",
            "## Published vs reproduced",
            "",
            "Summary: " + ", ".join(f"{n} {v}" for v, n in verdicts.items()),
            "",
        ]
        agreement = agreement_by_method(experiment, comparison)
        if agreement:
            reduced = "" if scale in experiment.comparable_scales else " (for reference only: this scale is reduced)"
            lines += [
                f"Within the stated tolerances, by method{reduced}: "
                + ", ".join(f"{m} {k}/{n} ({k / n:.0%})" for m, (k, n) in agreement.items()),
                "",
            ]
        keys = list(experiment.keys) + (["epoch"] if "epoch" in comparison.columns else [])
        header = [
            *keys,
            "metric",
            "published",
            "reproduced (mean +- std, seeds)",
            "delta",
            "tolerance",
            "verdict",
        ]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in comparison.itertuples():
            values = [str(getattr(row, k)) for k in keys]
            std = 0 if pd.isna(row.reproduced_std) else row.reproduced_std
            reproduced = "" if pd.isna(row.reproduced) else f"{row.reproduced:.4g} +- {std:.2g} ({int(row.seeds)})"
            delta = "" if pd.isna(row.delta) else f"{row.delta:+.3g} ({row.delta_rel:+.1%})"
            lines.append(
                "| "
                + " | ".join(
                    [
                        *values,
                        row.metric,
                        f"{row.published:.4g}",
                        reproduced,
                        delta,
                        row.tolerance,
                        row.verdict,
                    ]
                )
                + " |"
            )
    if claims and experiment.open_question:  # hypotheses, not claims of the paper: each is answered yes or no
        lines += ["", f"## Open question: {experiment.open_question}", "", "Hypotheses, answered on these results:", ""]
    elif claims:
        lines += ["", "## Qualitative claims of the paper, checked on these results", ""]
    for claim in claims:
        detail = f" ({claim.detail})" if claim.detail else ""
        lines.append(f"- **{claim_mark(experiment, claim)}**: {claim.text}{detail}")
    if claims and any(claim.margin is not None for claim in claims):
        lines += ["", NOISE_RULE]
    if noise is not None and len(noise):
        pooled = noise[noise["setting"] == "pooled"]
        lines += ["", f"## Seed noise ({pooled['source'].iloc[0] if len(pooled) else noise['source'].iloc[0]})", ""]
        lines += ["| metric | seed sigma | dof |", "|---|---|---|"]
        lines += [f"| {r.metric} | {r.std:.4g} | {r.dof} |" for r in pooled.itertuples()]
        lines += ["", f"Per seed group: `tables/{experiment.name}_{scale}_noise.csv`."]
    failures = [] if not len(comparison) else comparison[comparison["verdict"] == FAIL]
    if len(failures):
        lines += [
            "",
            f"**Disagreement with the paper: {len(failures)} published number(s) are outside tolerance "
            "(rows marked FAIL above).**",
        ]
    return "\n".join(lines) + "\n"
