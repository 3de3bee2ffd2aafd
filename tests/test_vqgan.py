"""VQGAN building blocks: hinge losses against hand computations, the discriminator's schedule, shape, size and
init, and the VGG16 LPIPS loader without weights and with a random local trunk."""

import dataclasses
import types
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from replicate.errors import ConfigError
from replicate.models.discriminator import PatchGANConfig, PatchGANDiscriminator
from replicate.train.gan import (
    VGG16_FILE,
    VGG16_WEIGHTS_ENV,
    GANLoss,
    discriminator_weight,
    generator_adversarial_loss,
    generator_loss,
    hinge_discriminator_loss,
    load_vgg_lpips,
    perceptual_distance,
)

REAL = torch.tensor([0.5, -1.0, 2.0, 0.0]).view(1, 1, 2, 2)  # relu(1 - D(x)) = 0.5, 2, 0, 1: mean 0.875
FAKE = torch.tensor([-2.0, 0.5, 1.0, -0.5]).view(1, 1, 2, 2)  # relu(1 + D(x_rec)) = 0, 1.5, 2, 0.5: mean 1.0


def test_hinge_losses_match_hand_computed_values():
    assert generator_adversarial_loss(FAKE).item() == pytest.approx(0.25)  # -(-2 + 0.5 + 1 - 0.5) / 4
    # official: (0.5 * rate_d) * 0.5 * (0.875 + 1.0) = 0.1 * 0.9375
    assert hinge_discriminator_loss(REAL, FAKE, disc_weight=0.2).item() == pytest.approx(0.09375)
    assert hinge_discriminator_loss(REAL, FAKE, disc_weight=0.0).item() == 0.0


def test_discriminator_weight_is_zero_before_epoch_60_and_0_2_from_it():
    config = GANLoss()
    assert [discriminator_weight(config, epoch) for epoch in (1, 59, 60, 200)] == [0.0, 0.0, 0.2, 0.2]
    with pytest.raises(ConfigError):
        GANLoss(disc_start_epoch=0)
    with pytest.raises(ConfigError):
        GANLoss(reconstruction_loss="l2")


def test_generator_loss_adds_l1_quantizer_and_weighted_adversarial_terms():
    config = GANLoss(perceptual_weight=0.0)
    images, reconstructions = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    quantizer_loss = torch.tensor(0.3)
    before = generator_loss(config, 59, images, reconstructions, quantizer_loss, FAKE, None)
    after = generator_loss(config, 60, images, reconstructions, quantizer_loss, FAKE, None)
    assert before.total.item() == pytest.approx(0.5 + 0.3)
    assert after.total.item() == pytest.approx(0.5 + 0.3 + 0.2 * 0.25)
    assert (after.reconstruction.item(), after.perceptual.item(), after.disc_weight) == (0.5, 0.0, 0.2)
    with pytest.raises(ConfigError, match="load_vgg_lpips"):
        generator_loss(GANLoss(), 60, images, reconstructions, quantizer_loss, FAKE, None)


@pytest.mark.parametrize(("size", "patches"), [(32, 2), (256, 30)])
def test_patchgan_gives_a_patch_map_of_logits(size, patches):
    # 4 x 4 convs, padding 1: stride 2 halves three times, then each stride-1 conv takes one pixel off
    with torch.no_grad():
        logits = PatchGANDiscriminator().eval()(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 1, patches, patches)


def test_patchgan_has_the_official_parameter_count():
    # conv 3->64 (bias): 3*64*16 + 64 = 3,136; conv 64->128: 131,072 + BN 256; conv 128->256: 524,288 + BN 512;
    # conv 256->512 (stride 1): 2,097,152 + BN 1,024; conv 512->1 (bias): 8,192 + 1 = 8,193; sum 2,765,633
    model = PatchGANDiscriminator(PatchGANConfig())
    assert sum(p.numel() for p in model.parameters()) == 2_765_633
    with pytest.raises(ConfigError):
        PatchGANConfig(norm="actnorm")


def test_patchgan_init_is_normal_0_0_02_for_convs_and_1_0_02_for_batchnorm():
    model = PatchGANDiscriminator()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    weights = torch.cat([conv.weight.flatten() for conv in convs])  # 2.76 M draws
    assert abs(weights.mean().item()) < 1e-3 and weights.std().item() == pytest.approx(0.02, rel=0.01)
    gammas = torch.cat([norm.weight for norm in norms])  # 896 draws
    assert gammas.mean().item() == pytest.approx(1.0, abs=0.005) and gammas.std().item() == pytest.approx(0.02, rel=0.2)
    assert all(norm.bias.eq(0).all() for norm in norms)
    assert [conv.bias is not None for conv in convs] == [True, False, False, False, True]


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(VGG16_WEIGHTS_ENV, raising=False)


def test_load_vgg_lpips_without_weights_names_the_file_and_no_machine_path(empty_hub, tmp_path):
    for reason in (load_vgg_lpips()[1], load_vgg_lpips(tmp_path / "missing.pth")[1]):
        assert VGG16_FILE in reason and "/" not in reason and str(tmp_path) not in reason
    assert load_vgg_lpips() == (None, load_vgg_lpips()[1])


@pytest.fixture(scope="module")
def random_vgg16(tmp_path_factory):
    """A random torchvision VGG16 state dict, saved without its 124 M-parameter classifier (never read)."""
    state = torchvision.models.vgg16(weights=None).state_dict()
    path = tmp_path_factory.mktemp("vgg") / VGG16_FILE
    torch.save({key: value for key, value in state.items() if key.startswith("features.")}, path)
    return path, state


def test_load_vgg_lpips_loads_a_local_trunk_and_gives_zero_only_for_identical_images(
    random_vgg16, empty_hub, monkeypatch
):
    path, state = random_vgg16
    monkeypatch.setenv(VGG16_WEIGHTS_ENV, str(path))
    model, source = load_vgg_lpips()
    assert model is not None and source == str(path) and not model.training
    assert torch.equal(model.net.slice5.get_submodule("28").weight, state["features.28.weight"])
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).requires_grad_()
    assert perceptual_distance(model, x, x.clone()).tolist() == [0.0, 0.0]
    distance = perceptual_distance(model, x, y)
    assert distance.shape == (2,) and (distance > 0).all()
    distance.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    loss = generator_loss(GANLoss(), 1, x, y.detach(), torch.tensor(0.0), FAKE, model)
    assert model.training and loss.perceptual.item() > 0  # official: LPIPS heads' dropout on while training


def test_gan_wasserstein_estimator_scales_by_the_codebook_std_and_adds_jitter():
    """v1 VQGAN / VAR code: features and codes divided by (max per-dimension codebook std + 1e-8), unbiased
    covariances + 1e-6 I; against the closed form computed here from those statistics."""
    from replicate.quantize import build_quantizer, quantizer_config
    from replicate.quantize.gaussian import gaussian_w2
    from replicate.quantize.wasserstein import GAN_WASSERSTEIN_SETTINGS

    torch.manual_seed(0)
    quantizer = build_quantizer(quantizer_config("wasserstein", 64, 3, **GAN_WASSERSTEIN_SETTINGS))
    quantizer.set_codebook(torch.randn(64, 3) * torch.tensor([0.5, 2.0, 1.0]))
    features = torch.randn(500, 3) + 1.0
    scale = quantizer.codebook().detach().std(0).max() + 1e-8
    a, b = (features / scale).double(), (quantizer.codebook().detach() / scale).double()
    eye = 1e-6 * torch.eye(3, dtype=torch.float64)
    expected = gaussian_w2(a.mean(0), torch.cov(a.T) + eye, b.mean(0), torch.cov(b.T) + eye)
    assert quantizer.wasserstein_distance(features).item() == pytest.approx(expected.item(), rel=1e-6)
    vqvae = build_quantizer(quantizer_config("wasserstein", 64, 3))  # the VQ-VAE estimator: the features' std
    vqvae.set_codebook(quantizer.codebook().detach())
    assert vqvae.wasserstein_distance(features).item() != pytest.approx(expected.item(), rel=1e-3)
    with pytest.raises(ConfigError):
        quantizer_config("wasserstein", 64, 3, scale_reference="queue")


@pytest.mark.parametrize("multiscale, parameters", [(False, 31_749_003), (True, 71_752_331)])
def test_table3_paper_models_have_the_official_codes_parameter_counts(multiscale, parameters):
    """Encoder, decoder and their 1 x 1 convolutions of the official v1 code behind the published rows: the VQGAN
    script's [1, 1, 2, 2, 2] (single-scale) and the VAR script's [1, 1, 2, 2, 4] (multi-scale), ch 128 at 256 px."""
    from replicate.configs import with_changes
    from replicate.experiments.wvq_table3 import paper_config
    from replicate.train.tokenizer import build_model

    model = build_model(with_changes(paper_config(16384, multiscale), {"K": 16}))  # K: the codebook is not counted
    counted = (model.encoder, model.decoder, model.quant_conv, model.post_quant_conv)
    assert sum(p.numel() for part in counted for p in part.parameters()) == parameters


@pytest.mark.parametrize("multiscale, gpus, per_gpu", [(False, 4, 16), (True, 2, 32)])
def test_table3_paper_rows_train_the_official_rank0_replica_on_its_data_share(multiscale, gpus, per_gpu):
    """The official scripts bypass DDP (model.module): rank 0 trained alone on 1/gpus of each epoch at the per-GPU
    batch, 1,093 steps an epoch on FFHQ's 70,000 images either way."""
    from replicate.experiments.wvq_table3 import paper_config
    from replicate.train.loop import Loop
    from replicate.train.tokenizer import describe_data

    config = paper_config(16384, multiscale)
    assert (config.independent_replicas, config.batch_size) == (gpus, per_gpu)
    loop = Loop.of(config, Path("unused"), examples=70_000, epochs=200, log="eval.csv", share=gpus)
    assert loop.steps_per_epoch == 1093
    assert f"rank-0 replica of {gpus} GPUs" in describe_data(dataclasses.replace(config, dataset="shapes"))


def test_an_epochs_share_is_every_nth_example_of_its_permutation_and_refused_under_torchrun(tmp_path):
    from replicate import distributed
    from replicate.train.loop import Loop, rank_batches, train_epochs

    config = types.SimpleNamespace(batch_size=2, seed=0, checkpoint_every=10, max_steps=None)
    whole = Loop.of(config, Path("unused"), examples=10, epochs=1, log="log.csv")
    share = Loop.of(config, tmp_path, examples=10, epochs=1, log="log.csv", share=4)
    single = distributed.Context(0, 1, torch.device("cpu"))
    permutation = torch.randperm(10, generator=torch.Generator().manual_seed(3)).tolist()
    assert sum(rank_batches(whole, 3, single), []) == permutation
    assert sum(rank_batches(share, 3, single), []) == permutation[::4][:2]  # 3 examples: one batch of 2
    with pytest.raises(ConfigError, match="one process"):
        train_epochs(share, {}, distributed.Context(0, 2, torch.device("cpu")), batches=None, step=None, epoch_end=None)
