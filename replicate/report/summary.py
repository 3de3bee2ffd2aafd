"""REPORT.md, the one page of every replication: for each paper artifact (each registered experiment) what it
reproduces, at which scale and on which data, its verdict class, how many published numbers fall within their
stated tolerances and how many of the paper's claims hold, links to its comparison and figures, and the code
revisions that produced it; then the findings where a claim does not hold, each with its evidence.

Generated from the committed result tables only (`python -m replicate report --all`, also the last step of
`./run_all.sh`); a test checks that the committed REPORT.md is what the tables give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from replicate.registry import EXPERIMENTS
from replicate.report import distortion
from replicate.report.compare import compare, curves_for
from replicate.report.noise import judged_claims
from replicate.results import FIGURES, ROOT, TABLES, config_id, read_results, result_path, write_atomic
from replicate.spec import FAILS, HOLDS, NOT_CONVERGED, TIE, UNCHECKED, Claim, Experiment

WITHIN, QUALITATIVE, DISAGREEMENT, ANSWERED, PARTIAL, NOT_RUN, NOT_YET = (
    "reproduced within tolerance",
    "reproduced qualitatively at reduced scale",
    "disagreement found",
    "open question answered",  # beyond the papers: its claims are hypotheses, each answered with numbers
    "partly run here",  # some configurations of the scale are committed, the rest are queued
    "not runnable here",
    "not yet run here",  # a cpu-scale version exists; its runs are queued
)
SHOWN_LABELS = 2  # data labels listed in a line; more are counted (every label is in the comparison)
REPORTED_SCALES = ("paper", "cpu")  # the committed scales, the published configuration first


@dataclass
class Artifact:
    """One line of the report."""

    experiment: Experiment
    scale: str = ""
    data: str = ""
    verdict: str = NOT_RUN
    within: int = 0  # reproduced published numbers within their stated tolerance
    judged: int = 0  # reproduced published numbers that have a tolerance
    claims: list[Claim] = field(default_factory=list)
    runs: int = 0  # configurations of the scale with a committed result row
    planned: int = 0  # configurations of the scale
    outputs: list[str] = field(default_factory=list)
    revisions: str = ""
    reason: str = ""  # why it is not runnable here


def fails(claim: Claim) -> bool:
    """A claim checked and found not to hold (holds may be a numpy bool; None = not checkable)."""
    return claim.holds is not None and not claim.holds


def claim_tally(claims: list[Claim]) -> str:
    """ "k of n" claims holding beyond the seed noise, with the ties and the not converged among the n."""
    classes = [claim.verdict_class for claim in claims if claim.verdict_class != UNCHECKED]
    if not classes:
        return "-"
    undecided = [f"{classes.count(c)} {c}" for c in (TIE, NOT_CONVERGED) if c in classes]
    return f"{classes.count(HOLDS)} of {len(classes)}" + (f" ({', '.join(undecided)})" if undecided else "")


def verdict(scale: str, experiment: Experiment, failed_numbers: int, claims: list[Claim], missing_runs: int = 0) -> str:
    """The class of a reproduced artifact: a claim that does not hold, or a published number outside its tolerance
    at the published configuration, is a disagreement; otherwise, while some of the scale's configurations have no
    committed row, partly run (a claim over rows not yet run cannot be checked, so nothing is reproduced yet);
    then within tolerance at the published configuration, qualitative at a reduced one. An experiment that answers
    an open question is answered, whichever way, once all of its runs are in."""
    comparable = scale in experiment.comparable_scales
    if not experiment.open_question and (any(fails(c) for c in claims) or (comparable and failed_numbers)):
        return DISAGREEMENT
    if missing_runs:
        return PARTIAL
    if experiment.open_question:
        return ANSWERED
    return WITHIN if comparable else QUALITATIVE


def assess(experiment: Experiment, tables: Path = TABLES, figures: Path = FIGURES) -> Artifact:
    """The report line of one experiment, from its committed tables at the first of REPORTED_SCALES it has."""
    found = [s for s in REPORTED_SCALES if result_path(experiment.name, s, tables).exists()]
    if not found:
        if experiment.configs("cpu") and not (experiment.missing and experiment.missing("cpu")):
            return Artifact(experiment, verdict=NOT_YET, reason="its cpu-scale version has no committed result yet")
        reasons = [experiment.missing(s) for s in REPORTED_SCALES] if experiment.missing else []
        reason = next((r for r in reasons if r), "no committed result at cpu or paper scale")
        return Artifact(experiment, reason=reason)
    scale = found[0]
    results = read_results(experiment, result_path(experiment.name, scale, tables))
    comparison = compare(experiment, results, scale, curves_for(experiment, scale, tables))
    claims = judged_claims(experiment, results, scale, tables)
    judged = [
        experiment.tolerances[row.metric].allows(row.reproduced, row.published)
        for row in comparison.itertuples()
        if row.metric in experiment.tolerances and not pd.isna(row.reproduced)
    ]
    planned = {config_id(config) for config in experiment.configs(scale)}
    runs = len(planned & set(results["config_id"]))
    outputs = [result_path(experiment.name, scale, tables, "md")]
    outputs += sorted(figures.glob(f"{experiment.name}_{scale}.png")) + sorted(
        figures.glob(f"{experiment.name}_*_{scale}.png")
    )
    return Artifact(
        experiment,
        scale=scale,
        data=data_labels(results),
        verdict=verdict(scale, experiment, judged.count(False), claims, len(planned) - runs),
        within=sum(judged),
        judged=len(judged),
        claims=claims,
        runs=runs,
        planned=len(planned),
        outputs=[_relative(path) for path in outputs if path.exists()],
        revisions=", ".join(sorted(results["git_rev"].astype(str).unique())) if "git_rev" in results else "",
    )


def data_labels(results: pd.DataFrame) -> str:
    labels = sorted(results["data"].astype(str).unique())
    more = len(labels) - SHOWN_LABELS
    return "; ".join(labels[:SHOWN_LABELS]) + (f"; and {more} more labels" if more > 0 else "")


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def render(artifacts: list[Artifact], extra: list[str] = ()) -> str:
    """The Markdown page; `extra`: further sections' lines (report/distortion.py), at the end."""
    lines = [
        "# Report: every artifact of both papers",
        "",
        "Generated by `python -m replicate report --all` from the committed tables (do not edit). Scale `paper` is the",
        "published configuration; `cpu` is a reduced one, whose numbers are never replications (tolerances are",
        "counted for reference only). Counts: the scale's configurations with a committed result row; reproduced",
        "published numbers within their stated tolerance; the paper's claims that hold on our results beyond the seed "
        "noise, with the ties (a margin inside the noise) and the not converged among those checked.",
        "",
        "| artifact | experiment | scale | data | verdict | runs committed | numbers within tolerance |"
        " claims holding | outputs | revisions |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in artifacts:
        e = a.experiment
        if a.verdict in (NOT_RUN, NOT_YET):
            empty = " - |" * 5
            lines.append(f"| {e.source}: {e.title} | `{e.name}` | - | - | {a.verdict}: {a.reason} |{empty}")
            continue
        numbers = f"{a.within} of {a.judged}" if a.judged else "-"
        claims = claim_tally(a.claims)
        links = ", ".join(f"[{Path(o).name}]({o})" for o in a.outputs)
        lines.append(
            f"| {e.source}: {e.title} | `{e.name}` | {a.scale} | {a.data} | {a.verdict} | {a.runs} of {a.planned} | "
            f"{numbers} | {claims} | "
            f"{links} | {a.revisions} |"
        )
    lines += ["", "## Findings: where a claim does not hold on our results", ""]
    for a in artifacts:
        if not a.experiment.open_question:
            for claim in filter(fails, a.claims):
                lines.append(f"- `{a.experiment.name}` ({a.scale}): {claim.text}. Evidence: {claim.detail}")
    lines += ["", "## Answers to open questions of the papers", ""]
    for a in artifacts:
        if a.experiment.open_question and a.claims:
            lines.append(f"- `{a.experiment.name}` ({a.scale}): {a.experiment.open_question}")
            for claim in a.claims:
                answer = {HOLDS: "yes", FAILS: "no"}.get(claim.verdict_class, claim.verdict_class)
                lines.append(f"  - {claim.text}: **{answer}** ({claim.detail})")
    lines += list(extra)
    return "\n".join(lines) + "\n"


def summary_page(out: Path = ROOT) -> str:
    """REPORT.md's text from `out`/tables and `out`/figures."""
    artifacts = [assess(e, out / "tables", out / "figures") for e in EXPERIMENTS.values()]
    return render(artifacts, distortion.render(distortion.correlations(out / "tables")))


def write_summary(out: Path = ROOT) -> Path:
    """REPORT.md in `out` (summary_page)."""
    path = out / "REPORT.md"
    write_atomic(path, summary_page(out))
    return path
