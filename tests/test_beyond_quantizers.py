"""The two quantizers beyond the papers' five: MMD VQ (Wasserstein VQ's later revision) and sliced Wasserstein VQ.
Their distances against hand values and closed forms, training in the atomic setting and inside a VQ-VAE, and
their configuration checks. CPU, a few seconds each."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from replicate.configs import VQVAEConfig
from replicate.errors import ConfigError
from replicate.models.vqvae import VQVAE
from replicate.quantize import build_quantizer, quantizer_config
from replicate.quantize.gaussian import gaussian_fit, gaussian_w2
from replicate.quantize.mmd import MMDVQ, MMDConfig, mmd_bandwidth, mmd_squared
from replicate.quantize.sliced import SlicedConfig, SlicedWassersteinVQ, random_directions, sliced_wasserstein
from replicate.quantize.wasserstein import WassersteinConfig, WassersteinVQ
from replicate.train.atomic import atomic_step, build_atomic

METHODS = {  # name -> (quantizer, config, loss key)
    "mmd": (MMDVQ, MMDConfig, "mmd"),
    "sliced_wasserstein": (SlicedWassersteinVQ, SlicedConfig, "sliced_wasserstein"),
}


def test_mmd_of_identical_samples_is_zero_and_grows_with_a_mean_shift():
    x = torch.randn(400, 4, dtype=torch.float64)
    assert abs(float(mmd_squared(x, x))) < 1e-12  # float64: the three kernel means coincide
    assert abs(float(mmd_squared(x.float(), x.float()))) < 1e-6  # float32 rows, float64 sums
    values = [float(mmd_squared(x, torch.randn(400, 4, dtype=torch.float64) + shift)) for shift in (0, 0.5, 1, 2)]
    assert values == sorted(values) and values[0] < 0.05 < values[1]


def test_mmd_is_the_v_statistic_over_all_pairs_with_the_joint_mean_distance_as_bandwidth():
    features, codes = torch.randn(30, 3, dtype=torch.float64), torch.randn(20, 3, dtype=torch.float64) + 0.5
    joint = torch.cat([features, codes])
    distance = torch.cdist(joint, joint).square() / math.sqrt(3)
    h = distance.sum() / (50 * 50 - 50)
    kernel = torch.exp(-distance / h) + torch.exp(-distance / (2 * h))
    expected = kernel[:30, :30].mean() - 2 * kernel[:30, 30:].mean() + kernel[30:, 30:].mean()
    assert float(mmd_bandwidth(features, codes)) == pytest.approx(float(h), rel=1e-12)
    assert float(mmd_squared(features, codes)) == pytest.approx(float(expected), rel=1e-10)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_mmd_hand_written_gradient_equals_autograd_through_the_kernel_formula(dtype, tolerance):
    """MeanKernel's backward against autograd through the formula of the test above, the bandwidth held fixed
    (it is detached in both); the codes appear in the cross term and, twice, in their own term."""
    features, start = torch.randn(30, 3, dtype=dtype), torch.randn(20, 3, dtype=dtype) + 0.5
    h = mmd_bandwidth(features, start)
    codes, reference = start.clone().requires_grad_(), start.clone().requires_grad_()
    mmd_squared(features, codes, h).backward()

    def mean_kernel(a, b):
        distance = (a[:, None] - b[None]).square().sum(-1) / math.sqrt(3)
        return (torch.exp(-distance / h.to(dtype)) + torch.exp(-distance / (2 * h.to(dtype)))).mean()

    expected = mean_kernel(features, features) - 2 * mean_kernel(features, reference)
    (expected + mean_kernel(reference, reference)).backward()
    assert torch.allclose(codes.grad, reference.grad, rtol=tolerance, atol=tolerance * reference.grad.abs().max())


def test_mmd_bandwidth_equals_the_hand_formula_on_three_points():
    """Features (0, 0), (1, 0) and code (0, 2): squared distances 1, 4, 5, each pair counted twice, over sqrt(2);
    N = 3, so h = 2 (1 + 4 + 5) / sqrt(2) / (9 - 3)."""
    features, codes = torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert float(mmd_bandwidth(features, codes)) == pytest.approx(20 / math.sqrt(2) / 6, rel=1e-12)


def test_mmd_subsampling_is_seeded_by_the_count_of_training_calls():
    config = MMDConfig(num_codes=64, dim=3, max_features=50, max_codes=20, seed=7)
    first, second = MMDVQ(config).train(), MMDVQ(config).train()
    second.load_state_dict(first.state_dict())
    features = torch.randn(200, 3)
    losses = [float(first(features).losses["mmd"].detach()) for _ in range(2)]
    assert float(second(features).losses["mmd"].detach()) == losses[0] and losses[1] != losses[0]
    assert int(first.draws) == 2 and int(second.eval().draws) == 1
    second(features)  # evaluation draws the next subset without advancing
    assert int(second.draws) == 1


def test_sliced_w2_interpolates_the_feature_quantiles_at_the_code_levels():
    """Codes at levels 1/4 and 3/4 of four features 0, 1, 2, 3 (placed at 1/8, 3/8, 5/8, 7/8) meet the
    quantiles 0.5 and 2.5; with as many codes as features the sorted projections are matched pairwise."""
    direction = torch.ones(1, 1)
    features = torch.tensor([[3.0], [0.0], [2.0], [1.0]], dtype=torch.float64)
    assert float(sliced_wasserstein(features, torch.tensor([[2.5], [0.5]]), direction)) < 1e-4  # sqrt(1e-10)
    codes = torch.tensor([[1.0], [-1.0], [4.0], [2.0]])  # sorted -1, 1, 2, 4 against 0, 1, 2, 3
    assert float(sliced_wasserstein(features, codes, direction)) == pytest.approx(math.sqrt(2 / 4), rel=1e-8)


def test_sliced_w2_of_shifted_gaussians_is_the_closed_form_w2_over_sqrt_d():
    """N(0, I) vs N(m, I) in d = 4: W2 = |m|, and E_theta (theta . m)^2 = |m|^2 / d for uniform directions, so
    d SW2^2 -> W2^2. Tested: d SW2^2 within 10% of the closed-form W2^2 of the two samples' Gaussian fits, with
    2,000 directions and 10,000 samples each (the directions' sampling error alone is about 2.2%)."""
    d, shift = 4, torch.tensor([1.5, -1.0, 0.5, 1.0], dtype=torch.float64)
    features = torch.randn(10_000, d, dtype=torch.float64)
    codes = torch.randn(10_000, d, dtype=torch.float64) + shift
    w2 = float(gaussian_w2(*gaussian_fit(features, unbiased=False), *gaussian_fit(codes, unbiased=False)))
    assert w2 == pytest.approx(float(shift.norm()), rel=0.02)
    directions = random_directions(2000, d, torch.Generator().manual_seed(0))
    assert d * float(sliced_wasserstein(features, codes, directions)) ** 2 == pytest.approx(w2**2, rel=0.10)


def test_sliced_queue_is_wasserstein_vqs_fifo():
    sliced = SlicedWassersteinVQ(SlicedConfig(num_codes=8, dim=2, queue_size=5)).train()
    wasserstein = WassersteinVQ(WassersteinConfig(num_codes=8, dim=2, queue_size=5)).train()
    sliced.queue.copy_(wasserstein.queue)
    for batch in (torch.randn(3, 2), torch.randn(4, 2), torch.randn(7, 2)):
        sliced(batch), wasserstein(batch)
        assert torch.equal(sliced.queue, wasserstein.queue) and torch.equal(sliced.queue_next, wasserstein.queue_next)
    queue = sliced.queue.clone()
    sliced.eval()(torch.randn(2, 2))  # evaluation neither queues nor advances the directions
    assert torch.equal(sliced.queue, queue) and int(sliced.draws) == 3


MATCHING_SETTINGS = {  # a queue shorter than two batches, so that the second call's reference mixes both
    "wasserstein": {"queue_size": 64},
    "sliced_wasserstein": {"queue_size": 64, "projections": 16, "seed": 5},
    "mmd": {},
}


def direct_distance(method: str, config, reference: torch.Tensor, codebook: torch.Tensor, call: int) -> float:
    """Each method's distance written out from its definition, in float64, without the quantizer's code path."""
    reference, codebook = reference.double(), codebook.double()
    if method == "wasserstein":  # official estimator: divide by the features' largest std, unbiased fits, W2 (scipy)
        scale = reference.std(0).max() + 1e-8
        a, b = (reference / scale).numpy(), (codebook / scale).numpy()
        cov_a, cov_b = np.cov(a.T), np.cov(b.T)
        root_a = scipy.linalg.sqrtm(cov_a).real
        cross = scipy.linalg.sqrtm(root_a @ cov_b @ root_a).real
        mean_part = np.square(a.mean(0) - b.mean(0)).sum()
        return math.sqrt(mean_part + np.trace(cov_a + cov_b - 2 * cross))
    if method == "sliced_wasserstein":  # this call's directions: the generator seeded with seed + training calls
        directions = random_directions(
            config.projections, config.dim, torch.Generator().manual_seed(config.seed + call)
        )
        return float(sliced_wasserstein(reference, codebook, directions.double()))
    joint = torch.cat([reference, codebook])  # MMD_b^2 over all pairs, bandwidth from the joint set
    distance = torch.cdist(joint, joint).square() / math.sqrt(config.dim)
    h = distance.sum() / (len(joint) ** 2 - len(joint))
    kernel = torch.exp(-distance / h) + torch.exp(-distance / (2 * h))
    n = len(reference)
    return float(kernel[:n, :n].mean() - 2 * kernel[:n, n:].mean() + kernel[n:, n:].mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", list(MATCHING_SETTINGS))
def test_each_matching_quantizer_is_vq_losses_plus_gamma_times_its_distance_to_the_queue(method, seed):
    """The shared base (quantize/matching.py) against each method's formula, over two training calls: codes are
    the brute-force nearest, codebook and commitment losses are alpha and beta times their MSE, and the method's
    term is gamma times its distance between the codebook and the reference (the queue of the latest features,
    where the method has one; else the batch)."""
    torch.manual_seed(seed)
    settings = {**MATCHING_SETTINGS[method], "alpha": 0.9, "beta": 0.3, "gamma": 0.7}
    quantizer = build_quantizer(quantizer_config(method, 16, 3, **settings)).train()
    config, queued = quantizer.config, "queue_size" in MATCHING_SETTINGS[method]
    history = quantizer.queue.clone() if queued else None
    for call in range(2):
        features = torch.randn(40, 3) * 2 + 0.5
        out = quantizer(features)
        codebook = quantizer.weight.detach()
        codes = codebook[torch.cdist(features, codebook).argmin(1)]
        assert torch.equal(out.indices, torch.cdist(features, codebook).argmin(1))
        error = float((features - codes).square().mean())
        assert float(out.losses["codebook"].detach()) == pytest.approx(0.9 * error, rel=1e-6)
        assert float(out.losses["commitment"].detach()) == pytest.approx(0.3 * error, rel=1e-6)
        if queued:  # the FIFO's content: the latest queue_size rows (order does not change these distances)
            history = torch.cat([history, features])[-config.queue_size :]
        reference = history if queued else features
        expected = 0.7 * direct_distance(method, config, reference, codebook, call)
        assert set(out.losses) == {"codebook", "commitment", method}
        assert float(out.losses[method].detach()) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_learns_a_spread_codebook_in_the_atomic_setting(method):
    """Fixed features N(2 * 1, I) in d = 8, K = 64 codes collapsed at N(0, 0.01^2 I); only the codebook learns:
    SGD lr 0.3, momentum 0.9 (train/atomic.py) on 0.1 d * codebook loss + 10 * distribution term, as Wasserstein
    VQ's atomic settings. 200 steps cut the distribution term by 90% and lift utilization from < 20% to > 80%."""
    quantizer_class, config_class, key = METHODS[method]
    config = config_class(num_codes=64, dim=8).replace(alpha=0.8, beta=0.0, gamma=10.0, codebook_lr=None)
    if method == "sliced_wasserstein":
        config = config.replace(queue_size=None)
    quantizer, optimizer = build_atomic(config, lr=0.3, momentum=0.9)
    features = torch.randn(512, 8) + 2.0

    def term_and_usage() -> tuple[float, float]:
        with torch.no_grad():
            out = quantizer(features)
        return float(out.losses[key]), out.indices.unique().numel() / 64

    before, used_before = term_and_usage()
    for _ in range(200):
        atomic_step(quantizer, optimizer, features)
    after, used_after = term_and_usage()
    assert after < 0.1 * before and used_before < 0.2 and used_after > 0.8


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_trains_inside_a_vqvae(method):
    quantizer_class, config_class, key = METHODS[method]
    model = VQVAE(VQVAEConfig(32, channels=8, channel_mult=(1, 2)), quantizer_class(config_class(32, 8)))
    quantizer = model.quantizer
    others = [p for name, p in model.named_parameters() if not name.startswith("quantizer.")]
    optimizer = torch.optim.Adam([{"params": others, "lr": 1e-4}, *quantizer.param_groups(1e-4)])
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    out = model(images)
    loss = F.mse_loss(out.reconstructions, images) + out.quantizer.loss
    loss.backward()
    before = quantizer.weight.detach().clone()
    optimizer.step()
    assert math.isfinite(float(loss.detach())) and set(out.quantizer.losses) == {"codebook", "commitment", key}
    assert quantizer.weight.grad.abs().sum() > 0 and not torch.equal(quantizer.weight, before)
    assert optimizer.param_groups[1]["lr"] == 0.02  # the codebook's own group


@pytest.mark.parametrize(
    "method, change",
    [
        ("mmd", {"gamma": -1.0}),
        ("mmd", {"max_features": 0}),
        ("mmd", {"max_codes": 2.5}),
        ("mmd", {"codebook_lr": 0.0}),
        ("mmd", {"init": "zeros"}),
        ("mmd", {"bandwidth": 1.0}),
        ("sliced_wasserstein", {"projections": 0}),
        ("sliced_wasserstein", {"queue_size": 1}),
        ("sliced_wasserstein", {"beta": -0.1}),
        ("sliced_wasserstein", {"codebook_lr": -1.0}),
        ("sliced_wasserstein", {"dim": 0}),
    ],
)
def test_invalid_settings_fail_with_config_error(method, change):
    config_class = METHODS[method][1]
    with pytest.raises(ConfigError):
        config_class(num_codes=8, dim=2).replace(**change)


@pytest.mark.parametrize("d", [1, 4])
def test_the_density_adjusted_target_is_the_features_gaussian_with_covariance_scaled_by_d_plus_2_over_d(d):
    """Codes whose Gaussian fit is N(mu, (d + 2) / d S) are at W2 = 0 from the "zador" target, not from the features."""
    features = torch.randn(4000, d, dtype=torch.float64) @ torch.randn(d, d, dtype=torch.float64) + 3.0
    mean = features.mean(0)
    codes = mean + math.sqrt((d + 2) / d) * (features - mean)  # same mean, covariance exactly (d + 2) / d S
    settings = dict(num_codes=len(codes), dim=d, queue_size=None, normalize_scale=False, unbiased_covariance=False)
    distance = {}
    for target in ("features", "zador"):
        quantizer = WassersteinVQ(WassersteinConfig(**settings, target=target)).double()
        quantizer.set_codebook(codes)
        distance[target] = float(quantizer.wasserstein_distance(features).detach())
    assert distance["zador"] < 1e-4 < distance["features"]
