"""The VAR transformer on tiny configurations: the block-causal mask, teacher-forcing inputs against the multi-scale
quantizer's own decoding, causality through the model, sampling against teacher forcing, memorisation of one
token pyramid, classifier-free guidance and configuration errors."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from replicate.errors import ConfigError
from replicate.models.var import (
    VAR,
    SamplingConfig,
    VARConfig,
    accumulate,
    block_causal_mask,
    sample,
    scale_inputs,
    training_loss,
)
from replicate.quantize import build_quantizer, quantizer_config
from replicate.quantize.multiscale import VAR_SCALES, MultiScaleQuantizer, tokens

SMALL = (1, 2, 4)
GREEDY = SamplingConfig(top_k=1, top_p=None, guidance_scale=0.0)


def tiny(**changes) -> VAR:
    """scales (1, 2, 4), K 8, d 2, width 32, depth 2 (heads 2), no dropout of any kind."""
    settings = dict(vocab_size=8, code_dim=2, num_classes=3, scales=SMALL, depth=2, width=32, drop_path=0.0)
    return VAR(VARConfig(**{**settings, **changes}))


def randomise(model: VAR) -> VAR:
    """Every parameter random, so that no zero-initialised AdaLN gate hides an interaction between positions."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.3)
    return model


def random_maps(batch: int, scales=SMALL, vocab: int = 8, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(vocab, (batch, p, p), generator=generator) for p in scales]


def multiscale_quantizer(codes: torch.Tensor, scales) -> MultiScaleQuantizer:
    inner = build_quantizer(quantizer_config("vanilla", codes.shape[0], codes.shape[1], beta=0.1))
    inner.set_codebook(codes)
    return MultiScaleQuantizer(inner, scales).eval()


def test_mask_lets_each_scale_see_exactly_the_scales_up_to_itself():
    mask = block_causal_mask(VAR_SCALES)
    assert mask.shape == (680, 680) and mask.dtype == torch.bool
    level = torch.repeat_interleave(torch.arange(10), torch.tensor([p * p for p in VAR_SCALES]))
    for s in range(10):
        rows = mask[level == s]
        assert rows[:, level <= s].all() and not rows[:, level > s].any()


def test_accumulate_equals_the_multiscale_quantizers_decoded_latent():
    codes = torch.randn(32, 3)
    quantizer = multiscale_quantizer(codes, VAR_SCALES)
    z = torch.randn(2, 16, 16, 3)
    with torch.no_grad():
        out = quantizer(z)
    decoded = accumulate(out.scale_indices, quantizer)
    assert decoded.shape == (2, 16, 16, 3)
    torch.testing.assert_close(decoded, out.codes, rtol=1e-5, atol=1e-5)


def test_scale_inputs_are_the_area_means_of_the_accumulated_coarser_scales():
    codebook = torch.randn(8, 2)
    quantizer = multiscale_quantizer(codebook, VAR_SCALES)
    maps = random_maps(2, VAR_SCALES)
    inputs = scale_inputs(maps, quantizer)
    assert inputs.shape == (2, tokens(VAR_SCALES) - 1, 2)
    first = quantizer.partial_sums(maps[:1])[-1].permute(0, 2, 3, 1)  # up(scale-1 code): a constant 16 x 16 map
    torch.testing.assert_close(inputs[:, 0], first[:, :8, :8].mean(dim=(1, 2)))  # top-left cell of the 2 x 2 map
    torch.testing.assert_close(inputs[:, :4], codebook[maps[0].flatten(1)].expand(-1, 4, -1))
    # the last scale (p = h) reads f_{S-1} itself, row-major
    before_last = quantizer.partial_sums(maps[:-1])[-1].permute(0, 2, 3, 1)
    torch.testing.assert_close(inputs[:, -256:], before_last.flatten(1, 2))
    # a prefix of the maps gives the inputs of a prefix of the positions
    torch.testing.assert_close(scale_inputs(maps[:3], quantizer), inputs[:, : 4 + 9 + 16])


def test_tokens_of_a_scale_do_not_change_the_logits_of_that_scale_or_earlier():
    model = randomise(tiny()).eval()
    codebook, labels = torch.randn(8, 2), torch.tensor([0, 2])
    maps = random_maps(2)
    ends = torch.tensor([p * p for p in SMALL]).cumsum(0).tolist()  # 1, 5, 21
    for s in range(len(SMALL)):
        changed = [index.clone() for index in maps]
        changed[s] = (changed[s] + 1) % 8
        with torch.no_grad():
            before = model(scale_inputs(maps, multiscale_quantizer(codebook, SMALL)), labels)
            after = model(scale_inputs(changed, multiscale_quantizer(codebook, SMALL)), labels)
        torch.testing.assert_close(after[:, : ends[s]], before[:, : ends[s]], rtol=0, atol=0)
        assert s == len(SMALL) - 1 or not torch.allclose(after[:, ends[s] :], before[:, ends[s] :])


def test_greedy_samples_are_the_argmax_of_their_own_teacher_forced_logits():
    model = randomise(tiny())
    codebook, labels = torch.randn(8, 2), torch.tensor([0, 1, 2])
    maps = sample(model, multiscale_quantizer(codebook, SMALL), labels, GREEDY, torch.Generator().manual_seed(0))
    assert [tuple(index.shape) for index in maps] == [(3, 1, 1), (3, 2, 2), (3, 4, 4)]
    assert model.training  # sample restores the mode
    with torch.no_grad():
        logits = model.eval()(scale_inputs(maps, multiscale_quantizer(codebook, SMALL)), labels)
    assert torch.equal(logits.argmax(-1), torch.cat([index.flatten(1) for index in maps], dim=1))


def test_key_value_cache_gives_each_scale_the_logits_of_a_full_forward():
    """Sampling's cache (one pass per scale) against the block-causal full forward over every scale at once."""
    model = randomise(tiny()).eval()
    quantizer = multiscale_quantizer(torch.randn(8, 2), SMALL)
    maps, labels = random_maps(2), torch.tensor([1, 2])
    inputs = scale_inputs(maps, quantizer)
    cache = [[] for _ in model.blocks]
    ends = torch.tensor([0, *(p * p for p in SMALL[1:])]).cumsum(0).tolist()  # scale s > 0: rows ends[s-1]:ends[s]
    with torch.no_grad():
        full = model(inputs, labels)
        steps = [model(inputs[:, ends[max(s - 1, 0)] : ends[s]], labels, cache) for s in range(len(SMALL))]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
    assert cache[0][0].shape[2] == tokens(SMALL)


def test_tiny_model_memorises_one_token_pyramid_of_one_class():
    torch.manual_seed(0)
    model = tiny(label_dropout=0.0)
    codebook, labels = torch.randn(8, 2), torch.tensor([1])
    maps = random_maps(1, seed=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        result = training_loss(model, maps, multiscale_quantizer(codebook, SMALL), labels, generator)
        optimizer.zero_grad()
        result.loss.backward()
        optimizer.step()
    assert result.accuracy == 1 and result.scale_losses.shape == (3,)
    drawn = sample(model, multiscale_quantizer(codebook, SMALL), labels, GREEDY, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(drawn, maps, strict=True))


def test_guidance_scale_zero_ignores_the_null_class():
    model = randomise(tiny())
    codebook, labels = torch.randn(8, 2), torch.tensor([0, 1, 2, 0])

    def draw(config):
        maps = sample(model, multiscale_quantizer(codebook, SMALL), labels, config, torch.Generator().manual_seed(5))
        return torch.cat([index.flatten(1) for index in maps], dim=1)

    plain, guided = SamplingConfig(guidance_scale=0.0), SamplingConfig(guidance_scale=3.0, guidance_ramp=False)
    before_plain, before_guided = draw(plain), draw(guided)
    with torch.no_grad():
        model.class_embed[-1].normal_(0, 3.0)  # a different null class
    assert torch.equal(draw(plain), before_plain)
    assert not torch.equal(draw(guided), before_guided)


def test_label_dropout_replaces_labels_by_the_null_class():
    model = tiny(label_dropout=0.5)
    codebook, maps = torch.randn(8, 2), random_maps(64)
    seen = []
    model.forward = lambda inputs, labels: seen.append(labels) or torch.zeros(64, 21, 8)
    training_loss(
        model,
        maps,
        multiscale_quantizer(codebook, SMALL),
        torch.zeros(64, dtype=torch.long),
        torch.Generator().manual_seed(0),
    )
    dropped = (seen[0] == 3).float().mean()
    assert 0.3 < dropped < 0.7 and set(seen[0].tolist()) <= {0, 3}


def test_defaults_follow_vars_scaling_rule():
    config = VARConfig(vocab_size=4096, code_dim=32, num_classes=1000)
    assert (config.depth, config.width, config.heads) == (16, 1024, 16)
    assert config.drop_path == pytest.approx(0.1 * 16 / 24) and config.label_dropout == 0.1
    assert config.scales == VAR_SCALES and config.mlp_ratio == 4 and config.dropout == 0
    assert SamplingConfig() == SamplingConfig(1.0, 900, 0.96, 1.5, True)


@pytest.mark.parametrize(
    "changes",
    [
        {"width": 30, "heads": 4},
        {"vocab_size": 0},
        {"depth": 2.0},
        {"scales": (2, 1)},
        {"label_dropout": 1.0},
        {"drop_path": -0.1},
        {"mlp_ratio": 0},
    ],
)
def test_invalid_model_configurations_fail(changes):
    settings = dict(vocab_size=8, code_dim=2, num_classes=3, scales=SMALL, depth=2, width=32)
    with pytest.raises(ConfigError):
        VARConfig(**{**settings, **changes})


@pytest.mark.parametrize(
    "changes", [{"temperature": 0}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}, {"guidance_scale": -1.0}]
)
def test_invalid_sampling_configurations_fail(changes):
    with pytest.raises(ConfigError):
        dataclasses.replace(SamplingConfig(), **changes)


def test_mismatched_codebooks_maps_and_inputs_fail():
    model = tiny()
    generator, labels = torch.Generator(), torch.tensor([0])
    with pytest.raises(ConfigError):
        sample(model, multiscale_quantizer(torch.randn(8, 3), SMALL), labels, GREEDY, generator)  # d 3 != code_dim 2
    with pytest.raises(ConfigError):
        sample(model, multiscale_quantizer(torch.randn(8, 2), (1, 4)), labels, GREEDY, generator)  # other scales
    with pytest.raises(ConfigError):
        quantizer = multiscale_quantizer(torch.randn(8, 2), SMALL)
        training_loss(model, random_maps(1)[:2], quantizer, labels, generator)  # a scale missing
    with pytest.raises(ConfigError):
        scale_inputs([torch.zeros(1, 2, 2, dtype=torch.long)], multiscale_quantizer(torch.randn(8, 2), SMALL))  # 2 x 2
    with pytest.raises(ConfigError):
        model(torch.randn(1, 21, 2), labels)  # longer than L - 1 = 20


def test_inputs_of_scale_two_are_the_first_code_map_upsampled_then_area_downsampled():
    codebook = torch.randn(8, 2)
    maps = random_maps(1)
    inputs = scale_inputs(maps[:1], multiscale_quantizer(codebook, SMALL))
    up = F.interpolate(codebook[maps[0]].permute(0, 3, 1, 2), size=(4, 4), mode="bicubic")
    expected = F.interpolate(up, size=(2, 2), mode="area").flatten(2).transpose(1, 2)
    torch.testing.assert_close(inputs, expected)
