"""Two invariants of the generation path: a tokenizer decodes its own tokens into its own reconstructions (what
`generate` relies on to turn a generator's tokens into images), and the Fréchet distance of the proxy metrics is
the squared closed-form W2 between the two Gaussians (quantize/gaussian.py)."""

import pytest
import torch

from replicate.configs import VQVAEConfig
from replicate.metrics.image import frechet_distance, frechet_distance_of_features
from replicate.models.var import accumulate
from replicate.models.vqvae import VQVAE
from replicate.quantize import CODEBOOK_QUANTIZERS, build_quantizer, quantizer_config
from replicate.quantize.gaussian import gaussian_fit, gaussian_w2
from replicate.quantize.multiscale import MultiScaleQuantizer, scales_for
from replicate.train.generator import encode_tokens, split_scales

TINY = VQVAEConfig(16, channels=32, channel_mult=(1, 2), num_res_blocks=1, z_channels=32, d=4)  # 8 x 8


def tiny_tokenizer(method: str, multiscale: bool = False) -> VQVAE:
    quantizer = build_quantizer(quantizer_config(method, 16, TINY.d))
    if multiscale:
        quantizer = MultiScaleQuantizer(quantizer, scales_for(TINY.latent_resolution))
    return VQVAE(TINY, quantizer).eval()


@pytest.mark.parametrize("method", list(CODEBOOK_QUANTIZERS))
@torch.no_grad()
def test_decoding_a_single_scale_tokenizers_own_tokens_gives_its_reconstructions(method):
    model, images = tiny_tokenizer(method), torch.rand(3, 3, 16, 16) * 2 - 1
    tokens = encode_tokens(model, images)  # (B, 64), as the generators' training data
    assert tokens.shape == (3, 64) and tokens.unique().numel() > 1  # several codes: the lookup order matters
    side = TINY.latent_resolution
    latents = model.quantizer.codebook()[tokens].reshape(3, side, side, -1)  # as `generate` decodes MaskGIT tokens
    # equal up to float rounding (~5e-6 here; a wrong token moves pixels by > 0.03): the straight-through output is
    # features + (codes - features)
    torch.testing.assert_close(model.decode(latents), model(images).reconstructions, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_decoding_a_multiscale_tokenizers_own_tokens_gives_its_reconstructions():
    model, images = tiny_tokenizer("wasserstein", multiscale=True), torch.rand(2, 3, 16, 16) * 2 - 1
    scales = model.quantizer.scales
    tokens = encode_tokens(model, images)
    assert tokens.shape == (2, sum(p * p for p in scales))
    latents = accumulate(split_scales(tokens, scales), model.quantizer)  # as `generate` decodes VAR tokens
    torch.testing.assert_close(model.decode(latents), model(images).reconstructions, rtol=1e-4, atol=1e-4)


def random_covariance(d: int, generator: torch.Generator) -> torch.Tensor:
    factor = torch.randn(d, d, generator=generator, dtype=torch.float64)
    return factor @ factor.T + 0.1 * torch.eye(d, dtype=torch.float64)


def test_frechet_distance_of_two_gaussians_is_their_squared_closed_form_w2():
    generator = torch.Generator().manual_seed(0)
    mean_a, mean_b = torch.randn(2, 6, generator=generator, dtype=torch.float64)
    cov_a, cov_b = random_covariance(6, generator), random_covariance(6, generator)  # they do not commute
    assert not torch.allclose(cov_a @ cov_b, cov_b @ cov_a)
    w2 = gaussian_w2(mean_a, cov_a, mean_b, cov_b, eps_eig=0, eps_sqrt=0)
    assert frechet_distance(mean_a, cov_a, mean_b, cov_b) == pytest.approx(float(w2) ** 2, rel=1e-9)


def test_frechet_distance_of_diagonal_gaussians_is_the_hand_formula():
    """Diagonal covariances: W2^2 = sum (m_a - m_b)^2 + sum (sqrt(var_a) - sqrt(var_b))^2."""
    mean_a, mean_b = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([0.5, 1.0, 1.0])
    var_a, var_b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    by_hand = 0.25 + 0.0 + 9.0 + (1 - 3) ** 2 + (2 - 1) ** 2 + 0.0
    assert frechet_distance(mean_a, var_a.diag(), mean_b, var_b.diag()) == pytest.approx(by_hand, rel=1e-12)


def test_frechet_distance_of_gaussian_samples_approaches_the_population_w2():
    generator = torch.Generator().manual_seed(1)
    mean_a, mean_b = torch.zeros(4, dtype=torch.float64), torch.full((4,), 0.5, dtype=torch.float64)
    cov_a, cov_b = random_covariance(4, generator), random_covariance(4, generator)
    samples = [
        mean + torch.randn(200_000, 4, generator=generator, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
        for mean, cov in ((mean_a, cov_a), (mean_b, cov_b))
    ]
    measured = frechet_distance_of_features(*samples)
    fit_a, fit_b = (gaussian_fit(s, unbiased=True) for s in samples)
    fitted = gaussian_w2(*fit_a, *fit_b, eps_eig=0, eps_sqrt=0)
    assert measured == pytest.approx(float(fitted) ** 2, rel=1e-8)  # the same statistic, two implementations
    population = float(gaussian_w2(mean_a, cov_a, mean_b, cov_b, eps_eig=0, eps_sqrt=0)) ** 2
    assert measured == pytest.approx(population, rel=0.02)
