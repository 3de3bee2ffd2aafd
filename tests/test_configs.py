"""The run configurations (replicate/configs.py): the one learning-rate function against hand values for every
schedule, the one "no clipping" convention, parts composed into rows and ids, dotted changes."""

import math
from types import SimpleNamespace

import pytest
import torch

from replicate.configs import (
    VQVAE_OPTIMISATION,
    GeneratorTraining,
    Optimisation,
    SyntheticTraining,
    TokenizerTraining,
    VQVAEConfig,
    clip_gradients,
    learning_rate,
    smoke_scale,
    with_changes,
)
from replicate.errors import ConfigError
from replicate.results import config_id, configuration_fields


def rates(optim: Optimisation, steps) -> list[float]:
    return [learning_rate(optim, step) for step in steps]


def test_constant_schedule_ignores_its_warmup_and_decay():
    # the official VQ-VAE: warmup_iters 5000 is written in the configuration but unused under "constant"
    assert rates(VQVAE_OPTIMISATION, [0, 1, 4999, 5000, 10**6]) == [5e-5] * 5


def test_warmup_schedule_ramps_linearly_then_stays_constant():
    optim = Optimisation(0.1, lr_schedule="warmup", warmup_iters=4)
    assert rates(optim, range(6)) == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    assert rates(Optimisation(0.1, lr_schedule="warmup"), [0, 7]) == [0.1, 0.1]  # no warm-up: constant


def test_cosine_schedule_warms_up_then_falls_by_half_a_cosine_to_its_floor():
    optim = Optimisation(1.0, lr_schedule="cosine", warmup_iters=2, decay_iters=6, min_lr_ratio=0.2)
    expected = [0.5, 1.0, 1.0, 0.2 + 0.4 * (1 + math.cos(math.pi / 4)), 0.6, 0.2 + 0.4 * (1 - math.cos(math.pi / 4))]
    assert rates(optim, range(6)) == pytest.approx(expected)
    assert rates(optim, [6, 7, 1000]) == pytest.approx([0.2, 0.2, 0.2])


def test_a_cosine_schedule_needs_its_decay_after_its_warmup():
    with pytest.raises(ConfigError, match="decay_iters"):
        Optimisation(1.0, lr_schedule="cosine", warmup_iters=10, decay_iters=10)
    with pytest.raises(ConfigError, match="lr_schedule"):
        Optimisation(1.0, lr_schedule="step")


def test_none_is_the_one_way_to_say_no_clipping():
    with pytest.raises(ConfigError, match="None for no clipping"):
        Optimisation(1.0, grad_clip=0.0)
    weights = [torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(9))]
    optimizer = SimpleNamespace(param_groups=[{"params": [weights[0]]}, {"params": [weights[1]]}])  # two groups
    for weight in weights:
        weight.grad = torch.full_like(weight, 3.0)  # norms 6 and 9
    clip_gradients(optimizer, None)
    assert [float(w.grad.norm()) for w in weights] == pytest.approx([6.0, 9.0])
    clip_gradients(optimizer, 1.0)  # each group to norm 1, separately
    assert [float(w.grad.norm()) for w in weights] == pytest.approx([1.0, 1.0])


def test_model_layout_defaults_to_table5_for_its_resolution():
    assert (VQVAEConfig(32).channel_mult, VQVAEConfig(32).attn_resolutions) == ((1, 1, 2), ())
    assert (VQVAEConfig(256).channel_mult, VQVAEConfig(256).attn_resolutions) == ((1, 1, 2, 2, 4), (16,))
    assert VQVAEConfig(256).latent_resolution == 16


def test_a_parts_fields_are_columns_under_their_own_names():
    tokenizer = TokenizerTraining("cifar10", "vanilla", 16, VQVAEConfig(32))
    columns = configuration_fields(tokenizer)
    assert {"resolution", "d", "channels", "lr", "grad_clip", "warmup_iters", "disc_weight"} <= columns.keys()
    assert columns["perceptual_dropout"] is True  # an estimator setting that no row showed before
    assert "model" not in columns and "optim" not in columns and "gan" not in columns
    assert "perceptual_dropout=True" in config_id(tokenizer)
    generator = GeneratorTraining(
        smoke_scale(tokenizer), "maskgit", 1, 32, 2, 1, 16, Optimisation(1e-3, lr_schedule="warmup", warmup_iters=2)
    )
    columns = configuration_fields(generator)
    assert (columns["tokenizer_lr"], columns["lr"], columns["warmup_iters"]) == (5e-5, 1e-3, 2)
    assert columns["tokenizer_channels"] == 32 and columns["tokenizer_perceptual_dropout"] is True


def test_synthetic_rows_name_their_optimisation_too():
    columns = configuration_fields(SyntheticTraining(2, "early"))
    assert (columns["lr"], columns["grad_clip"], columns["lr_schedule"]) == (1e-3, None, "constant")
    assert columns["warmup_steps"] == 0  # the quantization warm-up, not the learning rate's (warmup_iters)


def test_dotted_changes_reach_a_parts_field_and_unknown_names_fail():
    tokenizer = TokenizerTraining("cifar10", "vanilla", 16, VQVAEConfig(32))
    changed = with_changes(tokenizer, {"optim.lr": 1e-3, "model.channels": 32, "gan.perceptual_dropout": False})
    assert (changed.optim.lr, changed.model.channels, changed.gan.perceptual_dropout) == (1e-3, 32, False)
    assert changed.optim.adam_betas == tokenizer.optim.adam_betas  # the rest of the part kept
    assert config_id(changed) != config_id(tokenizer)
    with pytest.raises(ConfigError, match="unknown configuration field"):
        with_changes(tokenizer, {"optim.learning_rate": 1.0})
    with pytest.raises(ConfigError, match="not a configuration"):
        with_changes(tokenizer, {"K.size": 1})
