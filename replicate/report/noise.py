"""Run-to-run noise and the tie rule: one implementation for every comparative claim (issue 36).

Noise floor. The seed noise of a metric is the pooled standard deviation over an experiment's seed groups: result
rows whose configurations differ only in their `seed` (the config_id without its top-level seed), pooled over the
groups with at least two seeds, sigma^2 = sum_g (n_g - 1) s_g^2 / sum_g (n_g - 1), with sum_g (n_g - 1) degrees of
freedom. An experiment without a seed group borrows the floor of the experiment its `noise_from` names, at the same
scale, and every verdict says so. The floors used are written as data: tables/E_S_noise.csv.

Where both sides of a comparison have two seeds or more, their own pooled spread is the claim's sigma instead
(own_floor: the table's pooled floor mixes settings of different scales).

Tie rule. A comparative claim ("A has a higher U than B") states its margin in the claim's favour, mean(A) - mean(B)
over seeds. It holds when the margin exceeds MARGIN_SIGMAS * sigma * sqrt(1/n_A + 1/n_B), fails below minus that,
and is a **tie** in between: with normal seed noise of the floor's sigma, a two-sided test at about the 95% level. A
threshold claim ("U >= 0.95") compares mean(A) - bar with MARGIN_SIGMAS * sigma / sqrt(n_A). A threshold claim that
fails beyond the noise while its metric still rises over the last evaluations is **not converged** at this budget:
its slope per epoch and the epochs the trend would need are in the verdict. A claim without a measured floor keeps
its verdict, marked "no seed noise measured".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from replicate.results import read_csv, result_path
from replicate.spec import NOT_CONVERGED, TIE, Claim, Experiment, Margin

MARGIN_SIGMAS = 2.0  # the tie rule's multiple of the standard error of the margin (module docstring)
SLOPE_EPOCHS = 3  # a threshold claim's trend: the least-squares slope over the last evaluations (at most this many)
NOISE_RULE = (
    f"Verdicts against the seed noise: a margin within {MARGIN_SIGMAS:g} x seed sigma x sqrt(1/n_A + 1/n_B) is a TIE; "
    "a threshold missed beyond the noise while the metric still rises is NOT CONVERGED (replicate/report/noise.py)."
)
NOISE_COLUMNS = ("metric", "setting", "seeds", "mean", "std", "dof", "source")


def seedless(config_id: str) -> str:
    """A configuration's id without its top-level `seed=N` (a nested configuration's seed, in parentheses, stays):
    the rows of one seed group share it."""
    depth, start, parts = 0, 0, []
    for index, char in enumerate(config_id + ","):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(config_id[start:index])
            start = index + 1
    return ",".join(part for part in parts if not part.startswith("seed="))


def seed_spread(results: pd.DataFrame, metrics: Sequence[str], source: str) -> pd.DataFrame:
    """One row per seed group with at least two seeds and metric (its seeds, mean, std with ddof 1), then one pooled
    row per metric (setting "pooled"): the noise table (NOISE_COLUMNS)."""
    rows = []
    groups = results.groupby(results["config_id"].map(seedless).rename("setting"), sort=False)
    for metric in [m for m in metrics if m in results.columns]:
        pooled_ss, pooled_dof = 0.0, 0
        for setting, group in groups:
            values = pd.to_numeric(group[metric], errors="coerce").dropna()
            if len(values) < 2:
                continue
            pooled_ss += float(values.var(ddof=1)) * (len(values) - 1)
            pooled_dof += len(values) - 1
            label = setting if len(setting) <= 80 else f"{setting[:77]}..."
            seeds = " ".join(str(s) for s in group.loc[values.index, "seed"]) if "seed" in group else str(len(values))
            rows.append((metric, label, seeds, values.mean(), values.std(ddof=1), len(values) - 1, source))
        if pooled_dof:
            rows.append((metric, "pooled", "", math.nan, math.sqrt(pooled_ss / pooled_dof), pooled_dof, source))
    return pd.DataFrame(rows, columns=list(NOISE_COLUMNS))


def floors(noise: pd.DataFrame) -> dict[str, tuple[float, int, str]]:
    """metric -> (sigma, degrees of freedom, source) from a noise table's pooled rows."""
    pooled = noise[noise["setting"] == "pooled"]
    return {r.metric: (float(r.std), int(r.dof), str(r.source)) for r in pooled.itertuples()}


def beats(
    text: str,
    metric: str,
    a: Sequence[float],
    b: Sequence[float],
    detail: str = "",
    *,
    strict: bool = True,
    floor: tuple[float, int, str] | None = None,
) -> Claim:
    """A comparative claim: A's seed mean above B's (negate both for a lower-is-better metric); `strict=False`: an
    equal mean holds too ("highest" when both use every code); `floor`: a derived statistic's own (spec.Margin)."""
    a, b = pd.Series(a, dtype=float), pd.Series(b, dtype=float)
    margin = float(a.mean() - b.mean())
    holds = margin > 0 or (not strict and margin == 0)
    spreads = (float(a.std(ddof=1)), float(b.std(ddof=1))) if min(len(a), len(b)) >= 2 else ()
    return Claim(text, holds, detail, Margin(metric, margin, (len(a), len(b)), floor=floor, spreads=spreads))


def at_least(
    text: str, metric: str, values: Sequence[float], bar: float, detail: str = "", *, keys: Sequence[str] = ()
) -> Claim:
    """A threshold claim: the seed mean of `values` at or above `bar`; `keys` (config_key of the rows) lead to the
    rows' curves, whose trend decides "not converged"."""
    margin = float(pd.Series(values).mean() - bar)
    return Claim(text, margin >= 0, detail, Margin(metric, margin, (len(values),), tuple(keys)))


def threshold(margin: Margin, sigma: float) -> float:
    """The tie rule's bound on |margin| (module docstring)."""
    return MARGIN_SIGMAS * sigma * math.sqrt(sum(1 / n for n in margin.counts))


def trend(curves: pd.DataFrame | None, margin: Margin) -> float | None:
    """The metric's least-squares slope per epoch over the last SLOPE_EPOCHS evaluations, averaged over the claim's
    rows (their curves); None without curves."""
    if curves is None or not margin.keys or "epoch" not in curves or margin.metric not in curves:
        return None
    shown = curves[curves["config_key"].isin(margin.keys)]
    means = shown.groupby("epoch")[margin.metric].mean().sort_index().tail(SLOPE_EPOCHS)
    if len(means) < 2:
        return None
    epochs = pd.Series(means.index, dtype=float)
    centred = epochs - epochs.mean()
    return float((centred * (means.values - means.mean())).sum() / (centred**2).sum())


def own_floor(margin: Margin) -> tuple[float, int, str] | None:
    """The pooled seed spread of the claim's own sides where each has two seeds or more: it speaks for the very
    setting compared, where the experiment's pooled floor mixes settings of other scales (E at d = 1 is 1e-5, at
    d = 16 near 1)."""
    if not margin.spreads:
        return None
    dof = sum(n - 1 for n in margin.counts)
    pooled = sum((n - 1) * s**2 for n, s in zip(margin.counts, margin.spreads, strict=True)) / dof
    return math.sqrt(pooled), dof, "the compared runs' own seeds"


def floor_for(margin: Margin, noise: dict[str, tuple[float, int, str]]) -> tuple[float, int, str] | None:
    """The (sigma, dof, source) a margin is judged with: its sides' own seeds, else its own floor, else the table's."""
    return own_floor(margin) or margin.floor or noise.get(margin.metric)


def judge(claim: Claim, noise: dict[str, tuple[float, int, str]], curves: pd.DataFrame | None = None) -> Claim:
    """The claim under the tie rule (module docstring): its margin beside the noise in the detail; a margin inside
    the noise is a tie; a failed threshold claim whose metric still rises is not converged."""
    margin = claim.margin
    if margin is None or claim.holds is None:
        return claim
    detail = f"{claim.detail}; " if claim.detail else ""
    floor = floor_for(margin, noise)
    if floor is None or not math.isfinite(floor[0]):
        return dataclasses.replace(claim, detail=f"{detail}margin {margin.margin:+.4g}, no seed noise measured")
    sigma, dof, source = floor
    bound = threshold(margin, sigma)
    seeds = "+".join(str(n) for n in margin.counts)
    detail += (
        f"margin {margin.margin:+.4g} vs noise {bound:.3g} ({MARGIN_SIGMAS:g} x seed sigma {sigma:.3g} from {source}, "
        f"{dof} dof, x sqrt over {seeds} seeds)"
    )
    if abs(margin.margin) <= bound:
        return dataclasses.replace(claim, holds=None, verdict=TIE, detail=detail)
    if not claim.holds and len(margin.counts) == 1:
        slope = trend(curves, margin)
        if slope is not None and slope > 0:
            needed = -margin.margin / slope
            detail += f"; still rising {slope:+.3g} an epoch over the last evaluations: ~{needed:.1f} more epochs"
            return dataclasses.replace(claim, holds=None, verdict=NOT_CONVERGED, detail=detail)
    return dataclasses.replace(claim, detail=detail)


def noise_table(experiment: Experiment, results: pd.DataFrame, scale: str, borrowed: pd.DataFrame | None):
    """The experiment's noise table: its own seed groups where it has any, else the table of `noise_from`."""
    own = seed_spread(results, experiment.metrics, f"{experiment.name} {scale}")
    if len(own) or borrowed is None or experiment.noise_from is None:
        return own
    return seed_spread(borrowed, experiment.metrics, f"{experiment.noise_from} {scale} (borrowed)")


def noise_of(experiment: Experiment, results: pd.DataFrame, scale: str, tables: Path) -> pd.DataFrame:
    """The noise table the experiment's claims are judged with (noise_table), reading `noise_from`'s results."""
    borrowed = None
    if experiment.noise_from is not None:
        borrowed = read_csv(result_path(experiment.noise_from, scale, tables))
    return noise_table(experiment, results, scale, borrowed)


def judged_claims(
    experiment: Experiment,
    results: pd.DataFrame | None,
    scale: str,
    tables: Path,
    noise: pd.DataFrame | None = None,
) -> list[Claim]:
    """The experiment's claims on its result rows, each judged under the tie rule with its noise table (`noise`, or
    noise_of's) and curves: what the comparison, the run summary and REPORT.md print."""
    if experiment.claims is None or results is None or not len(results):
        return []
    noise = floors(noise_of(experiment, results, scale, tables) if noise is None else noise)
    curves_path = result_path(experiment.name, scale, tables, "curves")
    curves = read_csv(curves_path) if curves_path.exists() else None
    return [judge(claim, noise, curves) for claim in experiment.claims(results)]
