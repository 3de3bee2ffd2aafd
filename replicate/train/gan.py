"""The GAN side of a VQGAN (Esser et al. 2021, arXiv 2012.09841) with the settings of the official Wasserstein-VQ v1
code (code/VQGAN/FFHQ/model/vqgan.py, VQGAN.vqgan; config.py FFHQ overrides), which the v1 paper writes as
L = L_VQ-VAE + L_Per + lambda L_GAN with lambda = 0.2 (section 3.3, Table 5).

generator:      L_G = |x - x_rec|_1 + L_quantizer + 1.0 * LPIPS_VGG(x, x_rec) + w_d * (-mean D(x_rec))
discriminator:  L_D = 0.5 * w_d * 0.5 * (mean relu(1 - D(x)) + mean relu(1 + D(x_rec)))
with w_d = rate_d = 0.2 from epoch disc_epoch = 60 (1-based, of 200) and 0 before; no adaptive weight
(disc_adaptive_weight = False). Means are over all elements (batch and patch map); LPIPS is averaged over images.
Official placement of the factors: hinge_d_loss returns 0.5 * (loss_real + loss_fake), and the discriminator step
multiplies it by adopt_weight(rate_d * 0.5, epoch, threshold=disc_epoch), so L_D carries 0.5 * 0.2 * 0.5 = 0.05.
The generator's reconstruction term is L1 (torch.mean(torch.abs(x - x_rec))), not the paper's squared L2, and its
perceptual term is unweighted (1.0). Both weights are also zero, not skipped, before the start: the official loop
still runs D and steps its AdamW (whose decoupled weight decay 0.01 still acts) before epoch 60.

The perceptual term is taming's VGG16 LPIPS. Its linear heads `vgg.pth` (md5 d507d7349b931f0638a25a48a722f98a, as
official model/lpips.py checks) are byte-identical to the lpips package's weights/v0.1/vgg.pth, which is used here;
the trunk is torchvision's ImageNet VGG16, which nothing here downloads (see load_vgg_lpips).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from replicate import distributed
from replicate.configs import GANLoss, TokenizerTraining, clip_gradients
from replicate.errors import ConfigError, MissingDataError
from replicate.metrics.image import LPIPS_TRUNKS, load_lpips
from replicate.models.discriminator import PatchGANDiscriminator

if TYPE_CHECKING:
    import lpips

VGG16_FILE, VGG16_WEIGHTS_ENV = LPIPS_TRUNKS["vgg"]  # torchvision's ImageNet VGG16 as torch hub caches it


def discriminator_weight(config: GANLoss, epoch: int) -> float:
    """w_d of a 1-based epoch (official adopt_weight: 0 while epoch < disc_epoch); a 0-based loop passes epoch + 1."""
    return config.disc_weight if epoch >= config.disc_start_epoch else 0.0


def generator_adversarial_loss(logits_fake: Tensor) -> Tensor:
    """Hinge generator loss -mean D(x_rec) (official hinge_gen_loss), before the weight w_d."""
    return -logits_fake.mean()


def hinge_discriminator_loss(logits_real: Tensor, logits_fake: Tensor, *, disc_weight: float) -> Tensor:
    """The official discriminator loss: 0.5 * disc_weight * 0.5 * (mean relu(1 - D(x)) + mean relu(1 + D(x_rec))),
    with disc_weight = discriminator_weight(config, epoch). Official D sees x and x_rec (both detached) in two
    separate forward passes, so BatchNorm normalises each with its own batch statistics."""
    hinge = 0.5 * (F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean())
    return 0.5 * disc_weight * hinge


@dataclass(frozen=True)
class GeneratorLoss:
    total: Tensor  # what the generator step backpropagates
    reconstruction: Tensor
    perceptual: Tensor  # unweighted LPIPS, 0 when perceptual_weight is 0
    adversarial: Tensor  # unweighted -mean D(x_rec)
    disc_weight: float  # w_d of this epoch


def generator_loss(
    config: GANLoss,
    epoch: int,
    images: Tensor,
    reconstructions: Tensor,
    quantizer_loss: Tensor | float,
    logits_fake: Tensor | None,
    lpips_model: lpips.LPIPS | None,
) -> GeneratorLoss:
    """L_G of a 1-based epoch, from x, x_rec (unclamped, as official), the quantizer's loss and D(x_rec); without
    logits (no discriminator, or one not started yet) the adversarial term is 0. A term whose weight is 0 is not
    added, so that a VQ-VAE (MSE, no perceptual, no discriminator) is exactly MSE + the quantizer's loss."""
    if config.reconstruction_loss == "l1":
        reconstruction = F.l1_loss(reconstructions, images)  # official torch.mean(torch.abs(x - x_rec))
    else:
        reconstruction = F.mse_loss(reconstructions, images)
    total = reconstruction + quantizer_loss
    zero = reconstruction.new_zeros(())
    perceptual, adversarial = zero, zero
    if config.perceptual_weight > 0:
        if lpips_model is None:
            raise ConfigError("perceptual_weight > 0 needs the VGG16 LPIPS model (load_vgg_lpips)")
        lpips_model.train(config.perceptual_dropout)
        perceptual = perceptual_distance(lpips_model, images, reconstructions).mean()
        total = total + config.perceptual_weight * perceptual
    disc_weight = discriminator_weight(config, epoch) if logits_fake is not None else 0.0
    if disc_weight > 0:
        adversarial = generator_adversarial_loss(logits_fake)
        total = total + disc_weight * adversarial
    return GeneratorLoss(total, reconstruction, perceptual, adversarial, disc_weight)


class Adversary:
    """The discriminator side of a VQGAN run: the PatchGAN (DDP-wrapped across ranks, which the official script's
    model.module calls bypass), its AdamW and its step. The official loop steps it in every iteration, also before
    the discriminator starts (loss weight 0: the AdamW step counter advances and its weight decay acts)."""

    def __init__(
        self, discriminator: nn.Module, optimizer: torch.optim.Optimizer, config: GANLoss, grad_clip: float | None
    ):
        self.discriminator, self.optimizer, self.config, self.grad_clip = discriminator, optimizer, config, grad_clip
        self.module = discriminator.module if hasattr(discriminator, "module") else discriminator

    def logits_for_generator(self, reconstructions: Tensor, epoch: int) -> Tensor | None:
        """D(x_rec) for the generator's hinge term, None while its weight is 0 (the term would be 0 * D(x_rec)).
        The bare module: the gradient needed is the one to x_rec; D's own gradient is discarded by its step."""
        return self.module(reconstructions) if discriminator_weight(self.config, epoch) > 0 else None

    def step(self, images: Tensor, reconstructions: Tensor, epoch: int, lr: float) -> float:
        """One discriminator update on x and x_rec (detached, two forward passes as official); returns L_D."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        logits_real = self.discriminator(images.detach())
        logits_fake = self.discriminator(reconstructions.detach())
        loss = hinge_discriminator_loss(logits_real, logits_fake, disc_weight=discriminator_weight(self.config, epoch))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(self.optimizer, self.grad_clip)  # its one group: every parameter of D
        self.optimizer.step()
        return float(loss.detach())

    def state_dict(self) -> dict:
        return {"discriminator": self.module.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])


def load_vgg_lpips(weights_path: str | Path | None = None) -> tuple[lpips.LPIPS | None, str]:
    """LPIPS with the VGG16 trunk (metrics.image.load_lpips), every parameter frozen as in the official code;
    (None, reason) without the trunk's weights ($VQ_VGG16_WEIGHTS, torch hub's cache, else fetched where allowed)."""
    model, source = load_lpips(weights_path, trunk="vgg")
    return (model.requires_grad_(False), source) if model is not None else (None, source)


def perceptual_distance(model: lpips.LPIPS, x: Tensor, y: Tensor) -> Tensor:
    """Per-image LPIPS (B,) of images in [-1, 1] (the range the model expects, as official), differentiable in
    x and y; the model stays on its device and in its mode (dropout of the heads in train mode)."""
    return model(x, y, normalize=False).flatten()


@dataclass
class Objective:
    """What a tokenizer's training minimises beyond its quantizer's loss: the reconstruction and perceptual terms
    (`loss`, with the VGG16 LPIPS model when weighted) and the discriminator it plays against, if any."""

    loss: GANLoss
    lpips: object | None = None  # lpips.LPIPS with the VGG16 trunk
    adversary: Adversary | None = None


def build_objective(config: TokenizerTraining, context: distributed.Context) -> Objective:
    """The objective of a configuration. A perceptual weight without the VGG16 ImageNet weights stops the run:
    it would not be the configuration it says it is (reduced scales set perceptual_weight 0 instead)."""
    gan, optim = config.gan, config.optim
    lpips_model = None
    if gan.perceptual_weight > 0:
        lpips_model, reason = load_vgg_lpips()
        if lpips_model is None:
            raise MissingDataError(
                f"perceptual_weight {gan.perceptual_weight} needs the VGG16 ImageNet weights ({reason}): put "
                "vgg16-397923af.pth in torch hub's checkpoints folder or set $VQ_VGG16_WEIGHTS"
            )
        lpips_model = lpips_model.to(context.device)
    adversary = None
    if gan.disc_weight > 0:
        discriminator = PatchGANDiscriminator().to(context.device)
        optimizer = torch.optim.AdamW(
            discriminator.parameters(), lr=gan.disc_lr, betas=optim.adam_betas, weight_decay=optim.weight_decay
        )
        if context.world_size > 1:
            discriminator = DistributedDataParallel(discriminator, broadcast_buffers=False)
        adversary = Adversary(discriminator, optimizer, gan, optim.grad_clip)
    return Objective(gan, lpips_model, adversary)
