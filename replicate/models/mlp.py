"""A small MLP autoencoder for the synthetic shrinkage study of Deferred Quantization (arXiv 2603.17052, V2
Sec. 4.1; the paper gives no sizes, so width and depth are configuration)."""

from __future__ import annotations

from torch import Tensor, nn


def mlp(inputs: int, outputs: int, *, width: int, depth: int) -> nn.Sequential:
    """`depth` hidden ReLU layers of `width` units, then a linear output layer."""
    layers: list[nn.Module] = []
    size = inputs
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.ReLU()]
        size = width
    layers.append(nn.Linear(size, outputs))
    return nn.Sequential(*layers)


class MLPAutoencoder(nn.Module):
    """Encoder to a `latent`-dimensional space and decoder back; the quantizer sits between them, outside."""

    def __init__(
        self, dim: int, latent: int, *, encoder_width: int, encoder_depth: int, decoder_width: int, decoder_depth: int
    ) -> None:
        super().__init__()
        self.encoder = mlp(dim, latent, width=encoder_width, depth=encoder_depth)
        self.decoder = mlp(latent, dim, width=decoder_width, depth=decoder_depth)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)
