"""The VQ-VAE of both papers' image experiments: the convolutional encoder/decoder of VQGAN (Esser et al. 2021,
"Taming Transformers", arXiv 2012.09841) without the GAN, with 1x1 projections between z_channels and the
codebook dimension, as in Wasserstein VQ's Table 5 and official VQ-VAE code: channels 64, channel multipliers
[1, 1, 2] (32 px, latent 8 x 8) or [1, 1, 2, 2, 4] (256 px, latent 16 x 16), 2 residual blocks per level,
self-attention in the middle blocks and, at 256 px only, at 16 x 16 (official code/VQVAE/model/vqvae.py: the
factor-4 model has attn_resolutions=[]), z_channels 256, codebook dimension 8. Its configuration, VQVAEConfig, is
in replicate/configs.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from replicate.configs import VQVAEConfig
from replicate.errors import ConfigError
from replicate.quantize import Quantizer, QuantizerOutput


def normalize(channels: int) -> nn.GroupNorm:
    """Taming's GroupNorm: 32 groups (fewer only for layers narrower than 32 channels), eps 1e-6."""
    return nn.GroupNorm(min(32, channels), channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = normalize(in_channels), nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2, self.conv2 = normalize(out_channels), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all spatial positions, with a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = normalize(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        attended = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        return x + self.proj(attended.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Stride-2 3x3 convolution with taming's asymmetric (0, 1, 0, 1) padding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling followed by a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _level(in_channels: int, out_channels: int, blocks: int, attention: bool) -> tuple[nn.ModuleList, int]:
    layers = nn.ModuleList()
    for _ in range(blocks):
        layers.append(ResnetBlock(in_channels, out_channels))
        in_channels = out_channels
        if attention:
            layers.append(AttnBlock(out_channels))
    return layers, in_channels


class Encoder(nn.Module):
    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        widths = [config.channels * m for m in config.channel_mult]
        self.conv_in = nn.Conv2d(3, config.channels, 3, padding=1)
        self.levels = nn.ModuleList()
        channels, resolution = config.channels, config.resolution
        for index, width in enumerate(widths):
            layers, channels = _level(channels, width, config.num_res_blocks, resolution in config.attn_resolutions)
            if index < len(widths) - 1:
                layers.append(Downsample(channels))
                resolution //= 2
            self.levels.append(layers)
        self.middle = nn.Sequential(
            ResnetBlock(channels, channels), AttnBlock(channels), ResnetBlock(channels, channels)
        )
        self.norm_out = normalize(channels)
        self.conv_out = nn.Conv2d(channels, config.z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.levels:
            for layer in level:
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(self.middle(h))))


class Decoder(nn.Module):
    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        widths = [config.channels * m for m in config.channel_mult]
        channels, resolution = widths[-1], config.latent_resolution
        self.conv_in = nn.Conv2d(config.z_channels, channels, 3, padding=1)
        self.middle = nn.Sequential(
            ResnetBlock(channels, channels), AttnBlock(channels), ResnetBlock(channels, channels)
        )
        self.levels = nn.ModuleList()
        for index, width in reversed(list(enumerate(widths))):
            attention = resolution in config.attn_resolutions
            layers, channels = _level(channels, width, config.num_res_blocks + 1, attention)
            if index > 0:
                layers.append(Upsample(channels))
                resolution *= 2
            self.levels.append(layers)
        self.norm_out = normalize(channels)
        self.conv_out = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.middle(self.conv_in(z))
        for level in self.levels:
            for layer in level:
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))


@dataclass(frozen=True)
class VQVAEOutput:
    """What VQVAE.forward returns; quantizer is None when quantization is off."""

    reconstructions: Tensor  # (B, 3, H, W)
    latents: Tensor  # (B, h, w, d), before quantization
    quantizer: QuantizerOutput | None


class VQVAE(nn.Module):
    """Encoder -> 1x1 conv to the codebook dimension -> quantizer -> 1x1 conv back -> decoder."""

    def __init__(self, config: VQVAEConfig, quantizer: Quantizer) -> None:
        super().__init__()
        if quantizer.dim != config.d:
            raise ConfigError(f"quantizer dimension {quantizer.dim} != d {config.d}")
        self.config = config
        self.encoder, self.decoder = Encoder(config), Decoder(config)
        self.quant_conv = nn.Conv2d(config.z_channels, config.d, 1)
        self.post_quant_conv = nn.Conv2d(config.d, config.z_channels, 1)
        self.quantizer = quantizer

    def encode(self, images: Tensor) -> Tensor:
        """Continuous latents, channel-last: (B, h, w, d)."""
        return self.quant_conv(self.encoder(images)).permute(0, 2, 3, 1)

    def decode(self, latents: Tensor) -> Tensor:
        """Images from channel-last latents (B, h, w, d)."""
        return self.decoder(self.post_quant_conv(latents.permute(0, 3, 1, 2)))

    def forward(self, images: Tensor, *, quantize: bool = True, precision: str = "fp32") -> VQVAEOutput:
        """Reconstructions through the quantizer, or straight from the latents when quantize is False. precision
        "bf16": encoder and decoder under bfloat16 autocast; the quantizer, its distances and losses in fp32."""
        half = torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
        with half:
            latents = self.encode(images)
        latents = latents.float()
        if not quantize:
            with half:
                return VQVAEOutput(self.decode(latents).float(), latents, None)
        out = self.quantizer(latents)
        with half:
            reconstructions = self.decode(out.quantized)
        return VQVAEOutput(reconstructions.float(), latents, out)
