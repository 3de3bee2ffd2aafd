"""Each quantizer's loss, gradient and update against a step computed by hand on a tiny example (d = 1, K = 2,
features 0.2, 0.9, 0.7), plus the shared interface: straight-through gradients, configs, registry."""

import math

import pytest
import torch

from replicate.errors import ConfigError
from replicate.quantize import CODEBOOK_QUANTIZERS, build_quantizer, quantizer_config

FEATURES = torch.tensor([[0.2], [0.9], [0.7]])


def make(method, codes, **settings):
    quantizer = build_quantizer(quantizer_config(method, len(codes), 1, **settings))
    target = quantizer.base_codes if method == "linear" else quantizer.weight
    target.data.copy_(torch.tensor(codes).reshape(-1, 1))
    return quantizer.train()


def test_vanilla_sgd_step_matches_hand_computation():
    quantizer = make("vanilla", [0.0, 1.0], alpha=1.0, beta=1.0)
    out = quantizer(FEATURES)
    assert out.indices.tolist() == [0, 1, 1]
    # codebook loss mean((e - z)^2) over 3 elements: d/de0 = 2(0 - 0.2)/3, d/de1 = 2((1 - 0.9) + (1 - 0.7))/3
    out.loss.backward()
    assert quantizer.weight.grad.squeeze().tolist() == pytest.approx([-0.4 / 3, 0.8 / 3])
    torch.optim.SGD(quantizer.parameters(), lr=0.5).step()
    assert quantizer.weight.squeeze().tolist() == pytest.approx([0.2 / 3, 1 - 0.4 / 3])


def test_ema_update_matches_hand_computation():
    quantizer = make("ema", [0.0, 1.0], decay=0.5)
    quantizer.embed_avg.copy_(quantizer.weight)
    out = quantizer(FEATURES)
    quantizer.update(FEATURES, out)
    # counts (1, 2), sums (0.2, 1.6); n = 0.5 (0, 0) + 0.5 (1, 2) = (0.5, 1.0); m = 0.5 (0, 1) + 0.5 (0.2, 1.6)
    assert quantizer.cluster_size.tolist() == pytest.approx([0.5, 1.0])
    assert quantizer.embed_avg.squeeze().tolist() == pytest.approx([0.1, 1.3])
    assert quantizer.weight.squeeze().tolist() == pytest.approx([0.2, 1.3], abs=1e-4)  # m / n, smoothing 1e-5


def test_ema_codebook_gets_no_gradient():
    quantizer = make("ema", [0.0, 1.0])
    assert not any(p.requires_grad for p in quantizer.parameters())
    assert quantizer.param_groups(1e-3) == []


@pytest.mark.parametrize(
    "anchor,expected_second_code",
    [
        # unused code 1 (at 5.0): pull = exp(-0.001); anchor = closest feature 0.9 or farthest 0.2
        ("closest", 5 * (1 - math.exp(-1e-3)) + 0.9 * math.exp(-1e-3)),
        ("farthest", 5 * (1 - math.exp(-1e-3)) + 0.2 * math.exp(-1e-3)),
    ],
)
def test_online_reseeding_matches_hand_computation(anchor, expected_second_code):
    quantizer = make("online", [0.0, 5.0], decay=0.5, anchor=anchor)
    out = quantizer(FEATURES)
    quantizer.update(FEATURES, out)
    # usage = 0.5 (1, 0); code 0 is used: pull = exp(-0.5 * 2 * 10 / 0.5 - 0.001) ~ 2e-9, it stays at 0
    assert quantizer.usage.tolist() == pytest.approx([0.5, 0.0])
    assert quantizer.weight.squeeze().tolist() == pytest.approx([0.0, expected_second_code], abs=1e-7)


def test_linear_projection_gradient_matches_hand_computation():
    quantizer = make("linear", [1.0, -1.0], alpha=1.0, beta=0.0)
    quantizer.projection.weight.data.fill_(2.0)
    quantizer.projection.bias.data.fill_(0.5)  # effective codes (2.5, -1.5)
    out = quantizer(torch.tensor([[2.0], [-1.0], [0.0]]))
    assert out.indices.tolist() == [0, 1, 1]
    out.loss.backward()
    # dL/dc = 2 (c - z) / 3 = (1/3, -1/3, -1) at base codes (1, -1, -1): dL/dw = 5/3, dL/db = -1
    assert quantizer.projection.weight.grad.item() == pytest.approx(5 / 3)
    assert quantizer.projection.bias.grad.item() == pytest.approx(-1.0)
    assert quantizer.base_codes.grad is None


def test_wasserstein_gradient_matches_the_one_dimensional_closed_form():
    quantizer = make(
        "wasserstein",
        [0.0, 1.0],
        alpha=0.0,
        beta=0.0,
        gamma=1.0,
        queue_size=None,
        normalize_scale=False,
        unbiased_covariance=False,
    )
    out = quantizer(torch.tensor([[1.0], [3.0]]))
    # 1-D: W2 = sqrt((m_z - m_c)^2 + (s_z - s_c)^2), features (mean 2, std 1), codes (mean 0.5, std 0.5)
    w2 = math.sqrt(1.5**2 + 0.5**2)
    assert out.losses["wasserstein"].item() == pytest.approx(w2, rel=1e-6)
    out.loss.backward()
    # dW/dc1 = (-1.5/W)(1/2) + (-0.5/W)(-1/2); dW/dc2 = (-1.5/W)(1/2) + (-0.5/W)(1/2)
    assert quantizer.weight.grad.squeeze().tolist() == pytest.approx([-0.5 / w2, -1.0 / w2], rel=1e-5)


def test_wasserstein_queue_is_a_ring_buffer_of_the_latest_features():
    quantizer = make("wasserstein", [0.0, 1.0], queue_size=4)
    first, second = torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[4.0], [5.0], [6.0]])
    quantizer(first)
    quantizer(second)
    assert quantizer.queue.squeeze().tolist() == [5.0, 6.0, 3.0, 4.0]
    quantizer.eval()(torch.tensor([[9.0]]))  # evaluation does not touch the queue
    assert quantizer.queue.squeeze().tolist() == [5.0, 6.0, 3.0, 4.0]


def test_wasserstein_codebook_has_its_own_learning_rate():
    quantizer = build_quantizer(quantizer_config("wasserstein", 16, 4))
    assert quantizer.param_groups(5e-5) == [{"params": [quantizer.weight], "lr": 0.02}]


@pytest.mark.parametrize("method", list(CODEBOOK_QUANTIZERS))
def test_straight_through_output_has_code_values_and_identity_gradient(method):
    quantizer = build_quantizer(quantizer_config(method, 32, 4)).train()
    features = torch.randn(2, 5, 4, requires_grad=True)
    out = quantizer(features)
    assert torch.allclose(out.quantized, out.codes, atol=1e-6)
    assert out.indices.shape == (2, 5)
    weights = torch.randn_like(features)
    (out.quantized * weights).sum().backward()
    assert torch.allclose(features.grad, weights)


@pytest.mark.parametrize("method", list(CODEBOOK_QUANTIZERS))
def test_every_method_states_its_official_defaults(method):
    config = quantizer_config(method, 8, 2)
    expected_beta = 0.1 if method in ("wasserstein", "sliced_wasserstein") else 1.0  # sliced: Wasserstein VQ's
    assert config.beta == expected_beta


def test_official_decays_and_anchor_are_the_defaults():
    assert quantizer_config("ema", 8, 2).decay == 0.8
    assert quantizer_config("online", 8, 2).anchor == "farthest"
    wasserstein = quantizer_config("wasserstein", 8, 2)
    assert (
        wasserstein.queue_size,
        wasserstein.normalize_scale,
        wasserstein.codebook_lr,
        wasserstein.gamma,
    ) == (65536, True, 0.02, 0.5)


@pytest.mark.parametrize(
    "method,settings,message",
    [
        ("nope", {}, "unknown method 'nope'; valid: ema, fsq, linear, mmd, online, sliced_wasserstein, vanilla, wass"),
        ("ema", {"decay": 1.5}, "decay must be in"),
        ("online", {"anchor": "random"}, "unknown anchor"),
        ("vanilla", {"gamma": 1.0}, "unknown VanillaConfig field"),
    ],
)
def test_bad_quantizer_settings_fail_with_a_clear_message(method, settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        quantizer_config(method, 8, 2, **settings)


@pytest.mark.parametrize("num_codes,dim", [(0, 8), (8, 0), (-1, 2)])
def test_codebook_size_and_dimension_must_be_positive(num_codes, dim):
    with pytest.raises(ConfigError, match="must be an integer >= 1"):
        quantizer_config("vanilla", num_codes, dim)
