"""Shrinkage diagnostics, the quantization schedules and the mixture data, on constructed cases with known
answers."""

import math

import pytest
import torch

from replicate.data.synthetic import gaussian_mixture
from replicate.errors import ConfigError
from replicate.metrics.codebook import codebook_distances, perplexity
from replicate.metrics.shrinkage import effective_rank, mode_coverage, mode_entropy, per_mode_error
from replicate.quantize import CODEBOOK_QUANTIZERS, build_quantizer, quantizer_config
from replicate.train.schedule import QuantizationSchedule

MEANS = torch.tensor([[10.0 * k, 0.0] for k in range(10)])
LABELS = torch.arange(10).repeat_interleave(5)


def test_a_codebook_on_one_point_has_zero_spread_and_perplexity_one():
    codebook = torch.ones(16, 3)
    assert codebook_distances(codebook)["code_dist_euclid"] == pytest.approx(0)
    assert perplexity(torch.tensor([50] + [0] * 15)) == pytest.approx(1.0)


def test_one_code_per_mode_covers_all_ten_modes_with_maximal_entropy():
    reconstructions = MEANS[LABELS]  # every point quantized to its mode's code
    assert mode_coverage(reconstructions, LABELS, MEANS) == 10
    assert mode_entropy(MEANS, MEANS) == pytest.approx(math.log(10))


def test_a_collapsed_reconstruction_covers_one_mode_and_codes_on_one_mode_have_zero_entropy():
    reconstructions = MEANS[3].expand(len(LABELS), 2)
    assert mode_coverage(reconstructions, LABELS, MEANS) == 1
    assert mode_entropy(MEANS[3].expand(8, 2) + 0.1, MEANS) == pytest.approx(0.0)


def test_mode_coverage_needs_half_of_a_modes_points():
    reconstructions = MEANS[LABELS].clone()
    reconstructions[LABELS == 0] = MEANS[1]  # mode 0 entirely reconstructed as mode 1
    reconstructions[torch.nonzero(LABELS == 2).squeeze(1)[:2]] = MEANS[5]  # 2 of 5 points of mode 2 misplaced
    assert mode_coverage(reconstructions, LABELS, MEANS) == 9


def test_per_mode_error_is_the_mean_squared_error_of_each_modes_points():
    data = MEANS[LABELS]
    reconstructions = data.clone()
    reconstructions[LABELS == 4] += torch.tensor([3.0, 4.0])  # squared error 25 for every point of mode 4
    errors = per_mode_error(data, reconstructions, LABELS, 10)
    assert errors[4] == pytest.approx(25.0) and errors.sum() == pytest.approx(25.0)


def test_effective_rank_of_a_line_is_one_and_of_an_isotropic_cloud_is_its_dimension():
    t = torch.randn(5000, 1)
    assert effective_rank(t * torch.tensor([[1.0, 2.0, -1.0]])) == pytest.approx(1.0, abs=1e-6)
    assert effective_rank(torch.randn(100_000, 6)) == pytest.approx(6.0, rel=0.01)


@pytest.mark.parametrize("method", list(CODEBOOK_QUANTIZERS))
def test_set_codebook_makes_the_given_codes_the_effective_codebook(method):
    quantizer = build_quantizer(quantizer_config(method, 8, 3))
    codes = torch.randn(8, 3)
    quantizer.set_codebook(codes)
    assert torch.allclose(quantizer.codebook(), codes, atol=1e-6)


def test_ema_codes_set_by_kmeans_move_towards_their_features_instead_of_exploding():
    quantizer = build_quantizer(quantizer_config("ema", 2, 1, decay=0.5)).train()
    quantizer.set_codebook(torch.tensor([[0.0], [5.0]]))
    features = torch.tensor([[1.0], [1.0]])
    quantizer.update(features, quantizer(features))
    # code 0: (0.5 * 0 + 0.5 * 2) / (0.5 * 1 + 0.5 * 2) = 2 / 3; unused code 1 keeps 5 (up to the smoothing)
    assert quantizer.codebook().squeeze().tolist() == pytest.approx([2 / 3, 5.0], rel=1e-3)


def test_schedules_quantize_and_initialise_at_the_right_steps():
    early, deferred, random = (
        QuantizationSchedule("early"),
        QuantizationSchedule("deferred", 100),
        QuantizationSchedule("random"),
    )
    assert early.quantizes(0) and early.initializes(0) and not early.initializes(1)
    assert not deferred.quantizes(99) and deferred.quantizes(100) and deferred.initializes(100)
    assert random.quantizes(0) and random.initializes(0)
    with pytest.raises(ConfigError):
        QuantizationSchedule("deferred", 0)
    with pytest.raises(ConfigError):
        QuantizationSchedule("early", 10)


@pytest.mark.parametrize("dim", [2, 16])
def test_mixture_has_ten_separated_equal_components(dim):
    points, labels, means = gaussian_mixture(dim, generator=torch.Generator().manual_seed(0))
    assert points.shape == (10_000, dim) and torch.bincount(labels).tolist() == [1000] * 10
    gaps = torch.cdist(means, means) + torch.eye(10) * 100
    assert gaps.min() >= 2.5
    assert (points[labels == 3] - means[3]).std().item() == pytest.approx(0.5, rel=0.05)
