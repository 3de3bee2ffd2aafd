"""wvq_table4 end to end at the paper's scale (K = 8192, d = 8, N = 100,000, 5 repeats; seconds on 2 cores):
spec -> run -> CSV -> comparison, with the published Table 4 within the stated tolerances."""

import dataclasses

import pandas as pd
import pytest

from replicate.registry import EXPERIMENTS
from replicate.results import result_path
from replicate.runner import run_experiment

TABLE4 = EXPERIMENTS["wvq_table4"]


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    outcome = run_experiment(TABLE4, "paper", tables=out / "tables", figures=out / "figures")
    return out, outcome


def test_paper_scale_reproduces_every_published_number_within_tolerance(paper_run):
    out, outcome = paper_run
    assert outcome.status == "ran" and outcome.new_rows == 50
    comparison = pd.read_csv(out / "tables" / "wvq_table4_paper_comparison.csv")
    assert len(comparison) == 30  # E, U, C x 5 spreads x 2 distributions
    failures = comparison[comparison["verdict"] != "pass"]
    assert failures.empty, failures[["distribution", "spread", "metric", "published", "reproduced"]].to_string()
    # the tolerances are the stated ones: E 3%, U 0.005, C 1%
    assert set(comparison["tolerance"]) == {"within 3%", "within +-0.005", "within 1%"}


def test_paper_scale_confirms_the_scale_invariance_claims(paper_run):
    out, _ = paper_run
    report = (out / "tables" / "wvq_table4_paper.md").read_text()
    assert report.count("**PASS**") == 4 and "FAIL" not in report


def test_result_rows_carry_configuration_and_provenance(paper_run):
    out, _ = paper_run
    results = pd.read_csv(out / "tables" / "wvq_table4_paper.csv")
    for column in (
        "experiment",
        "scale",
        "method",
        "K",
        "d",
        "N",
        "data",
        "seed",
        "git_rev",
        "quant_error",
        "utilization",
        "perplexity",
        "date",
        "torch",
        "device",
    ):
        assert column in results.columns
    assert results["config_id"].is_unique
    assert set(results["K"]) == {8192} and set(results["N"]) == {100_000}


def test_rerun_skips_finished_configurations_and_force_recomputes(tmp_path):
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    first = run_experiment(TABLE4, "smoke", tables=tables, figures=figures)
    second = run_experiment(TABLE4, "smoke", tables=tables, figures=figures)
    forced = run_experiment(TABLE4, "smoke", tables=tables, figures=figures, force=True)
    assert (first.new_rows, second.new_rows, forced.new_rows) == (8, 0, 8)
    assert len(pd.read_csv(result_path(TABLE4.name, "smoke", tables))) == 8


def test_interrupted_run_resumes_where_it_stopped(tmp_path):
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    calls = []

    def run_then_interrupt(config, device):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(config)
        return TABLE4.run(config, device)

    with pytest.raises(KeyboardInterrupt):
        run_experiment(dataclasses.replace(TABLE4, run=run_then_interrupt), "smoke", tables=tables, figures=figures)
    saved = pd.read_csv(result_path(TABLE4.name, "smoke", tables))
    assert len(saved) == 3  # the three finished configurations survived the interruption
    resumed = run_experiment(TABLE4, "smoke", tables=tables, figures=figures)
    assert resumed.new_rows == 5


def test_reduced_scale_is_never_reported_as_a_replication(tmp_path):
    run_experiment(TABLE4, "smoke", tables=tmp_path / "tables", figures=tmp_path / "figures")
    comparison = pd.read_csv(tmp_path / "tables" / "wvq_table4_smoke_comparison.csv")
    assert set(comparison["verdict"]) <= {"not comparable", "not run at this scale"}
    assert "is reduced" in (tmp_path / "tables" / "wvq_table4_smoke.md").read_text()
