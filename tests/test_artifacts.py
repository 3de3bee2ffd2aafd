"""Lean artifacts: extra tables keyed by config_key (the result row holds the configuration; every smoke run's extra
tables are checked in test_experiments), figures with the same bytes for the same data and under ~300 KB, no
comparison for a scale without rows, beyond_* reusing wvq_fig12's rows."""

import re

import numpy as np
import pandas as pd
import pytest
import torch

from replicate.experiments import beyond, wvq_fig12
from replicate.registry import EXPERIMENTS
from replicate.report.plotting import figure, png_bytes, save
from replicate.results import (
    EXTRA_TABLES,
    FIGURES,
    TABLES,
    Workspace,
    config_id,
    config_key,
    identity,
    read_csv,
    result_path,
    with_configuration,
)
from replicate.runner import ResultStore, write_report

FIGURE_BUDGET = 300_000  # bytes


def committed_results() -> list[tuple[str, str]]:
    """(experiment, scale) of every committed result table."""
    return [(n, s) for n in EXPERIMENTS for s in ("cpu", "paper") if result_path(n, s, TABLES).exists()]


def test_config_key_is_twelve_hex_digits_stable_and_distinct():
    first = config_id(wvq_fig12.make("gaussian", 0.0, "wasserstein"))
    second = config_id(wvq_fig12.make("gaussian", 1.0, "wasserstein"))
    assert re.fullmatch(r"[0-9a-f]{12}", config_key(first))
    assert config_key(first) == config_key(str(first)) and config_key(first) != config_key(second)
    row = identity("e", "smoke", wvq_fig12.make("gaussian", 0.0, "wasserstein"), "data")
    assert list(row)[2:4] == ["config_id", "config_key"] and row["config_key"] == config_key(first)


@pytest.mark.results
@pytest.mark.parametrize("name,scale", committed_results())
def test_committed_keys_follow_from_the_ids_and_every_extra_row_has_its_result_row(name, scale):
    """A config_id changed without its key (or an extra table left behind) would detach curves from their rows."""
    results = read_csv(result_path(name, scale, TABLES))
    assert (results["config_key"] == results["config_id"].map(config_key)).all()
    for kind in EXTRA_TABLES:
        extra = read_csv(result_path(name, scale, TABLES, kind))
        if extra is not None:
            assert extra.columns[0] == "config_key" and "config_id" not in extra.columns, kind
            assert set(extra["config_key"]) <= set(results["config_key"]), kind


def test_rerunning_a_configuration_replaces_its_extra_rows_which_join_to_its_result_row(tmp_path):
    experiment = EXPERIMENTS["wvq_fig12"]
    config = experiment.configs("smoke")[0]
    store = ResultStore(experiment, "smoke", tmp_path)
    row = identity(experiment.name, "smoke", config, "data")
    for value in (1.0, 2.0):  # a forced rerun
        store.add(row, {"quant_error": value}, {"curves": [{"step": 0, "quant_error": value}]})
    store.save()
    curves = read_csv(result_path(experiment.name, "smoke", tmp_path, "curves"))
    assert curves.to_dict("records") == [{"config_key": row["config_key"], "step": 0, "quant_error": 2.0}]
    results = read_csv(result_path(experiment.name, "smoke", tmp_path))
    joined = with_configuration(curves, results, ["method", "mu"])
    assert joined[["method", "mu"]].to_dict("records") == [{"method": config.method, "mu": config.mu}]


def scatter(seed: int):
    """A dense scatter with a legend and text: antialiasing and fonts, the parts most likely to vary."""
    points = np.random.default_rng(seed).normal(size=(20_000, 2))
    fig, axes = figure(1, 1, width=4, height=3)
    axes[0, 0].scatter(points[:, 0], points[:, 1], s=2, linewidths=0, label="points")
    axes[0, 0].legend()
    axes[0, 0].set_title("a dense scatter")
    return fig


def test_the_same_figure_gives_the_same_bytes_and_an_unchanged_file_is_not_rewritten(tmp_path):
    assert png_bytes(scatter(0)) == png_bytes(scatter(0)) != png_bytes(scatter(1))
    path = save(scatter(0), tmp_path / "f.png")
    before = path.stat()
    save(scatter(0), path)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == (before.st_mtime_ns, before.st_ino)
    save(scatter(1), path)
    assert path.read_bytes() == png_bytes(scatter(1))


@pytest.mark.results
def test_every_committed_figure_is_under_the_size_budget():
    sizes = {path.name: path.stat().st_size for path in FIGURES.glob("*.png")}
    assert sizes and {name: size for name, size in sizes.items() if size > FIGURE_BUDGET} == {}


def test_a_scale_without_result_rows_gets_no_comparison(tmp_path):
    assert write_report(EXPERIMENTS["wvq_table1"], "cpu", tmp_path) == []
    assert not list(tmp_path.iterdir())


@pytest.mark.results
def test_no_committed_comparison_stands_without_its_result_table():
    orphans = [p.name for p in TABLES.glob("*.md") if not p.with_suffix(".csv").exists()]
    orphans += [
        p.name
        for p in TABLES.glob("*_comparison.csv")
        if not p.with_name(p.name.removesuffix("_comparison.csv") + ".csv").exists()
    ]
    assert orphans == []


def test_beyond_copies_wvq_fig12s_row_and_curve_of_the_same_configuration_and_runs_the_others(tmp_path):
    shared = beyond.density_configs("smoke")[2]  # Gaussian features at mu = 0, d = 8, the feature target
    assert config_id(shared) in {config_id(c) for c in wvq_fig12.configs("smoke")}
    assert beyond.fig12_result(shared, tmp_path) is None  # wvq_fig12 not run: beyond runs it itself
    workspace = Workspace(torch.device("cpu"), tmp_path / "runs")
    ran = wvq_fig12.run(shared, workspace)
    store = ResultStore(wvq_fig12.EXPERIMENT, "smoke", tmp_path)
    provenance = {"git_rev": "abc1234", "device": "cpu", "seconds": 1.0}
    store.add(identity("wvq_fig12", "smoke", shared, "data"), {**ran.metrics, **provenance}, ran.extra_tables)
    store.save()
    reused = beyond.fig12_result(shared, tmp_path)
    assert reused.metrics.pop("reused_from") == "wvq_fig12_smoke.csv (git_rev abc1234)"
    assert reused.metrics == pytest.approx(ran.metrics, rel=1e-9)  # as the table holds them: 10 significant digits
    copied, curve = pd.DataFrame(reused.extra_tables["curves"]), pd.DataFrame(ran.extra_tables["curves"])
    assert list(copied.columns) == list(curve.columns) and np.allclose(copied, curve, rtol=1e-9)
    assert beyond.fig12_result(beyond.density_configs("smoke")[0], tmp_path) is None  # d = 1: not wvq_fig12's
