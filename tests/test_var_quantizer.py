"""VAR's own quantizer (replicate/quantize/var.py) against VAR's forward (FoundationVision/VAR, models/quant.py,
VectorQuantizer2.forward with using_znorm False), transcribed here as a test fixture from its published logic: on the
same inputs and weights, the same reconstruction, loss and gradients to 1e-6."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from replicate.errors import ConfigError
from replicate.quantize import build_quantizer, quantizer_config
from replicate.quantize.multiscale import MultiScaleQuantizer
from replicate.quantize.var import VARQuantizer

SCALES = (1, 2, 3, 4, 6)


def var_forward_reference(f, embedding, phis, scales, beta):
    """VAR's forward on f (B, C, H, W): residual search from small to large scale on the detached features, every
    code map bicubic-upsampled (not the last) and passed through its phi, loss on the running sum after each scale."""
    batch, channels, height, width = f.shape
    f_no_grad = f.detach()
    f_rest = f_no_grad.clone()
    f_hat = torch.zeros_like(f_rest)
    count = len(phis)
    ticks = np.linspace(1 / 3 / count, 1 - 1 / 3 / count, count) if count == 4 else None
    loss = 0.0
    last = len(scales) - 1
    for si, pn in enumerate(scales):
        if si != last:
            rest = F.interpolate(f_rest, size=(pn, pn), mode="area")
        else:
            rest = f_rest
        rest = rest.permute(0, 2, 3, 1).reshape(-1, channels)
        distances = rest.square().sum(1, keepdim=True) + embedding.data.square().sum(1) - 2 * rest @ embedding.data.T
        index = distances.argmin(1).view(batch, pn, pn)
        h = embedding[index].permute(0, 3, 1, 2)
        if si != last:
            h = F.interpolate(h, size=(height, width), mode="bicubic")
        phi = phis[int(np.argmin(np.abs(ticks - si / last)))]
        h = h * (1 - 0.5) + phi(h) * 0.5
        f_hat = f_hat + h
        f_rest = f_rest - h.detach()
        loss = loss + F.mse_loss(f_hat.data, f) * beta + F.mse_loss(f_hat, f_no_grad)
    loss = loss / len(scales)
    return (f_hat.data - f_no_grad) + f, loss


def var_quantizer(seed: int = 0) -> VARQuantizer:
    torch.manual_seed(seed)
    inner = build_quantizer(quantizer_config("vanilla", 64, 8, beta=0.25, init="normal", init_scale=1.0))
    return VARQuantizer(inner, SCALES)


def test_var_quantizer_gives_vars_reconstruction_loss_and_gradients():
    quantizer = var_quantizer()
    torch.manual_seed(1)
    features = torch.randn(3, 6, 6, 8)
    ours_in = features.clone().requires_grad_(True)
    out = quantizer(ours_in)
    ours_loss = out.loss
    (ours_in.square() * out.quantized).sum().backward(retain_graph=True)  # a decoder stand-in: gradient to z
    ours_loss.backward()
    ours_grads = [ours_in.grad.clone(), *(p.grad.clone() for p in quantizer.parameters())]
    quantizer.zero_grad()

    reference_in = features.permute(0, 3, 1, 2).clone().requires_grad_(True)
    convs = [lambda h, phi=phi: phi.conv(h) for phi in quantizer.phis]
    f_hat, loss = var_forward_reference(reference_in, quantizer.codebook(), convs, SCALES, 0.25)
    (reference_in.permute(0, 2, 3, 1).square() * f_hat.permute(0, 2, 3, 1)).sum().backward(retain_graph=True)
    loss.backward()
    reference_grads = [reference_in.grad.permute(0, 2, 3, 1), *(p.grad for p in quantizer.parameters())]

    assert torch.allclose(out.quantized, f_hat.permute(0, 2, 3, 1), atol=1e-6)
    assert abs(ours_loss.item() - loss.item()) < 1e-6
    for ours, reference in zip(ours_grads, reference_grads, strict=True):
        assert torch.allclose(ours, reference, atol=1e-6)


def test_var_quantizer_decodes_its_own_tokens_to_its_reconstruction():
    quantizer = var_quantizer().eval()
    out = quantizer(torch.randn(2, 6, 6, 8))
    decoded = quantizer.partial_sums(out.scale_indices)[-1].permute(0, 2, 3, 1)
    assert torch.allclose(decoded, out.quantized, atol=1e-6)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 6])
def test_each_scale_uses_the_phi_vars_ticks_place_nearest(count):
    """VAR's PhiPartiallyShared: ticks linspace(1/(3n), 1 - 1/(3n), n) for n = 4, linspace(1/(2n), 1 - 1/(2n), n)
    otherwise, in numpy; scale si of S takes argmin |ticks - si / (S - 1)| (the first on a tie)."""
    margin = 1 / 3 / count if count == 4 else 1 / 2 / count
    ticks = np.linspace(margin, 1 - margin, count)
    inner = build_quantizer(quantizer_config("vanilla", 8, 4))
    for scales in [(1, 2), (1, 2, 3, 4, 5, 6, 8), (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)]:
        last = len(scales) - 1
        expected = [int(np.argmin(np.abs(ticks - si / last))) for si in range(len(scales))]
        assert VARQuantizer(inner, scales, phi_count=count).phi_of_scale == expected


def test_var_quantizer_differs_from_wasserstein_vqs_residual_quantizer_on_the_same_codebook():
    """The two multi-scale quantizers are different methods: same codebook and inputs, other reconstruction."""
    quantizer = var_quantizer()
    v1 = MultiScaleQuantizer(quantizer.inner, SCALES)
    features = torch.randn(2, 6, 6, 8)
    assert not torch.allclose(quantizer(features).quantized, v1(features).quantized, atol=1e-3)


def test_var_quantizer_refuses_a_phi_ratio_outside_zero_one():
    with pytest.raises(ConfigError, match="phi_ratio"):
        VARQuantizer(build_quantizer(quantizer_config("vanilla", 8, 4)), (1, 2), phi_ratio=1.5)


def test_dq_var_tokenizers_use_vars_quantizer_and_table3_keeps_wasserstein_vqs():
    from replicate.experiments import generation, wvq_table3
    from replicate.train.tokenizer import build_model

    for scale in ("smoke", "cpu", "paper"):
        tokenizers = {arm.generator: arm.tokenizer for arm in generation.configs(scale)}
        assert tokenizers["var"].multiscale_quantizer == "var"
        assert not tokenizers["maskgit"].scales
        multiscale = [c for c in wvq_table3.configs(scale) if c.scales]
        assert multiscale and {c.multiscale_quantizer for c in multiscale} == {"wasserstein_v1"}
    smoke = {arm.generator: arm.tokenizer for arm in generation.configs("smoke")}
    assert type(build_model(smoke["var"]).quantizer) is VARQuantizer
    assert type(build_model(wvq_table3.configs("smoke")[1]).quantizer) is MultiScaleQuantizer


def test_kmeans_of_a_multiscale_tokenizer_runs_on_the_residuals_of_every_scale(monkeypatch):
    """Deferred Quantization's k-means initialisation, for a multi-scale tokenizer, clusters what its codebook
    quantizes: the residual vectors of every scale (tokens(scales) an image), not the full-resolution latents."""
    from replicate import distributed
    from replicate.data.images import image_dataset
    from replicate.experiments import generation
    from replicate.quantize.multiscale import tokens
    from replicate.train.schedule import QuantizationSchedule
    from replicate.train.tokenizer import build_model, initialize_codebook

    config = next(arm.tokenizer for arm in generation.configs("smoke") if arm.generator == "var")
    config = dataclasses.replace(config, kmeans_vectors=3 * tokens(config.scales))  # three images
    data = image_dataset("shapes", "train", root=None, resolution=config.model.resolution, train_augment=False, seed=0)
    model = build_model(config).eval()
    seen = []
    schedule = QuantizationSchedule("early", 0, kmeans_iterations=2)
    monkeypatch.setattr(
        QuantizationSchedule, "initialize", lambda self, quantizer, features, generator: seen.append(features)
    )
    context = distributed.Context(0, 1, torch.device("cpu"))
    initialize_codebook(model, data, schedule, config, context)
    assert seen[0].shape == (3 * tokens(config.scales), config.model.d)
    chosen = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed + 7))[:3].tolist()
    with torch.no_grad():
        latents = model.encode(torch.stack([data[i][0] for i in chosen]))
        torch.testing.assert_close(seen[0], model.quantizer(latents).residuals)
