"""The seed noise and the tie rule (replicate/report/noise.py): pooled seed sigma, the four verdict classes, the
borrowed floor, and the committed tables judged by them."""

import math

import pandas as pd
import pytest

from replicate.report.noise import at_least, beats, floors, judge, seed_spread, seedless
from replicate.spec import FAILS, HOLDS, NOT_CONVERGED, TIE, UNCHECKED, Claim


def test_the_seed_group_of_a_row_drops_its_top_level_seed_only():
    assert seedless("method=ema,K=8,seed=124,independent_replicas=1") == "method=ema,K=8,independent_replicas=1"
    nested = "tokenizer=(method=ema,seed=5),seed=2,steps=3"
    assert seedless(nested) == "tokenizer=(method=ema,seed=5),steps=3"


def rows(values: dict[str, list[float]]) -> pd.DataFrame:
    """Result rows: one seed group per name, one row per seed."""
    return pd.DataFrame(
        [
            {"config_id": f"method={name},seed={seed}", "seed": seed, "psnr": value}
            for name, group in values.items()
            for seed, value in enumerate(group)
        ]
    )


def test_the_noise_floor_pools_the_variance_of_every_group_with_two_seeds_or_more():
    noise = seed_spread(rows({"a": [1.0, 2.0, 3.0], "b": [10.0, 12.0], "c": [5.0]}), ["psnr"], "here")
    assert list(noise["setting"]) == ["method=a", "method=b", "pooled"]
    sigma, dof, source = floors(noise)["psnr"]
    # (2 x 1.0 + 1 x 2.0) / 3 degrees of freedom
    assert (sigma, dof, source) == (pytest.approx(math.sqrt(4 / 3)), 3, "here")


NOISE = {"psnr": (0.1, 4, "test")}


def test_a_margin_inside_twice_the_standard_error_is_a_tie_and_outside_it_holds_or_fails():
    # bound: 2 x 0.1 x sqrt(1/2 + 1/2) = 0.2
    assert judge(beats("x", "psnr", [1.0, 1.2], [1.0, 1.0]), NOISE).verdict_class == TIE
    assert judge(beats("x", "psnr", [1.3, 1.3], [1.0, 1.0]), NOISE).verdict_class == HOLDS
    assert judge(beats("x", "psnr", [1.0, 1.0], [1.3, 1.3]), NOISE).verdict_class == FAILS
    judged = judge(beats("x", "psnr", [1.3], [1.0]), NOISE)  # one seed a side: the table's floor
    assert judged.verdict_class == HOLDS and "margin +0.3 vs noise 0.283" in judged.detail


def test_a_missed_threshold_whose_metric_still_rises_is_not_converged_with_the_epochs_it_needs():
    curves = pd.DataFrame({"config_key": "k", "epoch": [1, 2, 3], "psnr": [0.2, 0.4, 0.6]})
    claim = at_least("x", "psnr", [0.6], 1.0, keys=["k"])
    judged = judge(claim, NOISE, curves)
    assert judged.verdict_class == NOT_CONVERGED and "~2.0 more epochs" in judged.detail
    flat = curves.assign(psnr=[0.6, 0.6, 0.6])
    assert judge(claim, NOISE, flat).verdict_class == FAILS
    assert judge(at_least("x", "psnr", [0.9], 1.0, keys=["k"]), NOISE, curves).verdict_class == TIE


def test_a_claim_without_a_floor_keeps_its_verdict_and_says_so():
    judged = judge(beats("x", "lpips", [1.0], [0.0]), NOISE)
    assert judged.verdict_class == HOLDS and "no seed noise measured" in judged.detail
    assert judge(Claim("unchecked", None), NOISE).verdict_class == UNCHECKED


def test_an_equal_mean_holds_a_not_strict_claim_before_the_noise_and_is_a_tie_after():
    claim = beats("highest", "psnr", [1.0], [1.0], strict=False)
    assert claim.holds and judge(claim, NOISE).verdict_class == TIE
    assert not beats("higher", "psnr", [1.0], [1.0]).holds


@pytest.mark.results
def test_no_committed_verdict_rests_on_a_margin_inside_its_seed_noise():
    """Over every committed result table: a claim judged holds or fails with a measured floor has its margin
    beyond the tie bound, and REPORT.md's findings list only claims that fail beyond it (or without a floor)."""
    from replicate.registry import EXPERIMENTS
    from replicate.report.noise import floor_for, floors, judged_claims, noise_of, threshold
    from replicate.results import TABLES, read_results, result_path
    from replicate.spec import SCALES

    checked = 0
    for experiment in EXPERIMENTS.values():
        for scale in SCALES:
            results = read_results(experiment, result_path(experiment.name, scale, TABLES))
            if results is None or not len(results):
                continue
            noise = floors(noise_of(experiment, results, scale, TABLES))
            for claim in judged_claims(experiment, results, scale, TABLES):
                floor = claim.margin and floor_for(claim.margin, noise)
                if claim.verdict_class in (HOLDS, FAILS) and floor and math.isfinite(floor[0]):
                    assert abs(claim.margin.margin) > threshold(claim.margin, floor[0]), claim
                    checked += 1
    assert checked > 0


def test_sides_with_seeds_of_their_own_are_judged_by_their_own_spread():
    """E at d = 1 is 1e-5 and near 1 at d = 16: a floor pooled over both would call any d = 1 difference a tie."""
    noise = {"quant_error": (0.1, 40, "pooled over every d")}
    claim = beats("lower E", "quant_error", [-1.0e-8, -1.2e-8, -0.8e-8], [-1.0e-5, -1.1e-5, -0.9e-5])
    judged = judge(claim, noise)
    assert judged.verdict_class == HOLDS and "the compared runs' own seeds, 4 dof" in judged.detail
    assert judge(beats("one seed a side", "quant_error", [1e-8], [1e-5]), noise).verdict_class == TIE
