"""REPORT.md: the verdict rule, and the committed page equals what the committed tables give."""

import dataclasses
import shutil

import numpy as np
import pytest

from replicate.registry import EXPERIMENTS
from replicate.report.summary import DISAGREEMENT, QUALITATIVE, WITHIN, assess, render, verdict
from replicate.results import ROOT
from replicate.runner import write_report
from replicate.spec import Claim


def test_a_failed_claim_or_a_failed_number_at_the_published_scale_is_a_disagreement():
    experiment = dataclasses.replace(EXPERIMENTS["wvq_table6"], comparable_scales=("paper",))
    holds, unknown, fails = Claim("a", True), Claim("b", None), Claim("c", np.bool_(False))
    assert verdict("paper", experiment, 0, [holds, unknown]) == WITHIN
    assert verdict("cpu", experiment, 0, [holds]) == QUALITATIVE
    assert verdict("cpu", experiment, 3, [holds]) == QUALITATIVE  # a reduced scale's numbers are not judged
    assert verdict("paper", experiment, 1, [holds]) == DISAGREEMENT
    assert verdict("cpu", experiment, 0, [holds, fails]) == DISAGREEMENT


@pytest.mark.results
def test_committed_report_is_what_the_committed_tables_give():
    """Reads every committed table: regenerate with `python -m replicate report --all` after a run."""
    expected = render([assess(experiment) for experiment in EXPERIMENTS.values()])
    assert (ROOT / "REPORT.md").read_text() == expected


def _committed_comparisons() -> list[tuple[str, str]]:
    """(experiment, scale) of every committed tables/E_S.md."""
    found = []
    for path in sorted((ROOT / "tables").glob("*.md")):
        for name in EXPERIMENTS:
            scale = path.stem.removeprefix(name + "_")
            if scale != path.stem and "_" not in scale:
                found.append((name, scale))
    return found


@pytest.mark.results
@pytest.mark.parametrize("name,scale", _committed_comparisons())
def test_every_committed_comparison_is_what_the_current_report_code_renders(name, scale, tmp_path):
    """A comparison rendered by older report code is stale: `python -m replicate report E --scale S` rewrites it."""
    committed = ROOT / "tables" / f"{name}_{scale}.csv"
    if committed.exists():
        shutil.copy(committed, tmp_path / committed.name)
    for path in write_report(EXPERIMENTS[name], scale, tmp_path):
        assert path.read_text() == (ROOT / "tables" / path.name).read_text(), path.name
