"""MaskGIT on tiny grids: the cosine schedule and the training mask, a loss blind to unmasked positions, the decoding
schedule, memorisation of fixed grids, classifier-free guidance and configuration checks."""

import math

import pytest
import torch

from replicate.errors import ConfigError
from replicate.models.maskgit import (
    MaskGIT,
    MaskGITConfig,
    SamplingConfig,
    mask_ratio,
    masked_after_steps,
    random_mask,
    sample,
    training_loss,
)


def tiny(**overrides) -> MaskGITConfig:
    """A model of a few thousand parameters; no dropout, so that forward passes are deterministic."""
    settings = dict(vocab_size=8, grid=4, num_classes=2, depth=2, width=32, heads=2, dropout=0.0, label_dropout=0.1)
    return MaskGITConfig(**{**settings, **overrides})


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_cosine_schedule_falls_from_one_to_zero_monotonically():
    assert mask_ratio(0.0) == 1.0
    assert abs(mask_ratio(1.0)) < 1e-12
    ratios = mask_ratio(torch.linspace(0, 1, 101))
    assert torch.all(ratios[1:] < ratios[:-1])
    assert ratios[0] == 1 and abs(ratios[-1]) < 1e-6


def test_random_mask_hides_ceil_of_ratio_times_n_positions_within_1_to_n():
    tokens = torch.zeros(64, 16, dtype=torch.long)
    mask = random_mask(tokens, seeded(3))
    u = torch.rand(64, generator=seeded(3))  # random_mask draws u first
    expected = torch.ceil(torch.cos(math.pi / 2 * u) * 16).clamp(1, 16)
    counts = mask.sum(1)
    assert torch.equal(counts, expected.long())
    assert counts.min() >= 1 and counts.max() <= 16
    assert counts.unique().numel() > 5  # the ratio varies from sample to sample


class NoisyAtUnmasked(MaskGIT):
    """MaskGIT whose logits are scrambled wherever the input token is not [MASK]."""

    def forward(self, tokens, labels, at=None):
        logits = super().forward(tokens, labels)
        logits = logits + 100 * torch.randn_like(logits) * (tokens != self.mask_id)[..., None]
        return logits if at is None else logits[at]


class NoisyAtMasked(MaskGIT):
    def forward(self, tokens, labels, at=None):
        logits = super().forward(tokens, labels)
        logits = logits + 100 * torch.randn_like(logits) * (tokens == self.mask_id)[..., None]
        return logits if at is None else logits[at]


def test_logits_at_chosen_positions_are_those_rows_of_the_full_logits():
    model = MaskGIT(tiny()).eval()
    tokens, labels = torch.randint(0, 8, (4, 16)), torch.randint(0, 2, (4,))
    at = torch.rand(4, 16, generator=seeded(3)) < 0.5
    assert torch.allclose(model(tokens, labels, at), model(tokens, labels)[at], atol=1e-6)


def test_loss_ignores_logits_at_unmasked_positions():
    model = MaskGIT(tiny())
    tokens, labels = torch.randint(0, 8, (32, 16)), torch.randint(0, 2, (32,))
    reference = training_loss(model, tokens, labels, seeded(5))
    noisy_unmasked, noisy_masked = NoisyAtUnmasked(tiny()), NoisyAtMasked(tiny())
    noisy_unmasked.load_state_dict(model.state_dict())
    noisy_masked.load_state_dict(model.state_dict())
    assert (~reference.mask).any()
    assert torch.allclose(training_loss(noisy_unmasked, tokens, labels, seeded(5)).loss, reference.loss)
    assert not torch.allclose(training_loss(noisy_masked, tokens, labels, seeded(5)).loss, reference.loss)


def test_sampler_follows_the_cosine_schedule_and_fills_every_position():
    model = MaskGIT(tiny())
    masked, grids = [], []

    def record(step, tokens):
        masked.append((tokens == model.mask_id).sum(1))
        grids.append(tokens)

    out = sample(model, torch.tensor([0, 1, 0]), SamplingConfig(steps=8), seeded(0), on_step=record)
    # N = 16, T = 8: floor(16 cos(pi/2 (t+1)/8)) for t = 0..6, then none left
    expected = [math.floor(16 * math.cos(math.pi / 2 * (t + 1) / 8)) for t in range(7)] + [0]
    assert expected == [15, 14, 13, 11, 8, 6, 3, 0] == masked_after_steps(16, 8)
    assert [m.tolist() for m in masked] == [[e] * 3 for e in expected]
    for before, after in zip(grids[:-1], grids[1:], strict=True):
        fixed = before != model.mask_id
        assert torch.equal(after[fixed], before[fixed])  # fixed tokens stay fixed
    assert torch.equal(out, grids[-1]) and out.min() >= 0 and out.max() < 8
    assert model.training  # the mode is restored


def test_schedule_fixes_at_least_one_token_per_step_when_steps_exceed_tokens():
    counts = masked_after_steps(4, 6)
    assert counts[-1] == 0 and all(c >= 1 for c in counts[:-1])
    assert all(b < a or b == 1 for a, b in zip([4, *counts[:-2]], counts[:-1], strict=True))


def test_tiny_model_memorises_one_grid_per_class_and_samples_it_back():
    torch.manual_seed(0)
    config = tiny(grid=3, label_dropout=0.0, label_smoothing=0.0)
    model = MaskGIT(config)
    grids = torch.randint(0, 8, (2, 9), generator=seeded(1))
    labels = torch.arange(2).repeat(16)  # 32 images: the two classes alternately
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = seeded(2)
    for _ in range(300):
        loss = training_loss(model, grids[labels], labels, generator).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    # greedy tokens, confidence ranking still noisy (choice_temperature 4.5): any order must give the grid back
    out = sample(model, torch.tensor([0, 1, 1, 0]), SamplingConfig(temperature=0.0), seeded(3))
    assert torch.equal(out, grids[torch.tensor([0, 1, 1, 0])])


def test_guidance_scale_zero_is_plain_conditional_sampling():
    model = MaskGIT(tiny())
    labels = torch.tensor([0, 1, 1, 0])
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[1].clone()))
    guided = sample(model, labels, SamplingConfig(guidance_scale=0.0), seeded(4))
    assert all(torch.equal(s, labels) for s in seen)  # the null class is never asked
    plain = sample(model, labels, SamplingConfig(), seeded(4))
    assert torch.equal(guided, plain)
    assert not torch.equal(guided, sample(model, labels, SamplingConfig(), seeded(5)))


def test_guidance_is_a_no_op_when_the_null_class_embeds_like_the_class():
    model = MaskGIT(tiny(num_classes=1))
    with torch.no_grad():
        model.class_embed.weight[model.null_class] = model.class_embed.weight[0]
    labels = torch.zeros(4, dtype=torch.long)
    guided = sample(model, labels, SamplingConfig(guidance_scale=3.0), seeded(6))
    assert torch.equal(guided, sample(model, labels, SamplingConfig(), seeded(6)))


def test_top_k_one_samples_the_argmax_whatever_the_seed():
    model = MaskGIT(tiny()).eval()
    labels = torch.tensor([0, 1])
    one_step = SamplingConfig(steps=1, top_k=1)  # a single step fixes every position at once
    argmax = model(torch.full((2, 16), model.mask_id), labels).argmax(-1)
    assert torch.equal(sample(model, labels, one_step, seeded(7)), argmax)
    assert torch.equal(sample(model, labels, one_step, seeded(8)), argmax)
    assert torch.equal(sample(model, labels, SamplingConfig(steps=1, temperature=0.0), seeded(9)), argmax)


@pytest.mark.parametrize(
    "overrides",
    [
        {"vocab_size": 0},
        {"grid": 0},
        {"num_classes": 0},
        {"depth": 0},
        {"width": 30, "heads": 4},  # not a multiple
        {"mlp_ratio": 0.0},
        {"dropout": 1.0},
        {"label_dropout": -0.1},
        {"label_smoothing": 1.5},
    ],
)
def test_invalid_model_configuration_fails(overrides):
    with pytest.raises(ConfigError):
        tiny(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [{"steps": 0}, {"temperature": -1.0}, {"choice_temperature": -0.5}, {"guidance_scale": -1.0}, {"top_k": 0}],
)
def test_invalid_sampling_configuration_fails(overrides):
    with pytest.raises(ConfigError):
        SamplingConfig(**overrides)


def test_wrong_grid_size_fails_in_one_line():
    model = MaskGIT(tiny())
    with pytest.raises(ConfigError, match=r"tokens \(B, 16\)"):
        model(torch.zeros(2, 9, dtype=torch.long), torch.zeros(2, dtype=torch.long))
