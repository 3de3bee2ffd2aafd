"""Multi-scale residual quantization on tiny latents: token counts, exact reconstruction, gradient paths, the loss
against a hand computation, the Wasserstein queue and the usage histogram over all scales."""

import pytest
import torch

from replicate.errors import ConfigError
from replicate.metrics.codebook import CodebookUsage
from replicate.quantize import build_quantizer, quantizer_config
from replicate.quantize.multiscale import (
    VAR_SCALES,
    VAR_WASSERSTEIN_SETTINGS,
    MultiScaleQuantizer,
    scales_for,
    tokens,
)


def make(method, codes, scales, **settings):
    """beta 0.1 (the official multi-scale --beta) unless given; the multi-scale terms take the inner's weights."""
    codes = torch.as_tensor(codes, dtype=torch.float32)
    settings = {"beta": 0.1, **settings}
    inner = build_quantizer(quantizer_config(method, codes.shape[0], codes.shape[1], **settings))
    inner.set_codebook(codes)
    return MultiScaleQuantizer(inner, scales).train()


def test_token_count_of_the_16x16_scale_list_is_680():
    assert tokens(VAR_SCALES) == 680
    assert scales_for(16) == VAR_SCALES


def test_8x8_latent_uses_the_prefix_up_to_8():
    assert scales_for(8) == (1, 2, 3, 4, 5, 6, 8)
    assert tokens(scales_for(8)) == 155
    with pytest.raises(ConfigError):
        scales_for(12)  # the prefix (..., 10) would leave the 12 x 12 residual unquantized


def test_official_scale_list_quantizes_680_tokens_of_a_16x16_latent():
    inner = build_quantizer(quantizer_config("wasserstein", 32, 2, **VAR_WASSERSTEIN_SETTINGS))
    quantizer = MultiScaleQuantizer(inner).train()
    z = torch.randn(1, 16, 16, 2)
    out = quantizer(z)
    assert [index.shape[1] for index in out.scale_indices] == list(VAR_SCALES)
    assert out.indices.shape == (680,) and out.quantized.shape == out.codes.shape == z.shape
    assert set(out.losses) == {"commitment", "codebook", "scale_commitment", "scale_codebook", "wasserstein"}
    assert int(inner.queue_next) == 680


def test_invalid_configurations_fail():
    with pytest.raises(ConfigError):
        make("vanilla", torch.randn(4, 2), (1, 3, 2))
    quantizer = make("vanilla", torch.randn(4, 2), VAR_SCALES)
    with pytest.raises(ConfigError):
        quantizer(torch.randn(1, 8, 8, 2))


def test_reconstructs_input_exactly_when_every_scale_residual_is_a_code():
    """z = m + r on a 4 x 4 latent with scales (1, 2, 4), where every 2 x 2 block of r is [[v, -v], [-v, v]].

    Scale 1: the area mean of z is m (r sums to 0), a code; bicubic up-sampling of a 1 x 1 map reads the one
    pixel at every tap and its weights sum to 1, so it gives the constant m. Scale 2: every block mean of r is 0,
    the zero code, which up-samples to 0. Scale 4 (full size, no resampling): every r_ij = +-v is a code. All
    values are short dyadic fractions, so every mean, cubic weight, product and sum is exact in float32.
    """
    m = torch.tensor([1.5, -0.5])
    blocks = torch.tensor([[0.25, 0.5], [0.75, -0.25], [-0.5, 1.0], [1.25, 0.25]])
    sign = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    r = torch.zeros(4, 4, 2)
    for k, v in enumerate(blocks):
        i, j = divmod(k, 2)
        r[2 * i : 2 * i + 2, 2 * j : 2 * j + 2] = sign[..., None] * v
    z = (m + r).unsqueeze(0)
    codes = torch.cat([m[None], torch.zeros(1, 2), blocks, -blocks])
    quantizer = make("vanilla", codes, (1, 2, 4))
    out = quantizer(z)
    assert torch.equal(out.quantized, z)
    assert out.scale_indices[0].tolist() == [[[0]]]
    assert out.scale_indices[1].tolist() == [[[1, 1], [1, 1]]]
    assert torch.equal(codes[out.scale_indices[2][0]], r)
    assert all(loss.item() == 0.0 for loss in out.losses.values())


def test_straight_through_gradient_reaches_the_encoder_not_the_codebook():
    quantizer = make("vanilla", torch.randn(8, 2), (1, 2, 4))
    z = torch.randn(2, 4, 4, 2, requires_grad=True)
    quantizer(z).quantized.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))
    assert quantizer.inner.weight.grad is None


def test_wasserstein_gradient_reaches_the_codebook_not_the_encoder():
    quantizer = make("wasserstein", torch.randn(16, 2), (1, 2, 4), queue_size=64)
    z = torch.randn(2, 4, 4, 2, requires_grad=True)
    quantizer(z).losses["wasserstein"].backward()
    assert z.grad is None
    assert quantizer.inner.weight.grad.abs().sum() > 0


def test_losses_match_hand_computation():
    """d = 1, scales (1, 2), z = [[1, 2], [3, 6]], codes (-2, -0.5, 0.5, 2.5), beta 0.1, alpha 1.

    Scale 1: mean 3 -> code 2.5 (error 0.5). Scale 2: residual z - 2.5 = [[-1.5, -0.5], [0.5, 3.5]] -> codes
    [[-2, -0.5], [0.5, 2.5]], errors (0.5, 0, 0, 1), MSE 0.3125. z_dec = [[0.5, 2], [3, 5]], MSE(z_dec, z) = 0.3125.
    Per-scale terms: (1 * 0.25 + 2 * 0.3125) / 3.
    """
    quantizer = make("vanilla", [[-2.0], [-0.5], [0.5], [2.5]], (1, 2))
    z = torch.tensor([[1.0, 2.0], [3.0, 6.0]]).reshape(1, 2, 2, 1)
    out = quantizer(z)
    assert out.scale_indices[0].tolist() == [[[3]]]
    assert out.scale_indices[1].tolist() == [[[0, 1], [2, 3]]]
    assert out.quantized.flatten().tolist() == pytest.approx([0.5, 2.0, 3.0, 5.0])
    per_scale = (1 * 0.25 + 2 * 0.3125) / 3
    expected = {
        "commitment": 0.1 * 0.3125,
        "codebook": 0.3125,
        "scale_commitment": 0.1 * per_scale,
        "scale_codebook": per_scale,
    }
    assert {name: loss.item() for name, loss in out.losses.items()} == pytest.approx(expected)
    # Official gradient path: the scale-2 residual z - u_1 is not detached, so the per-scale beta term reaches the
    # scale-1 code: d/de_3 of (2/3) 0.1 mean((z - e_3 - e_2)^2) = -(2/3) 0.1 * 2 * mean(0.5, 0, 0, 1) = -0.05.
    out.losses["scale_commitment"].backward()
    assert quantizer.inner.weight.grad.flatten().tolist() == pytest.approx([0.0, 0.0, 0.0, -0.05])


def test_wasserstein_statistics_cover_every_scale_residual():
    quantizer = make("wasserstein", torch.randn(16, 2), (1, 2, 4), queue_size=64)
    z = torch.randn(2, 4, 4, 2)
    out = quantizer(z)
    assert out.residuals.shape == (2 * tokens((1, 2, 4)), 2)
    assert int(quantizer.inner.queue_next) == 42
    assert torch.equal(quantizer.inner.queue[:42], out.residuals)
    quantizer.eval()  # evaluation: W2 over the current batch's residual vectors of all scales
    out = quantizer(z)
    expected = 0.5 * quantizer.inner.wasserstein_distance(out.residuals)
    assert out.losses["wasserstein"].item() == pytest.approx(expected.item())


def test_usage_histogram_counts_every_token_of_every_scale():
    quantizer = make("vanilla", torch.randn(8, 2), (1, 2, 4))
    z = torch.randn(3, 4, 4, 2)
    out = quantizer(z)
    assert out.indices.shape == (3 * 21,)
    assert torch.equal(out.indices, out.inner.indices)
    usage = CodebookUsage(8)
    usage.add(z, out.codes, out.indices)  # E over the 48 latent vectors, U and C over the 63 tokens
    assert int(usage.counts.sum()) == 63 and usage.vectors == 48


def test_ema_inner_has_no_codebook_terms_and_updates_over_all_tokens():
    quantizer = make("ema", torch.randn(8, 2), (1, 2, 4), decay=0.5)
    quantizer.inner.cluster_size.zero_()
    z = torch.randn(2, 4, 4, 2)
    out = quantizer(z)
    assert set(out.losses) == {"commitment", "scale_commitment"}
    quantizer.update(z, out)
    assert float(quantizer.inner.cluster_size.sum()) == pytest.approx(0.5 * 42)


def test_every_scale_searches_the_codebook_once(monkeypatch):
    """The inner's terms reuse the per-scale searches: 3 scales, 3 searches (not a 4th over all residuals)."""
    from replicate.quantize import base

    calls = []
    search = base.nearest_code
    monkeypatch.setattr(base, "nearest_code", lambda *a, **k: calls.append(1) or search(*a, **k))
    make("wasserstein", torch.randn(16, 2), (1, 2, 4), queue_size=64)(torch.randn(2, 4, 4, 2))
    assert len(calls) == 3
