"""Diversity metrics and the proxy feature network on constructed cases with known answers (CPU, seconds)."""

import math
import sys

import pytest
import torch
from torch.utils.data import TensorDataset

from replicate.errors import ConfigError
from replicate.metrics.diversity import (
    inception_score,
    kernel_inception_distance,
    pixel_distance,
    polynomial_mmd2,
    precision_recall_density_coverage,
    proxy_fidelity,
    relative_to_ceiling,
    sample_pairs,
    vendi_score,
)
from replicate.metrics.proxy import (
    ProxyClassifier,
    ProxyClassifierConfig,
    class_probabilities,
    features_of,
    train_proxy,
)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def brute_force_distances(images: torch.Tensor) -> torch.Tensor:
    """||x_i - x_j|| for every pair i < j in row-major order, by explicit differences."""
    flat = images.flatten(1).double()
    rows, columns = torch.triu_indices(len(flat), len(flat), offset=1)
    return (flat[rows] - flat[columns]).norm(dim=1)


def test_pixel_distance_of_constant_images_equals_the_hand_computed_value():
    images = torch.stack([torch.full((3, 2, 2), value) for value in (0.0, 0.5, 1.0)])
    # 12 values each: distances sqrt(12 * 0.25), sqrt(12 * 1), sqrt(12 * 0.25)
    result = pixel_distance(images, max_pairs=None)
    assert result.pairs == 3
    assert result.mean == pytest.approx((math.sqrt(3) + math.sqrt(12) + math.sqrt(3)) / 3, rel=1e-12)


@pytest.mark.parametrize("chunk", [1, 3, 4, 128])
def test_all_pairs_pixel_distance_equals_brute_force_whatever_the_chunk(chunk):
    images = torch.rand(11, 3, 4, 4, generator=seeded(0))
    result = pixel_distance(images, max_pairs=None, chunk=chunk)
    assert result.pairs == 55
    assert result.mean == pytest.approx(float(brute_force_distances(images).mean()), rel=1e-12)


@pytest.mark.parametrize("max_pairs", [10, 60, 190, 500])  # sparse draws, dense permutation, all pairs, more
def test_sampled_pairs_are_distinct_pairs_of_the_set_and_reproducible_from_the_seed(max_pairs):
    rows, columns = sample_pairs(20, max_pairs, seeded(1))
    assert len(rows) == min(max_pairs, 190)
    assert bool((rows < columns).all()) and int(rows.min()) >= 0 and int(columns.max()) < 20
    assert len(set(zip(rows.tolist(), columns.tolist(), strict=True))) == len(rows)  # without repetition
    again = sample_pairs(20, max_pairs, seeded(1))
    assert torch.equal(rows, again[0]) and torch.equal(columns, again[1])
    if max_pairs < 190:
        other = sample_pairs(20, max_pairs, seeded(2))
        assert not (torch.equal(rows, other[0]) and torch.equal(columns, other[1]))
    else:
        assert torch.equal(torch.stack([rows, columns]), torch.triu_indices(20, 20, offset=1))


@pytest.mark.parametrize("chunk", [1, 7, 128])
def test_sampled_pixel_distance_is_the_mean_over_the_sampled_pairs(chunk):
    images = torch.rand(20, 3, 4, 4, generator=seeded(3))
    result = pixel_distance(images, max_pairs=30, generator=seeded(4), chunk=chunk)
    rows, columns = sample_pairs(20, 30, seeded(4))
    expected = (images[rows].double() - images[columns].double()).flatten(1).norm(dim=1).mean()
    assert result.pairs == 30
    assert result.mean == pytest.approx(float(expected), rel=1e-12)


def test_pixel_distance_rejects_signed_images_and_sampling_without_a_generator():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pixel_distance(torch.rand(4, 3, 2, 2) * 2 - 1, max_pairs=None)
    with pytest.raises(ValueError, match="generator"):
        pixel_distance(torch.rand(4, 3, 2, 2), max_pairs=2)


def test_mad255_reading_of_constant_images_equals_the_hand_computed_value():
    images = torch.stack([torch.full((3, 2, 2), value) for value in (0.0, 0.2, 1.0)])
    # per-value differences 0.2, 1.0, 0.8 on [0, 1]: 51, 255, 204 of 255
    for max_pairs in (None, 3):
        result = pixel_distance(images, max_pairs=max_pairs, reading="mad255")
        assert result.pairs == 3 and result.mean == pytest.approx((51 + 255 + 204) / 3, rel=1e-12)


def test_mad255_reading_of_one_pair_is_the_mean_absolute_difference_times_255():
    first = torch.tensor([0.0, 0.1, 0.5, 1.0]).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)
    second = torch.tensor([1.0, 0.1, 0.25, 0.5]).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)
    result = pixel_distance(torch.cat([first, second]), max_pairs=None, reading="mad255")
    assert result.pairs == 1 and result.mean == pytest.approx((1.0 + 0.0 + 0.25 + 0.5) / 4 * 255, rel=1e-12)


@pytest.mark.parametrize("max_pairs", [None, 30])
def test_both_readings_average_the_same_pairs(max_pairs):
    images = torch.rand(20, 3, 4, 4, generator=seeded(10))
    l2 = pixel_distance(images, max_pairs=max_pairs, generator=seeded(11))
    mad = pixel_distance(images, max_pairs=max_pairs, generator=seeded(11), reading="mad255", chunk=7)
    rows, columns = sample_pairs(20, max_pairs or 190, seeded(11))
    difference = (images[rows].double() - images[columns].double()).flatten(1)
    assert l2.pairs == mad.pairs == len(rows)
    assert l2.mean == pytest.approx(float(difference.norm(dim=1).mean()), rel=1e-12)
    assert mad.mean == pytest.approx(float(difference.abs().mean(1).mean() * 255), rel=1e-12)


def test_an_unknown_pixel_reading_fails_naming_the_valid_ones():
    with pytest.raises(ValueError, match="mad255"):
        pixel_distance(torch.rand(4, 3, 2, 2), max_pairs=None, reading="l1")


def test_relative_value_is_the_generated_statistic_over_the_reconstructions_and_nan_without_a_ceiling():
    assert relative_to_ceiling(12.0, 16.0) == 0.75
    assert relative_to_ceiling(20.0, 16.0) == 1.25  # more than the decoder gives real images: above the ceiling
    for ceiling in (0.0, float("nan")):
        assert math.isnan(relative_to_ceiling(12.0, ceiling))


def direct_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """The unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 by explicit double sums over the items."""
    d = x.shape[1]

    def k(a, b):
        return (float(a.double() @ b.double()) / d + 1) ** 3

    m, n = len(x), len(y)
    within_x = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    within_y = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return within_x + within_y - 2 * across


@pytest.mark.parametrize("m,n", [(6, 6), (5, 8)])
def test_polynomial_mmd2_equals_the_direct_double_sum(m, n):
    x, y = torch.randn(m, 3, generator=seeded(12)), torch.randn(n, 3, generator=seeded(13)) + 0.5
    assert polynomial_mmd2(x, y) == pytest.approx(direct_mmd2(x, y), rel=1e-10)


def test_kid_on_whole_sets_equals_the_direct_double_sum_whatever_the_subset_count():
    x, y = torch.randn(7, 4, generator=seeded(14)), torch.randn(7, 4, generator=seeded(15))
    for subsets in (1, 5):
        kid = kernel_inception_distance(x, y, generator=seeded(16), subsets=subsets, subset_size=50)
        assert kid == pytest.approx(direct_mmd2(x, y), rel=1e-10)


def test_kid_averages_the_mmd_of_random_subsets_drawn_from_the_seed():
    x, y = torch.randn(30, 4, generator=seeded(17)), torch.randn(25, 4, generator=seeded(18))
    kid = kernel_inception_distance(x, y, generator=seeded(19), subsets=4, subset_size=10)
    draws, values = seeded(19), []
    for _ in range(4):
        chosen_x, chosen_y = torch.randperm(30, generator=draws)[:10], torch.randperm(25, generator=draws)[:10]
        values.append(direct_mmd2(x[chosen_x], y[chosen_y]))
    assert kid == pytest.approx(sum(values) / 4, rel=1e-10)


def test_kid_of_a_set_against_itself_is_near_zero_and_against_a_shifted_set_positive():
    features = torch.randn(2000, 8, generator=seeded(20))  # kernel values ~1 (1 + 3 / d on average)
    same = kernel_inception_distance(features, features.clone(), generator=seeded(21), subsets=50, subset_size=200)
    shifted = kernel_inception_distance(features, features + 0.5, generator=seeded(21), subsets=50, subset_size=200)
    # the same set: ~0 up to the items two subsets share (their k(x, x) enters the cross term only); 0.5 in every
    # dimension: ~1.1
    assert abs(same) < 0.01 and shifted > 0.5


def test_inception_score_of_uniform_predictions_is_one_and_of_confident_balanced_ones_is_the_class_count():
    assert inception_score(torch.full((12, 4), 0.25)) == pytest.approx(1.0, abs=1e-12)
    confident = torch.eye(4).repeat(3, 1)  # every sample certain, every class 3 times
    assert inception_score(confident) == pytest.approx(4.0, rel=1e-12)
    assert inception_score(torch.eye(4)[[0, 0, 0, 1]]) < 4.0  # unbalanced classes: less than the class count


def test_proxy_class_probabilities_are_the_softmax_of_the_classifier_on_its_features():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ProxyClassifier(ProxyClassifierConfig(num_classes=5, width=8)).eval()
    images = torch.rand(6, 3, 32, 32, generator=seeded(22)) * 2 - 1
    probabilities = class_probabilities(model, features_of(model, images, batch_size=4))
    assert probabilities.shape == (6, 5) and probabilities.dtype == torch.float64
    with torch.no_grad():
        expected = model(images).double().softmax(1)
    torch.testing.assert_close(probabilities, expected, rtol=1e-5, atol=1e-6)


def test_vendi_score_is_one_for_identical_features_and_n_for_orthogonal_ones():
    assert vendi_score(torch.tensor([[1.0, 2.0, 3.0]]).repeat(6, 1)) == pytest.approx(1.0, abs=1e-9)
    assert vendi_score(torch.eye(5) * torch.arange(1.0, 6.0)[:, None]) == pytest.approx(5.0, rel=1e-9)
    assert vendi_score(torch.eye(8)[:5]) == pytest.approx(5.0, rel=1e-9)  # D > N


@pytest.mark.parametrize("count,dim", [(9, 3), (4, 10)])
def test_vendi_score_equals_the_entropy_of_the_kernel_eigenvalues(count, dim):
    features = torch.randn(count, dim, generator=seeded(5)).double()
    unit = features / features.norm(dim=1, keepdim=True)
    eigenvalues = torch.linalg.eigvalsh(unit @ unit.T / count).clamp_min(0)
    expected = torch.exp(-torch.special.xlogy(eigenvalues, eigenvalues).sum())
    assert vendi_score(features) == pytest.approx(float(expected), rel=1e-9)


def test_prdc_of_identical_sets_has_full_precision_recall_and_coverage():
    features = torch.randn(40, 8, generator=seeded(6))
    result = precision_recall_density_coverage(features, features.clone())
    assert result["precision"] == result["recall"] == result["coverage"] == 1.0
    assert set(result) == {"precision", "recall", "density", "coverage"}


def test_prdc_without_the_package_is_a_one_line_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "prdc", None)  # `import prdc` now raises ImportError
    with pytest.raises(ConfigError, match="pip install prdc"):
        precision_recall_density_coverage(torch.randn(10, 2), torch.randn(10, 2))


def test_proxy_fidelity_names_every_statistic_as_a_proxy():
    real, fake = torch.randn(50, 4, generator=seeded(7)), torch.randn(40, 4, generator=seeded(8))
    result = proxy_fidelity(real, fake)
    assert set(result) == {
        f"proxy_{name}" for name in ("frechet", "precision", "recall", "density", "coverage", "vendi")
    }
    assert all(math.isfinite(value) for value in result.values())
    assert proxy_fidelity(real, real)["proxy_frechet"] == pytest.approx(0.0, abs=1e-9)


def test_proxy_classifier_is_deterministic_given_its_seed():
    generator = seeded(9)
    images, labels = (
        torch.rand(64, 3, 32, 32, generator=generator) * 2 - 1,
        torch.randint(4, (64,), generator=generator),
    )
    data = TensorDataset(images, labels)
    config = ProxyClassifierConfig(num_classes=4, width=16, epochs=1, batch_size=16, seed=3)
    first, second = (train_proxy(config, data, data, "cpu") for _ in range(2))
    first_state, second_state = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(first_state[name], second_state[name]) for name in first_state)
    assert 0.0 <= first.test_accuracy <= 1.0 and first.test_accuracy == second.test_accuracy
    probe = torch.rand(10, 3, 48, 48, generator=generator) * 2 - 1  # another size: resized to 32 px
    features = features_of(first.model, probe, batch_size=4)
    assert features.shape == (10, 16)
    assert torch.equal(features, features_of(second.model, probe, batch_size=4))
    other = train_proxy(
        ProxyClassifierConfig(num_classes=4, width=16, epochs=1, batch_size=16, seed=4), data, data, "cpu"
    )
    assert not torch.equal(other.model.head.weight, first.model.head.weight)


def test_proxy_config_rejects_a_width_that_the_stages_cannot_split():
    with pytest.raises(ConfigError, match="width"):
        ProxyClassifierConfig(width=6)
