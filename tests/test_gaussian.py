"""Closed-form Gaussian W2: known values, agreement with scipy's sqrtm, numerical safety, gradient routing."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from replicate.quantize.gaussian import StreamedGaussianFit, gaussian_fit, gaussian_w2, sqrtm_psd


def test_w2_of_identical_gaussians_is_zero():
    mean, cov = torch.randn(8), torch.eye(8) * 2.0
    assert gaussian_w2(mean, cov, mean, cov, eps_eig=0, eps_sqrt=0).item() == pytest.approx(0, abs=1e-6)
    # with the official stabilisers the value is sqrt(1e-10) = 1e-5
    assert gaussian_w2(mean, cov, mean, cov).item() == pytest.approx(0, abs=2e-5)


@pytest.mark.parametrize("d,mu", [(1, 0.5), (8, 1.0), (32, 2.5)])
def test_w2_between_shifted_standard_gaussians_is_sqrt_d_mu(d, mu):
    value = gaussian_w2(torch.zeros(d), torch.eye(d), torch.full((d,), mu), torch.eye(d))
    assert value.item() == pytest.approx(math.sqrt(d) * mu, rel=1e-6)


def test_w2_in_one_dimension_is_the_distance_of_means_and_stds():
    # W2(N(m1, s1^2), N(m2, s2^2)) = sqrt((m1 - m2)^2 + (s1 - s2)^2)
    value = gaussian_w2(
        torch.tensor([1.0]),
        torch.tensor([[4.0]]),
        torch.tensor([-2.0]),
        torch.tensor([[0.25]]),
        eps_eig=0,
        eps_sqrt=0,
    )
    assert value.item() == pytest.approx(math.sqrt(9 + 1.5**2), rel=1e-6)


def test_eigen_square_root_agrees_with_scipy_sqrtm():
    a = torch.randn(6, 6, dtype=torch.float64)
    spd = a @ a.T + 0.1 * torch.eye(6, dtype=torch.float64)
    ours = sqrtm_psd(spd).numpy()
    assert np.allclose(ours, np.real(scipy.linalg.sqrtm(spd.numpy())), atol=1e-10)
    assert np.allclose(ours @ ours, spd.numpy(), atol=1e-10)


@pytest.mark.parametrize("case", ["fewer_codes_than_dims", "tiny_variance", "single_code", "zero_covariance"])
def test_w2_and_its_gradient_stay_finite_on_degenerate_covariances(case):
    features = torch.randn(1000, 16)
    codes = {
        "fewer_codes_than_dims": torch.randn(4, 16),
        "tiny_variance": 1e-6 * torch.randn(64, 16),
        "single_code": torch.randn(1, 16),
        "zero_covariance": torch.zeros(64, 16),
    }[case].requires_grad_()
    value = gaussian_w2(*gaussian_fit(features, unbiased=True), *gaussian_fit(codes, unbiased=True))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(codes.grad).all()


def test_w2_sends_gradient_to_the_codebook_only():
    features = torch.randn(500, 4, requires_grad=True)
    codes = torch.randn(50, 4, requires_grad=True)
    gaussian_w2(*gaussian_fit(features, unbiased=True), *gaussian_fit(codes, unbiased=True)).backward()
    assert features.grad is None
    assert codes.grad is not None and codes.grad.abs().sum() > 0


def test_gaussian_fit_divisor_follows_unbiased_flag():
    x = torch.tensor([[0.0], [2.0]])
    assert gaussian_fit(x, unbiased=True)[1].item() == pytest.approx(2.0)
    assert gaussian_fit(x, unbiased=False)[1].item() == pytest.approx(1.0)


@pytest.mark.parametrize("unbiased", [True, False])
def test_streamed_fit_over_batches_equals_the_fit_of_all_rows(unbiased):
    rows = 3.0 + torch.randn(103, 6) @ torch.randn(6, 6)  # float32 rows, offset from 0; fits are float64
    streamed = StreamedGaussianFit(unbiased=unbiased)
    for batch in rows.split(25):  # 25, 25, 25, 25 and 3 rows
        streamed.add(batch)
    mean, cov = streamed.result()
    reference_mean, reference_cov = gaussian_fit(rows.double(), unbiased=unbiased)
    assert mean.dtype == cov.dtype == torch.float64
    assert torch.allclose(mean, reference_mean, rtol=1e-12, atol=0)
    assert torch.allclose(cov, reference_cov, rtol=1e-10, atol=1e-12)


def test_streamed_fit_of_one_row_has_zero_covariance_as_gaussian_fit_and_of_none_is_an_error():
    row = torch.randn(1, 4)
    for unbiased in (True, False):
        streamed = StreamedGaussianFit(unbiased=unbiased)
        streamed.add(row)
        assert torch.equal(streamed.result()[1], gaussian_fit(row.double(), unbiased=unbiased)[1])
    with pytest.raises(ValueError, match="no rows"):
        StreamedGaussianFit(unbiased=True).result()
