"""The tokenizer pipeline with the VQGAN terms and multi-scale quantization, at smoke scale on generated images: the
discriminator trains from its start epoch and resumes with the run, a perceptual weight without the VGG16 weights
stops the run, a multi-scale tokenizer counts every scale's tokens, and AdamW without decay is Adam."""

import dataclasses

import pandas as pd
import pytest
import torch
from conftest import two_rank_parameters

from replicate import distributed
from replicate.cli import main
from replicate.configs import VQVAE_OPTIMISATION, GANLoss, TokenizerTraining, VQVAEConfig, smoke_scale, with_changes
from replicate.errors import ConfigError, MissingDataError
from replicate.quantize.multiscale import VAR_SCALES, tokens
from replicate.train import checkpoint
from replicate.train.gan import build_objective
from replicate.train.tokenizer import build_model, train_tokenizer

METRICS = ["psnr", "ssim", "rec_mse", "utilization", "perplexity", "train_loss"]


def smoke_vqgan(**changes) -> TokenizerTraining:
    """A VQGAN at smoke scale whose discriminator starts in epoch 2 of 2 (no perceptual term: no VGG16 here)."""
    config = TokenizerTraining(
        "shapes",
        "wasserstein",
        64,
        VQVAEConfig(32),
        optim=dataclasses.replace(VQVAE_OPTIMISATION, lr=5e-4, weight_decay=0.01),
        gan=GANLoss(reconstruction_loss="l1", perceptual_weight=0.0, disc_weight=0.2, disc_start_epoch=2),
    )
    return with_changes(smoke_scale(config, epochs=2), changes)


class _Stop(Exception):
    pass


def test_discriminator_trains_from_its_start_epoch_and_resumes_with_the_run(tmp_path, monkeypatch):
    config = smoke_vqgan()
    history = train_tokenizer(config, tmp_path / "a", progress=False)
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    assert state["adversary"]["optimizer"]["state"]  # the discriminator's AdamW stepped
    # stop the second run at the end of epoch 1 (before the discriminator starts), then resume it
    saved = checkpoint.RunState.save

    def save_then_stop(self, *args) -> None:
        saved(self, *args)
        if self.epoch == 1 and self.step == 0:
            raise _Stop

    monkeypatch.setattr(checkpoint.RunState, "save", save_then_stop)
    with pytest.raises(_Stop):
        train_tokenizer(config, tmp_path / "b", progress=False)
    monkeypatch.setattr(checkpoint.RunState, "save", saved)
    resumed = train_tokenizer(config, tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(history[METRICS], resumed[METRICS], rtol=1e-6)


def test_discriminator_step_before_its_start_only_decays_its_weights():
    """Official: the discriminator's AdamW steps with a zero-weighted loss before the start epoch, so its weights
    shrink by (1 - lr * weight_decay) and nothing else."""
    objective = build_objective(smoke_vqgan(), distributed.setup("cpu"))
    adversary = objective.adversary
    before = {name: p.detach().clone() for name, p in adversary.module.named_parameters()}
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    loss = adversary.step(images, images.flip(0), epoch=1, lr=1e-3)
    assert loss == 0.0
    for name, p in adversary.module.named_parameters():
        torch.testing.assert_close(p.detach(), before[name] * (1 - 1e-3 * 0.01), rtol=0, atol=1e-7)
    adversary.step(images, images.flip(0), epoch=2, lr=1e-3)  # started: the hinge terms move it
    moved = [name for name, p in adversary.module.named_parameters() if not torch.allclose(p, before[name], atol=1e-5)]
    assert moved


def test_perceptual_weight_without_vgg16_weights_stops_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("VQ_VGG16_WEIGHTS", str(tmp_path / "absent.pth"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(MissingDataError, match="VGG16 ImageNet weights"):
        build_objective(smoke_vqgan(**{"gan.perceptual_weight": 1.0}), distributed.setup("cpu"))


def test_multiscale_tokenizer_quantizes_every_scale_and_reports_usage_over_all_tokens(tmp_path):
    config = dataclasses.replace(smoke_vqgan(), scales=VAR_SCALES, epochs=1)  # 32 px, (1, 2) -> 16 x 16 latents
    model = build_model(config)
    out = model(torch.rand(2, 3, 32, 32) * 2 - 1).quantizer
    assert out.indices.shape == (2 * tokens(VAR_SCALES),) and len(out.scale_indices) == len(VAR_SCALES)
    history = train_tokenizer(config, tmp_path, progress=False)
    assert 0 < history["utilization"].iloc[-1] <= 1 and history["perplexity"].iloc[-1] > 1
    with pytest.raises(ConfigError, match="latent side"):
        dataclasses.replace(config, scales=(1, 2, 4, 8))


def test_adamw_without_weight_decay_makes_the_updates_of_adam():
    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(5, 3)) for _ in range(2)]
    optimizers = [
        torch.optim.Adam([weights[0]], lr=1e-2, betas=(0.9, 0.95)),
        torch.optim.AdamW([weights[1]], lr=1e-2, betas=(0.9, 0.95), weight_decay=0.0),
    ]
    with torch.no_grad():
        weights[1].copy_(weights[0])
    for step in range(5):
        gradient = torch.randn(5, 3, generator=torch.Generator().manual_seed(step))
        for weight, optimizer in zip(weights, optimizers, strict=True):
            weight.grad = gradient.clone()
            optimizer.step()
    assert torch.equal(weights[0], weights[1])


TORCHRUN_SCRIPT = """
import dataclasses, sys, torch
from pathlib import Path
from replicate import distributed
from replicate.configs import with_changes
from replicate.experiments.wvq_table3 import configs
from replicate.train import tokenizer
out = Path(sys.argv[1])
config = with_changes(configs('smoke')[1], {'epochs': 1, 'gan.disc_start_epoch': 1})  # multi-scale, D on from the start
captured = {}
build = tokenizer.build_objective
def capture(*args):
    captured['objective'] = build(*args)
    return captured['objective']
tokenizer.build_objective = capture
original = tokenizer.VQVAE
class Capturing(original):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        captured['model'] = self
tokenizer.VQVAE = Capturing
tokenizer.train_tokenizer(config, out / 'run', progress=False)
parameters = {'model.' + n: p.detach() for n, p in captured['model'].named_parameters()}
parameters |= {'disc.' + n: p.detach() for n, p in captured['objective'].adversary.module.named_parameters()}
torch.save(parameters, out / f'rank{distributed.rank()}.pt')
distributed.teardown()
"""


def test_vqgan_trains_under_two_process_torchrun_with_identical_ranks(tmp_path):
    first, second = two_rank_parameters(TORCHRUN_SCRIPT, tmp_path)
    assert first.keys() == second.keys() and any(name.startswith("disc.") for name in first)
    assert [name for name in first if not torch.equal(first[name], second[name])] == []


def test_paper_scale_without_vgg16_weights_ends_with_one_line_naming_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VQ_VGG16_WEIGHTS", str(tmp_path / "absent.pth"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    # images that exist (generated shapes at the paper's 256 px), so that the weights are what is missing
    code = main(["run", "wvq_table3", "--scale", "paper", "--set", "dataset=shapes", "--out", str(tmp_path)])
    out = capsys.readouterr()
    assert code == 2 and "VGG16 ImageNet weights" in out.out and "Traceback" not in out.err
