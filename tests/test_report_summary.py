"""REPORT.md: the verdict rule, and the committed page equals what the committed tables give."""

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

from replicate.registry import EXPERIMENTS
from replicate.report.summary import (
    ANSWERED,
    DISAGREEMENT,
    PARTIAL,
    QUALITATIVE,
    WITHIN,
    assess,
    render,
    summary_page,
    verdict,
)
from replicate.results import ROOT, identity, result_path, write_csv
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


def test_an_artifact_with_configurations_not_yet_run_is_partly_run_unless_a_claim_already_fails():
    experiment = dataclasses.replace(EXPERIMENTS["wvq_table6"], comparable_scales=("paper",))
    holds, fails = Claim("a", True), Claim("c", False)
    assert verdict("paper", experiment, 0, [holds], missing_runs=1) == PARTIAL
    assert verdict("cpu", experiment, 0, [], missing_runs=4) == PARTIAL
    assert verdict("paper", experiment, 1, [holds], missing_runs=1) == DISAGREEMENT
    assert verdict("cpu", experiment, 0, [fails], missing_runs=1) == DISAGREEMENT
    question = dataclasses.replace(experiment, open_question="does it?")
    assert verdict("cpu", question, 0, [fails], missing_runs=1) == PARTIAL
    assert verdict("cpu", question, 0, [fails]) == ANSWERED


def test_the_report_counts_the_committed_rows_of_the_scale_configurations(tmp_path):
    experiment = EXPERIMENTS["wvq_table6"]
    planned = experiment.configs("cpu")
    retired = dataclasses.replace(planned[0], epochs=1)
    metrics = dict.fromkeys(experiment.metrics, float("nan")) | {"git_rev": "abc1234", "device": "cpu", "seconds": 1.0}
    metrics |= {"utilization": 0.9, "perplexity": 900.0, "psnr": 25.0, "ssim": 0.8, "rec_mse": 0.03}
    rows = pd.DataFrame([{**identity("wvq_table6", "cpu", c, "d"), **metrics} for c in (planned[0], retired)])
    (tmp_path / "tables").mkdir()
    write_csv(result_path("wvq_table6", "cpu", tmp_path / "tables"), rows)
    artifact = assess(experiment, tmp_path / "tables", tmp_path / "figures")
    assert (artifact.runs, artifact.planned, artifact.verdict) == (1, len(planned), PARTIAL)
    assert f"| {PARTIAL} | 1 of {len(planned)} |" in render([artifact])


@pytest.mark.results
def test_committed_report_is_what_the_committed_tables_give():
    """Reads every committed table: regenerate with `python -m replicate report --all` after a run."""
    assert (ROOT / "REPORT.md").read_text() == summary_page()


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
    for read in (name, EXPERIMENTS[name].noise_from):  # and the table whose seeds give its noise, if it borrows
        committed = ROOT / "tables" / f"{read}_{scale}.csv"
        if read and committed.exists():
            shutil.copy(committed, tmp_path / committed.name)
    for path in write_report(EXPERIMENTS[name], scale, tmp_path):
        assert path.read_text() == (ROOT / "tables" / path.name).read_text(), path.name
