"""The one categorical sampler of the generators (models/sampling.py) and VAR's top-k / top-p filter around it."""

import torch

from replicate.models.sampling import categorical, draw
from replicate.models.var import SamplingConfig


def test_categorical_draws_each_index_with_its_softmax_probability():
    logits = torch.tensor([0.0, 1.0, 2.0, -1.0, -30.0])
    draws = categorical(logits.expand(400_000, 5), torch.Generator().manual_seed(0))
    frequency = torch.bincount(draws, minlength=5) / len(draws)
    expected = logits.softmax(-1)
    standard_error = (expected * (1 - expected) / len(draws)).sqrt()
    assert ((frequency - expected).abs() <= 5 * standard_error + 1e-6).all(), (frequency, expected)


def test_categorical_never_draws_a_minus_infinity_logit_at_either_end_of_the_row():
    logits = torch.tensor([[-torch.inf, 0.0, -torch.inf, 0.0, -torch.inf]]).expand(50_000, 5)
    draws = categorical(logits, torch.Generator().manual_seed(1))
    assert set(draws.unique().tolist()) == {1, 3}


def test_categorical_is_reproducible_from_the_generator_and_keeps_the_leading_shape():
    logits = torch.randn(3, 7, 11)
    first = categorical(logits, torch.Generator().manual_seed(5))
    assert first.shape == (3, 7) and torch.equal(first, categorical(logits, torch.Generator().manual_seed(5)))


def test_var_top_k_and_top_p_draw_only_from_the_nucleus_of_the_k_largest():
    """Logits 4, 3, 2, 1, 0 (softmax 0.64, 0.24, 0.09, ...): top-k 3 keeps the first three; top-p 0.8 then keeps
    the first two (0.64 < 0.8, 0.88 >= 0.8); the rest are never drawn."""
    logits = torch.tensor([0.0, 2.0, 4.0, 1.0, 3.0]).expand(1, 20_000, 5)
    config = SamplingConfig(top_k=3, top_p=0.8, guidance_scale=0.0)
    draws = draw(logits, config, torch.Generator().manual_seed(2))
    frequency = torch.bincount(draws.flatten(), minlength=5) / draws.numel()
    assert set(draws.unique().tolist()) == {2, 4}
    assert abs(float(frequency[2]) - 1 / (1 + torch.e**-1)) < 0.02  # renormalised over the two kept
