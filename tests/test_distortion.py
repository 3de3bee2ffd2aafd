"""REPORT.md's rank correlations (report/distortion.py): Spearman's rho as scipy computes it, one row per result
table and dataset with at least three runs, and the glossary."""

import pandas as pd
import pytest
from scipy.stats import spearmanr

from replicate.report.distortion import GLOSSARY, correlations, rank_correlation, render


def test_rank_correlation_is_spearmans_rho_with_tied_ranks_averaged():
    x = pd.Series([1.0, 2.0, 2.0, 5.0, 3.0])
    y = pd.Series([0.3, 0.1, 0.4, 0.9, 0.2])
    assert rank_correlation(x, y) == pytest.approx(spearmanr(x, y).statistic)


def test_each_table_and_dataset_with_three_runs_gets_its_rho_and_count(tmp_path):
    rows = [
        {"config_id": f"c{i}", "dataset": d, "quant_error": e, "utilization": u, "psnr": p}
        for i, (d, e, u, p) in enumerate(
            [("a", 1.0, 0.2, 30.0), ("a", 2.0, 0.9, 25.0), ("a", 3.0, 0.5, 20.0), ("b", 1.0, 0.1, 10.0)]
        )
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "wvq_table6_cpu.csv", index=False)
    found = correlations(tmp_path)
    assert list(found["dataset"]) == ["a"] and list(found["n"]) == [3]  # "b" has one run
    assert found["rho(quant_error, psnr)"].iloc[0] == pytest.approx(-1.0)
    assert found["rho(utilization, psnr)"].iloc[0] == pytest.approx(-0.5)
    page = "\n".join(render(found))
    assert "| `wvq_table6_cpu` | a | 3 | -1.00 | -0.50 |" in page
    assert all(term in page for term, _ in GLOSSARY)
