"""The raster-order autoregressive prior (models/autoregressive.py): causal, memorises and samples back a grid per
class, KV-cache sampling equals full recomputation, guidance at scale 1 is the conditional model, and it trains and
samples through the project's generator loop."""

import dataclasses

import pytest
import torch

from replicate.configs import (
    AutoregressiveConfig,
    GeneratorTraining,
    Optimisation,
    TokenizerTraining,
    VQVAEConfig,
    smoke_scale,
)
from replicate.configs import AutoregressiveSampling as SamplingConfig
from replicate.errors import ConfigError
from replicate.models.autoregressive import Autoregressive, guided_logits, sample, training_loss
from replicate.train import generator
from replicate.train.generator import GeneratorFolders, TokenSet, generate, train_generator
from replicate.train.tokenizer import build_model


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: two threads on a shared two-core machine cost 10x in synchronisation (2026-12, 0.28 s vs 0.02 s
    a training step of `tiny`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**changes) -> AutoregressiveConfig:
    settings = dict(vocab_size=8, grid=4, num_classes=2, depth=2, width=32, heads=2, ffn_multiple_of=16)
    return AutoregressiveConfig(**{**settings, **changes})


def untrained(config: AutoregressiveConfig) -> Autoregressive:
    """A model in eval mode whose output head is not at its zero initialisation (else every logit is 0)."""
    model = Autoregressive(config).eval()
    torch.nn.init.normal_(model.head.weight, std=1.0)
    return model


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_changing_token_t_never_changes_the_logits_at_positions_up_to_t():
    model = untrained(tiny())
    n = model.config.tokens
    tokens = torch.randint(0, 8, (3, n), generator=seeded(0))
    labels = torch.tensor([0, 1, 2])  # 2: the null class
    with torch.no_grad():
        before = model(tokens, labels)
        for t in range(n):
            changed = tokens.clone()
            changed[:, t] = (changed[:, t] + 1) % 8
            after = model(changed, labels)
            torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], rtol=0, atol=1e-6)
            if t + 1 < n:  # the next position does read token t
                assert (after[:, t + 1] - before[:, t + 1]).abs().max() > 1e-3
        assert (model(tokens, torch.tensor([1, 0, 0]))[:, 0] - before[:, 0]).abs().min() > 1e-3  # the class: all


def test_tiny_model_memorises_one_grid_per_class_and_samples_it_back_greedily():
    torch.manual_seed(0)
    model = Autoregressive(tiny(grid=3, dropout=0.0, label_dropout=0.0))
    grids = torch.randint(0, 8, (2, 9), generator=seeded(1))
    labels = torch.arange(2).repeat(16)  # 32 images: the two classes alternately
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = training_loss(model, grids[labels], labels, seeded(2)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    asked = torch.tensor([0, 1, 1, 0])
    greedy = SamplingConfig(temperature=0.0, guidance_scale=1.0)
    assert torch.equal(sample(model, asked, greedy, seeded(3)), grids[asked])
    top_1 = SamplingConfig(top_k=1, guidance_scale=1.0)
    assert torch.equal(sample(model, asked, top_1, seeded(4)), grids[asked])


@pytest.mark.parametrize(
    "sampling",
    [SamplingConfig(), SamplingConfig(top_k=4, top_p=0.9, temperature=1.3, guidance_scale=1.0)],
    ids=["guided", "top-k-top-p"],
)
def test_kv_cache_sampling_equals_sampling_by_full_recomputation(sampling):
    model = untrained(tiny())
    labels = torch.tensor([0, 1, 1, 0, 2])
    cached = sample(model, labels, sampling, seeded(5))
    assert torch.equal(cached, sample(model, labels, sampling, seeded(5), cache=False))
    assert not torch.equal(cached, sample(model, labels, sampling, seeded(6)))  # the draws are random
    with torch.no_grad():
        full = model(cached, labels)
        kv = model.new_cache(len(labels))
        steps = [model.start(labels, kv)] + [model.advance(cached[:, i - 1], kv) for i in range(1, cached.shape[1])]
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=0, atol=1e-5)


def test_guidance_at_scale_one_equals_the_conditional_logits():
    model = untrained(tiny())
    tokens, labels = torch.randint(0, 8, (4, 16), generator=seeded(7)), torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        conditional = model(tokens, labels)
        torch.testing.assert_close(guided_logits(model, tokens, labels, 1.0), conditional, rtol=0, atol=1e-5)
        assert (guided_logits(model, tokens, labels, 2.0) - conditional).abs().max() > 1e-3  # the null class differs
    seen = []
    model.class_embed.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    sample(model, labels, SamplingConfig(guidance_scale=1.0), seeded(8))
    assert seen and all(not (s == model.null_class).any() for s in seen)  # the null class is never run


def test_label_dropout_turns_labels_into_the_null_class_during_training_only():
    model = Autoregressive(tiny(label_dropout=0.5))
    seen = []
    model.class_embed.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    tokens = torch.randint(0, 8, (64, 16), generator=seeded(9))
    training_loss(model, tokens, torch.zeros(64, dtype=torch.long), seeded(10))
    assert 10 < (seen[0] == model.null_class).sum() < 54


@pytest.mark.parametrize(
    "overrides",
    [{"vocab_size": 0}, {"grid": 0}, {"width": 36, "heads": 2}, {"dropout": 1.0}, {"label_dropout": -0.1}],
)
def test_invalid_model_configuration_fails(overrides):
    with pytest.raises(ConfigError):
        tiny(**overrides)


@pytest.mark.parametrize("overrides", [{"temperature": -1.0}, {"top_k": 0}, {"top_p": 0.0}, {"guidance_scale": -1.0}])
def test_invalid_sampling_configuration_fails(overrides):
    with pytest.raises(ConfigError):
        SamplingConfig(**overrides)


def test_a_longer_grid_than_the_model_fails_in_one_line():
    model = Autoregressive(tiny())
    with pytest.raises(ConfigError, match=r"tokens \(B, <= 16\)"):
        model(torch.zeros(2, 17, dtype=torch.long), torch.zeros(2, dtype=torch.long))


TOKENIZER = smoke_scale(TokenizerTraining("shapes", "wasserstein", 16, VQVAEConfig(32)))


def loop_config(**changes) -> GeneratorTraining:
    settings = dict(
        tokenizer=TOKENIZER,
        generator="autoregressive",
        depth=1,
        width=32,
        heads=2,
        epochs=2,
        batch_size=16,
        optim=Optimisation(3e-3, (0.9, 0.95), grad_clip=1.0, lr_schedule="warmup", warmup_iters=2),
        sampling=(("guidance_scale", 1.5), ("top_k", 8)),
    )
    return GeneratorTraining(**{**settings, **changes})


def test_the_generator_loop_trains_and_samples_it_on_a_single_scale_tokenizer_only(tmp_path, monkeypatch):
    """Smoke scale, no tokenizer training: the token set is given, the tokenizer that decodes is untrained."""
    config = loop_config()
    n = TOKENIZER.model.latent_resolution**2
    grids = torch.randint(0, TOKENIZER.K, (3, n), generator=seeded(11))
    labels = torch.arange(32) % 3
    data = TokenSet(grids[labels], labels, 3, ["a", "b", "c"])
    monkeypatch.setattr(generator, "extract_tokens", lambda *args: data)
    monkeypatch.setattr(generator, "load_trained", lambda tokenizer, folder: build_model(tokenizer))
    folders = GeneratorFolders(generator=tmp_path / "generator", tokenizer=tmp_path / "tokenizer", proxy=None)
    history = train_generator(config, folders, device="cpu", progress=False)
    assert list(history["epoch"]) == [1, 2] and history["train_loss"].iloc[1] < history["train_loss"].iloc[0]
    out = generate(config, folders, torch.tensor([0, 1, 2]), "cpu")
    assert out.tokens.shape == (3, n) and 0 <= out.tokens.min() and out.tokens.max() < TOKENIZER.K
    assert out.images.shape == (3, 3, 32, 32) and out.images.abs().max() <= 1
    assert torch.equal(generate(config, folders, torch.tensor([0, 1, 2]), "cpu").tokens, out.tokens)
    with pytest.raises(ConfigError, match="single-scale"):
        loop_config(tokenizer=dataclasses.replace(TOKENIZER, scales=(1, 2, 4, 8, 16)))
    with pytest.raises(ConfigError, match="unknown autoregressive sampling field 'steps'"):
        loop_config(sampling=(("steps", 4),))
