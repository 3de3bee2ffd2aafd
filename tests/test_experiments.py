"""Every registered experiment runs at smoke scale through the runner and writes its result table, its
comparison with the paper and its figures (the path a user's `./run_all.sh --scale smoke` takes)."""

import pytest

from replicate.registry import EXPERIMENTS
from replicate.results import EXTRA_TABLES, read_csv, result_path
from replicate.runner import run_experiment

# Run by CI with `-m slow`. Over a minute each on 2 CPU cores (70-90 s of one core's time): the default run keeps a
# generation arm end to end (test_generation_experiments.py) and the schedules' unit tests. About 20 s each on an
# AVX2-only 2-core host (2026-12-03), the same smoke VQ-VAE tables as wvq_table6, which the default run keeps.
SLOW = {"dq_cifar_sweep", "dq_generation", "wvq_generation"} | {f"wvq_table{n}" for n in (1, 2, 7, 8, 9, 10)}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in EXPERIMENTS])
def test_every_experiment_runs_at_smoke_scale_and_writes_table_comparison_and_figures(name, tmp_path):
    experiment = EXPERIMENTS[name]
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    outcome = run_experiment(experiment, "smoke", tables=tables, figures=figures, runs=tmp_path / "runs")
    if experiment.missing and experiment.missing("smoke"):
        assert outcome.status == "skipped" and outcome.reason == experiment.missing("smoke")
        assert not result_path(name, "smoke", tables, "md").exists()  # nothing ran: REPORT.md says so
        return
    assert outcome.status == "ran", outcome.reason
    assert result_path(name, "smoke", tables, "md").exists()
    if experiment.published:
        assert result_path(name, "smoke", tables, "comparison").exists()
    results = read_csv(result_path(name, "smoke", tables))
    assert len(results) == len(experiment.configs("smoke")) == outcome.new_rows
    assert results["config_id"].is_unique
    configuration = set(results.loc[:, "config_id":"data"].columns) - {"config_key"}
    for kind in EXTRA_TABLES:  # keyed by config_key alone: the result row holds the configuration
        extra = read_csv(result_path(name, "smoke", tables, kind))
        assert extra is None or (extra.columns[0] == "config_key" and not configuration & set(extra.columns)), kind
    if experiment.figures is not None:
        drawn = [p for p in outcome.outputs if p.suffix == ".png"]
        assert drawn and all(p.exists() and p.parent == figures for p in drawn), "no figure written"
