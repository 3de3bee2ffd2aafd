"""The two-peak benchmark (experiments/wvq_twopeak.py): its sampler, its configurations against the published
setting, the published figure's numbers keyed as the rows, and an atomic run that resumes to the same result."""

import dataclasses

import pandas as pd
import pytest
import torch

from replicate.data.synthetic import sample
from replicate.experiments import wvq_fig12, wvq_twopeak
from replicate.report.compare import load_published
from replicate.results import Workspace


def test_two_peak_features_are_an_equal_mixture_at_plus_and_minus_zeta():
    x = sample("two_peak", 20_000, 8, center=3.0, generator=torch.Generator().manual_seed(0))
    side = x.mean(1) > 0
    assert abs(side.float().mean().item() - 0.5) < 0.02
    assert torch.allclose(x[side].mean(0), torch.full((8,), 3.0), atol=0.05)
    assert torch.allclose(x[~side].mean(0), torch.full((8,), -3.0), atol=0.05)
    assert torch.allclose(x[side].std(0), torch.ones(8), atol=0.05)


def test_cpu_rows_keep_the_published_setting_and_only_mmd_is_subsampled_and_says_so():
    configs = wvq_twopeak.configs("cpu")
    assert {(c.K, c.d, c.steps, c.train_samples, c.distribution) for c in configs} == {
        (16384, 8, 10_000, 50_000, "two_peak")
    }
    mmd = [c for c in configs if c.method == "mmd"]
    assert [c.mu for c in mmd] == [2.0, 4.0]
    assert all("MMD over 4,096" in wvq_twopeak.data(c) for c in mmd)
    paper_mmd = [c for c in wvq_twopeak.configs("paper") if c.method == "mmd"]
    assert {dict(c.quantizer)["max_features"] for c in paper_mmd} == {None}  # every feature and code
    assert len(wvq_twopeak.configs("paper")) == 3 * 9


def test_published_numbers_are_keyed_as_the_rows():
    published = load_published(wvq_twopeak.EXPERIMENT)
    assert set(published["method"]) == {"wasserstein", "mmd"}
    assert sorted(set(published["mu"])) == list(wvq_twopeak.PAPER_ZETAS)
    assert published[(published["mu"] == 4.0) & (published["metric"] == "utilization")]["value"].tolist() == [
        0.348,
        0.756,
    ]


def test_an_interrupted_atomic_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    config = wvq_twopeak.make(2.0, "wasserstein", **wvq_twopeak.SMOKE)
    monkeypatch.setattr(wvq_fig12, "CHECKPOINT_EVERY", 5)
    whole = wvq_fig12.run(config, Workspace(torch.device("cpu"), runs=tmp_path / "whole"))
    from replicate.train import atomic

    calls = {"n": 0}
    step = atomic.atomic_step

    def stop_at_twelve(*args):
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt
        return step(*args)

    monkeypatch.setattr(atomic, "atomic_step", stop_at_twelve)
    with pytest.raises(KeyboardInterrupt):
        wvq_fig12.run(config, Workspace(torch.device("cpu"), runs=tmp_path / "cut"))
    monkeypatch.setattr(atomic, "atomic_step", step)
    resumed = wvq_fig12.run(config, Workspace(torch.device("cpu"), runs=tmp_path / "cut"))
    pd.testing.assert_frame_equal(
        pd.DataFrame(resumed.extra_tables["curves"]), pd.DataFrame(whole.extra_tables["curves"])
    )
    assert resumed.metrics == whole.metrics
    assert dataclasses.asdict(config)["steps"] == 20
