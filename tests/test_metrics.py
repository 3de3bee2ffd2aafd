"""Codebook metrics on constructed cases with known answers."""

import math

import pytest
import torch

from replicate.metrics.codebook import (
    CODEBOOK_COLUMNS,
    CodebookUsage,
    codebook_distances,
    codebook_metrics,
    evaluate_codebook,
    perplexity,
    utilization,
)


@pytest.mark.parametrize(
    "counts,expected_u,expected_c",
    [
        ([220, 145, 145, 145, 145, 0, 0, 0, 0, 0], 0.5, 4.92),  # Fig. 9 (a): half the codes, near-uniform
        ([1] * 10, 1.0, 10.00),  # Fig. 9 (b): uniform over all 10
        ([4291] + [1] * 9, 1.0, 1.02),  # Fig. 9 (c): all used, one dominates
    ],
)
def test_utilization_and_perplexity_of_the_papers_toy_cases(counts, expected_u, expected_c):
    counts = torch.tensor(counts)
    assert utilization(counts) == expected_u
    assert round(perplexity(counts), 2) == expected_c


def test_perplexity_of_a_single_used_code_is_one():
    assert perplexity(torch.tensor([0, 7, 0])) == pytest.approx(1.0)


def test_streamed_usage_equals_one_pass_evaluation():
    features, codebook = torch.randn(10_000, 4), torch.randn(64, 4)
    usage = CodebookUsage(64)
    for batch in features.split(999):
        indices = ((batch[:, None] - codebook[None]) ** 2).sum(-1).argmin(1)
        usage.add(batch, codebook[indices], indices)
    streamed, whole = usage.result(), evaluate_codebook(features, codebook, batch_size=3000)
    for name in ("quant_error", "utilization", "perplexity"):
        assert streamed[name] == pytest.approx(whole[name], rel=1e-6)


def test_quantization_error_is_the_mean_squared_distance_to_the_assigned_code():
    codebook = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    features = torch.tensor([[1.0, 0.0], [0.0, 2.0], [10.0, 3.0]])  # squared distances 1, 4, 9
    result = evaluate_codebook(features, codebook)
    assert result["quant_error"] == pytest.approx(14 / 3)
    assert result["utilization"] == 1.0


@pytest.mark.parametrize("offset,spread", [(2.0, 1.0), (1000.0, 1e-3)])  # the second: a tight cluster far out
def test_codebook_distances_match_all_pairs_brute_force(offset, spread):
    codes = (torch.randn(300, 8) * spread + offset).double()
    result = codebook_distances(codes, tile=(7, 50))  # many small tiles, diagonal ones included
    pairs = 300 * 299
    euclid = (codes[:, None] - codes[None]).norm(dim=-1).sum() / pairs
    cosine = 1 - torch.nn.functional.cosine_similarity(codes[:, None], codes[None], dim=-1).double()
    cosine = (cosine.sum() - cosine.diagonal().sum()) / pairs
    assert result["code_dist_euclid"] == pytest.approx(float(euclid), rel=1e-9)
    assert result["code_dist_cosine"] == pytest.approx(float(cosine), rel=1e-5)


def test_a_codebook_collapsed_to_one_point_has_zero_distances():
    result = codebook_distances(torch.ones(50, 3) * 2.5)
    assert result["code_dist_euclid"] == pytest.approx(0, abs=1e-12)
    assert result["code_dist_cosine"] == pytest.approx(0, abs=1e-12)


def test_opposite_codes_have_cosine_distance_two():
    result = codebook_distances(torch.tensor([[1.0, 0.0], [-3.0, 0.0]]))
    assert result["code_dist_cosine"] == pytest.approx(2.0)
    assert result["code_dist_euclid"] == pytest.approx(4.0)


def test_codebook_distances_handle_100k_codes():
    # exactness is checked above on a small codebook; here: runs in chunks for K = 100,000 and agrees with the
    # closed form for i.i.d. N(0, I) codes in d = 2 (E||x - y|| = sqrt(pi)), to sampling error
    result = codebook_distances(torch.randn(100_000, 2))
    assert result["code_dist_euclid"] == pytest.approx(math.sqrt(math.pi), rel=0.01)


def test_codebook_columns_name_exactly_what_codebook_metrics_measures_in_order():
    """The NaN columns of a row measured before quantization starts are the measured row's codebook columns."""
    codebook = torch.randn(6, 3)
    usage = CodebookUsage(6)
    usage.add(codebook[[0, 0, 2, 5]], codebook[[0, 0, 2, 5]], torch.tensor([0, 0, 2, 5]))
    measured = codebook_metrics(codebook, usage)
    assert tuple(measured) == CODEBOOK_COLUMNS and all(math.isfinite(value) for value in measured.values())
