"""The PatchGAN discriminator of pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
Networks", arXiv 1611.07004) as taming-transformers' VQGAN uses it (Esser et al. 2021, arXiv 2012.09841), with the
settings of the official Wasserstein-VQ v1 code (code/VQGAN/FFHQ/model/discriminator.py, PatchGANDiscriminator with
its defaults input_nc=3, ndf=64, n_layers=3, use_actnorm=False; built by model/vqgan.py as PatchGANDiscriminator()).

Layers: a 4 x 4 stride-2 convolution to `channels` and LeakyReLU(0.2); `layers - 1` stride-2 blocks and one stride-1
block of 4 x 4 convolution (no bias), BatchNorm and LeakyReLU(0.2), doubling the width each time up to 8 x
`channels`; a 4 x 4 stride-1 convolution to one logit per patch. Padding 1 throughout, so a 256 px image gives a
30 x 30 map of logits (70 x 70 px receptive fields) and a 32 px image a 2 x 2 map.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from replicate.errors import ConfigError, unknown_name


@dataclass(frozen=True)
class PatchGANConfig:
    in_channels: int = 3  # RGB
    channels: int = 64  # official PatchGANDiscriminator(ndf=64), as pix2pix and taming
    layers: int = 3  # official n_layers=3: three stride-2 convolutions, then two stride-1 ones
    norm: str = "batch"  # official use_actnorm=False: BatchNorm2d (taming's ActNorm option is not implemented)

    def __post_init__(self) -> None:
        if min(self.in_channels, self.channels, self.layers) < 1:
            raise ConfigError("in_channels, channels and layers of the discriminator must be >= 1")
        if self.norm != "batch":
            raise unknown_name("discriminator norm", self.norm, ["batch"])


class PatchGANDiscriminator(nn.Module):
    """Images (B, C, H, W) in [-1, 1] -> patch logits (B, 1, H', W'); the hinge losses average over the map."""

    def __init__(self, config: PatchGANConfig = PatchGANConfig()) -> None:
        super().__init__()
        widths = [config.channels * min(2**i, 8) for i in range(config.layers + 1)]
        modules: list[nn.Module] = [nn.Conv2d(config.in_channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for i in range(1, config.layers + 1):
            stride = 2 if i < config.layers else 1  # the last block keeps the resolution
            # no bias: BatchNorm's shift replaces it
            modules += [nn.Conv2d(widths[i - 1], widths[i], 4, stride, 1, bias=False), nn.BatchNorm2d(widths[i])]
            modules.append(nn.LeakyReLU(0.2))
        modules.append(nn.Conv2d(widths[-1], 1, 4, 1, 1))
        self.main = nn.Sequential(*modules)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """Official _init_weights (as taming's weights_init): conv weights N(0, 0.02), BatchNorm weights N(1, 0.02)
        and biases 0. The two conv biases keep PyTorch's default uniform init (pix2pix's init_weights zeroes them)."""
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, 0.0, 0.02)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)

    def forward(self, images: Tensor) -> Tensor:
        return self.main(images)
