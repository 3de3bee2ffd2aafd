"""What an experiment is: its configurations at each scale, how one configuration runs, and how its results are
compared with the paper (published file, matching keys, tolerances, qualitative claims, figures).

A leaf module: it imports nothing from the package, so that reports and comparisons load no training code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from replicate.results import Workspace

SCALES = ("smoke", "cpu", "paper")
ROW_COLUMNS = ("experiment", "scale", "config_id", "data", "git_rev", "device", "seconds")  # in every result row


@dataclass(frozen=True)
class Tolerance:
    """How far a reproduced mean may be from the published value: relative ("rel") or absolute ("abs")."""

    kind: str
    value: float

    def allows(self, reproduced: float, published: float) -> bool:
        if self.kind == "rel":
            return abs(reproduced - published) <= self.value * abs(published)
        return abs(reproduced - published) <= self.value

    def __str__(self) -> str:
        return f"within {self.value:.0%}" if self.kind == "rel" else f"within +-{self.value:g}"


def relative(fraction: float) -> Tolerance:
    return Tolerance("rel", fraction)


def absolute(amount: float) -> Tolerance:
    return Tolerance("abs", amount)


# The verdict classes of a claim (report/noise.py states the rule): it holds or fails beyond the run-to-run noise, its
# margin is inside the noise (a tie), or it fails a threshold while its metric still rises (not converged)
HOLDS, FAILS, TIE, NOT_CONVERGED, UNCHECKED = "holds", "fails", "tie", "not converged", "not checkable"


@dataclass(frozen=True)
class Margin:
    """What a comparative or threshold claim rests on, for the tie rule (report/noise.py): the metric, the margin in
    the claim's favour (seed means), the seeds behind each side (one count for a threshold) and the config_key of
    the rows whose curves show the metric's trend."""

    metric: str
    margin: float
    counts: tuple[int, ...]
    keys: tuple[str, ...] = ()
    # A floor of its own (sigma, dof, source) for a statistic derived from several rows (a ratio of two runs' E),
    # which the experiment's noise table cannot hold; None: the table's floor of `metric`
    floor: tuple[float, int, str] | None = None
    # The seed standard deviation of each side where every side has two seeds or more: their pooled spread is the
    # claim's own floor, before `floor` and the table's (report/noise.py)
    spreads: tuple[float, ...] = ()


@dataclass(frozen=True)
class Claim:
    """A qualitative statement of the paper, checked on our results: holds is None when it is not decided, and then
    `verdict` says why (TIE, NOT_CONVERGED; empty: it cannot be checked)."""

    text: str
    holds: bool | None
    detail: str = ""
    margin: Margin | None = None  # a comparative or threshold claim, judged against the seed noise
    verdict: str = ""

    @property
    def verdict_class(self) -> str:
        """HOLDS, FAILS, TIE, NOT_CONVERGED or UNCHECKED."""
        if self.holds is None:
            return self.verdict or UNCHECKED
        return HOLDS if self.holds else FAILS


@dataclass
class RunResult:
    """What one configuration produces: its metrics (one result row) and optional extra tables, by name:
    "curves" (per-step or per-epoch rows, with a `step` or `epoch` column), "points" (for scatter figures), ..."""

    metrics: dict[str, Any]
    extra_tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


# The result tables of one experiment at one scale, by kind ("" the results, "curves", "points", and "published",
# the paper's numbers), as read by the runner through results.result_path; a figure function turns them into named
# figures ("" -> figures/E_S.png, "scatter" -> figures/E_scatter_S.png).
Tables = dict[str, "pd.DataFrame"]
Figures = dict[str, "Figure"]


@dataclass(frozen=True)
class Experiment:
    name: str  # e.g. "wvq_table4"; also the stem of every output file
    title: str
    source: str  # paper, version and artifact it reproduces
    configs: Callable[[str], list]  # scale -> frozen configuration dataclasses (one result row each)
    run: Callable[[Any, Workspace], RunResult]  # (configuration, its device and run folders) -> its result
    data: Callable[[Any], str]  # provenance label of the data a configuration uses
    published: str | None = None  # file under data/published/
    keys: tuple[str, ...] = ()  # configuration columns that identify a published row
    # The numeric metric columns of every result row: with ROW_COLUMNS and keys, the contract its readers check
    metrics: tuple[str, ...] = ()
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    comparable_scales: tuple[str, ...] = ("paper",)  # scales whose configuration is the published one
    # result row -> the epoch at which the paper read it (the comparison reads the row's curve there); None: the last
    published_epoch: Callable[[pd.Series], int | None] | None = None
    notes: str = ""  # caveats printed beside the comparison
    claims: Callable[[pd.DataFrame], list[Claim]] | None = None
    figures: Callable[[Tables, str], Figures] | None = None  # (result tables, scale) -> figures by name
    missing: Callable[[str], str | None] | None = None  # scale -> why the data or weights are unavailable
    # The experiment whose seed groups give this one's noise floor where it has none of its own (report/noise.py)
    noise_from: str | None = None
    # The open question of a paper that the experiment answers: its claims are then hypotheses, whose failure is an
    # answer, not a disagreement with the paper.
    open_question: str = ""
