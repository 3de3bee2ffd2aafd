"""Every registered experiment runs at smoke scale through the runner and writes its result table, its
comparison with the paper and its figures (the path a user's `./run_all.sh --scale smoke` takes)."""

import pytest

from replicate.experiments import wvq_vqvae
from replicate.registry import EXPERIMENTS
from replicate.results import read_csv, result_path
from replicate.runner import run_experiment


# Over a minute each on 2 CPU cores (70-90 s of one core's time), run by CI with `-m slow`; the default run keeps
# a generation arm end to end (test_generation_experiments.py) and the schedules' unit tests.
SLOW = {"dq_cifar_sweep", "dq_generation", "wvq_generation"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in EXPERIMENTS])
def test_every_experiment_runs_at_smoke_scale_and_writes_table_comparison_and_figures(name, tmp_path, monkeypatch):
    monkeypatch.setattr(wvq_vqvae, "RUNS", tmp_path / "runs")
    experiment = EXPERIMENTS[name]
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    outcome = run_experiment(experiment, "smoke", tables=tables, figures=figures)
    assert result_path(name, "smoke", tables, "md").exists()
    if experiment.published:
        assert result_path(name, "smoke", tables, "comparison").exists()
    if experiment.missing and experiment.missing("smoke"):
        assert outcome.status == "skipped" and outcome.reason == experiment.missing("smoke")
        return
    assert outcome.status == "ran", outcome.reason
    results = read_csv(result_path(name, "smoke", tables))
    assert len(results) == len(experiment.configs("smoke")) == outcome.new_rows
    assert results["config_id"].is_unique
    if experiment.figures is not None:
        drawn = [p for p in outcome.outputs if p.suffix == ".png"]
        assert drawn and all(p.exists() and p.parent == figures for p in drawn), "no figure written"
