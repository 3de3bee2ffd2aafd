"""One generator update (train/generator.train_step): a step whose gradient is not finite leaves every parameter
and the optimizer state as they were, as the references' gradient scaler does."""

import torch

from replicate import distributed
from replicate.registry import EXPERIMENTS
from replicate.train import generator


def test_a_non_finite_gradient_skips_the_update(monkeypatch):
    config = EXPERIMENTS["wvq_generation"].configs("smoke")[0]
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.05)
    before = [p.detach().clone() for p in model.parameters()]
    scale = {"value": float("nan")}

    def loss_of(config, wrapped, tokens, labels, quantizer, rng):
        return (wrapped.weight.sum() + wrapped.bias.sum()) * scale["value"], torch.tensor(0.0)

    monkeypatch.setattr(generator, "batch_loss", loss_of)
    context = distributed.setup("cpu")
    generator.train_step(config, model, optimizer, None, None, None, 0, context)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert optimizer.state_dict()["state"] == {}  # no step was taken
    scale["value"] = 1.0
    generator.train_step(config, model, optimizer, None, None, None, 1, context)
    assert not torch.equal(before[0], model.weight)
