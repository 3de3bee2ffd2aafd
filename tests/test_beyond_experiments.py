"""beyond_nongaussian and beyond_density: the non-Gaussian laws have the stated moments, the configurations are the
stated grids, and the hypotheses read their numbers with the right sign."""

import pandas as pd
import pytest
import torch

from replicate.data.synthetic import BIMODAL_OFFSET, sample
from replicate.registry import EXPERIMENTS
from replicate.report.summary import ANSWERED, verdict

NONGAUSSIAN, DENSITY = EXPERIMENTS["beyond_nongaussian"], EXPERIMENTS["beyond_density"]


def test_the_bimodal_law_has_two_unit_modes_at_the_stated_offset():
    x = sample("bimodal", 200_000, 3, center=1.0, generator=torch.Generator().manual_seed(0))
    upper = x[:, 0] > 1.0
    assert abs(upper.float().mean() - 0.5) < 0.01
    assert torch.allclose(x.mean(0), torch.full((3,), 1.0), atol=0.02)
    assert torch.allclose(x.var(0), torch.full((3,), 1 + BIMODAL_OFFSET**2), rtol=0.02)


def test_student_t_coordinates_have_variance_three_and_heavier_tails_than_a_gaussian():
    generator = torch.Generator().manual_seed(0)
    t = sample("student_t", 400_000, 1, generator=generator).squeeze(1)
    z = sample("gaussian", 400_000, 1, generator=generator).squeeze(1)
    assert abs(t.median()) < 0.01
    assert abs(float(t.var()) - 3.0) < 0.3  # nu / (nu - 2) = 3; its estimate converges slowly (infinite kurtosis)
    assert (t.abs() > 5).float().mean() > 50 * (z.abs() > 5).float().mean()


@pytest.mark.parametrize("scale", ["cpu", "paper"])
def test_the_grids_are_the_stated_ones(scale):
    grid = {(c.distribution, c.method) for c in NONGAUSSIAN.configs(scale)}
    assert grid == {
        (law, m)
        for law in ("bimodal", "uniform", "student_t")
        for m in ("wasserstein", "mmd", "sliced_wasserstein", "vanilla")
    }
    assert {c.K for c in NONGAUSSIAN.configs(scale)} == {16384}
    density = {(c.d, c.quantizer_config().target) for c in DENSITY.configs(scale)}
    assert density == {(d, t) for d in (1, 2, 4, 8, 16) for t in ("features", "zador")}


def test_nongaussian_hypotheses_compare_each_matcher_with_the_closed_form():
    rows = [("bimodal", "wasserstein", 2.0), ("bimodal", "mmd", 1.0), ("bimodal", "sliced_wasserstein", 3.0)]
    results = pd.DataFrame(
        [
            {"distribution": law, "method": m, "quant_error": e, "utilization": 1.0, "perplexity": 10.0}
            for law, m, e in rows
        ]
    )
    answers = {c.text: c.holds for c in NONGAUSSIAN.claims(results)}
    assert answers == {
        "bimodal: MMD VQ reaches a lower quantization error than Wasserstein VQ": True,
        "bimodal: Sliced-W2 VQ reaches a lower quantization error than Wasserstein VQ": False,
    }


def test_density_hypotheses_read_the_relative_gain_per_dimension():
    errors = {(1, "features"): 1.0, (1, "zador"): 0.8, (8, "features"): 1.0, (8, "zador"): 0.95}
    results = pd.DataFrame([{"d": d, "q_target": t, "quant_error": e} for (d, t), e in errors.items()])
    claims = DENSITY.claims(results)
    assert [c.holds for c in claims] == [True, True] and "+20.00%" in claims[1].detail


def test_an_open_question_is_answered_whichever_way_its_hypotheses_fall():
    from replicate.spec import Claim

    assert verdict("cpu", DENSITY, 0, [Claim("x", False)]) == ANSWERED
