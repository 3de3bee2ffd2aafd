"""dq_synthetic and xp_synthetic: the grids, a smoke run of every code path, and the paper's claims on the
committed cpu-scale results (`./run_all.sh --only dq_synthetic,xp_synthetic --scale cpu` regenerates them)."""

import pandas as pd
import pytest

from replicate.registry import EXPERIMENTS
from replicate.results import TABLES, configuration_fields
from replicate.runner import run_experiment

DQ, XP = EXPERIMENTS["dq_synthetic"], EXPERIMENTS["xp_synthetic"]


def test_grid_has_three_seeds_per_configuration_and_the_same_budget_for_every_schedule():
    configs = DQ.configs("cpu")
    fields = pd.DataFrame([configuration_fields(c) for c in configs]).drop(columns="seed")
    per_setting = fields.value_counts(dropna=False)
    assert set(per_setting) == {3}
    assert {c.steps for c in configs} == {3000}
    assert {(c.schedule, c.warmup_steps) for c in configs} == {("early", 0), ("random", 0), ("deferred", 1500)}
    assert len(XP.configs("cpu")) == (5 + 1) * 2 * 4 * 3  # five quantizers and FSQ, 2 schedules, 4 dims, 3 seeds


def test_smoke_run_writes_results_curves_points_and_every_figure(tmp_path):
    run_experiment(DQ, "smoke", tables=tmp_path / "t", figures=tmp_path / "f")
    run_experiment(XP, "smoke", tables=tmp_path / "t", figures=tmp_path / "f")
    names = {p.name for p in (tmp_path / "f").iterdir()}
    assert {
        "dq_synthetic_latent_pca_smoke.png",
        "dq_synthetic_latent_tsne_smoke.png",
        "dq_synthetic_curves_smoke.png",
        "dq_synthetic_diagnostics_smoke.png",
        "xp_synthetic_smoke.png",
    } <= names
    curves = pd.read_csv(tmp_path / "t" / "dq_synthetic_smoke_curves.csv")
    assert curves.groupby("config_key")["step"].max().eq(59).all()
    points = tmp_path / "t" / "dq_synthetic_smoke_points.csv.gz"
    assert points.read_bytes()[:2] == b"\x1f\x8b" and set(pd.read_csv(points)["kind"]) >= {"embedding", "code"}


@pytest.fixture(scope="module")
def dq_claims():
    return {c.text: c for c in DQ.claims(pd.read_csv(TABLES / "dq_synthetic_cpu.csv"))}


@pytest.mark.parametrize(
    "what",
    [
        "a smaller average pairwise Euclidean code distance",
        "a lower codebook perplexity",
        "fewer mixture modes covered",
    ],
)
@pytest.mark.results
def test_cpu_results_show_early_quantization_shrinks_the_codebook(dq_claims, what):
    """Reads the committed tables/dq_synthetic_cpu.csv: checks the results, not the code."""
    claim = next(c for text, c in dq_claims.items() if what in text)
    assert claim.holds, claim.detail


@pytest.mark.results
@pytest.mark.parametrize("metric", ["code_dist_euclid", "perplexity", "modes_covered"])
def test_cpu_results_show_the_gap_growing_with_input_dimension(dq_claims, metric):
    """Reads the committed tables/dq_synthetic_cpu.csv: checks the results, not the code."""
    claim = dq_claims[f"the gap in {metric} grows with the input dimension"]
    assert claim.holds, claim.detail
