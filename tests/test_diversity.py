"""Diversity metrics and the proxy feature network on constructed cases with known answers (CPU, seconds)."""

import math
import sys

import pytest
import torch
from torch.utils.data import TensorDataset

from replicate.errors import ConfigError
from replicate.metrics.diversity import (
    pixel_distance,
    precision_recall_density_coverage,
    proxy_fidelity,
    sample_pairs,
    vendi_score,
)
from replicate.metrics.proxy import ProxyClassifierConfig, features_of, train_proxy


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
