"""Wasserstein VQ inside an autoencoder of your own: the quantizers of this project used as a library.

    python examples/wasserstein_autoencoder.py                      # 300 steps on the CPU
    python examples/wasserstein_autoencoder.py --method vanilla     # any name of replicate.quantize.QUANTIZERS
    python examples/wasserstein_autoencoder.py --steps 1000 --codes 256

A small convolutional autoencoder (not the project's VQ-VAE) learns generated 16 px images, a rectangle of one
colour on a background of another, through a 4 x 4 grid of quantized latent vectors. Everything the quantizer needs
from a training loop is here: features channels-last, its losses added to the reconstruction loss, its codebook in
its own optimizer group (param_groups: Wasserstein VQ's codebook learns at 0.02), and update() after each optimizer
step (a no-op for Wasserstein VQ; EMA VQ and online clustering move their codes there). It prints the reconstruction
error and the codebook's utilization (the fraction of codes in use) and perplexity over held-out images.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from replicate.metrics.codebook import CodebookUsage
from replicate.quantize import Quantizer, QuantizerOutput, build_quantizer, quantizer_config


def generated_images(count: int, generator: torch.Generator, size: int = 16) -> Tensor:
    """`count` RGB images (count, 3, size, size) in [-1, 1]: an axis-aligned rectangle of a random colour, place and
    size on a background of another random colour."""
    pixels = torch.arange(size)

    def span() -> Tensor:  # (count, size): which rows (or columns) the rectangle covers
        start = torch.randint(0, size // 2, (count, 1), generator=generator)
        length = torch.randint(size // 4, size // 2 + 1, (count, 1), generator=generator)
        return (pixels >= start) & (pixels < start + length)

    inside = span()[:, :, None] & span()[:, None, :]
    colour, background = (torch.rand(count, 3, 1, 1, generator=generator) * 2 - 1 for _ in range(2))
    return torch.where(inside[:, None], colour, background)


class Autoencoder(nn.Module):
    """16 px images -> a 4 x 4 grid of `quantizer.dim`-dimensional vectors, quantized -> 16 px images."""

    def __init__(self, quantizer: Quantizer, width: int = 32) -> None:
        super().__init__()
        dim = quantizer.dim
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, dim, 1),
        )
        self.quantizer = quantizer
        self.decoder = nn.Sequential(
            nn.Conv2d(dim, width, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 3, 4, stride=2, padding=1),
        )

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, QuantizerOutput]:
        features = self.encoder(images).permute(0, 2, 3, 1)  # channels last: a quantizer works on the last axis
        out = self.quantizer(features)
        reconstructions = self.decoder(out.quantized.permute(0, 3, 1, 2))
        return reconstructions, features, out


@torch.no_grad()
def evaluate(model: Autoencoder, images: Tensor) -> dict[str, float]:
    """Reconstruction MSE and the codebook's quantization error, utilization and perplexity (Wasserstein VQ's
    Criteria 1-3) over `images`, in evaluation mode (Wasserstein VQ: no feature queued)."""
    model.eval()
    reconstructions, features, out = model(images)
    usage = CodebookUsage(model.quantizer.num_codes)
    usage.add(features, out.codes, out.indices)
    model.train()
    return {"reconstruction_mse": F.mse_loss(reconstructions, images).item(), **usage.result()}


def main(
    steps: int = 300,
    method: str = "wasserstein",
    codes: int = 128,
    dim: int = 8,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    log_every: int = 100,
) -> dict[str, dict[str, float]]:
    """Train for `steps` steps; return the held-out metrics before and after training."""
    torch.manual_seed(seed)
    data = torch.Generator().manual_seed(seed)
    held_out = generated_images(512, data)
    # Official defaults of the method, with one change: Wasserstein VQ's feature queue (65,536 vectors officially,
    # for large batches) holds the last 4 steps' 4,096 vectors here, so that its statistics follow the encoder.
    settings = {"queue_size": 4 * batch_size * 16} if method == "wasserstein" else {}
    quantizer = build_quantizer(quantizer_config(method, codes, dim, **settings))
    model = Autoencoder(quantizer)
    others = [p for name, p in model.named_parameters() if not name.startswith("quantizer.")]
    # The quantizer names its own groups: Wasserstein VQ's codebook at its codebook_lr (0.02), others at `lr`.
    optimizer = torch.optim.Adam([{"params": others, "lr": lr}, *quantizer.param_groups(lr)])
    before = evaluate(model, held_out)
    for step in range(1, steps + 1):
        images = generated_images(batch_size, data)
        reconstructions, features, out = model(images)
        reconstruction = F.mse_loss(reconstructions, images)
        loss = reconstruction + out.loss  # out.losses: codebook, commitment and the method's own terms, weighted
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        quantizer.update(features.detach(), out)  # after the step: EMA averages, re-seeding (none for Wasserstein)
        if step % log_every == 0 or step == steps:
            terms = ", ".join(f"{name} {value.item():.4f}" for name, value in out.losses.items())
            print(f"step {step:4d}  reconstruction {reconstruction.item():.4f}  {terms}")
    after = evaluate(model, held_out)
    for name, metrics in (("before", before), ("after", after)):
        print(
            f"{name:6s} held-out reconstruction MSE {metrics['reconstruction_mse']:.4f}, utilization "
            f"{metrics['utilization']:.1%} of {codes} codes, perplexity {metrics['perplexity']:.1f}"
        )
    return {"before": before, "after": after}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--method", default="wasserstein", help="a name of replicate.quantize.QUANTIZERS")
    parser.add_argument("--codes", type=int, default=128, help="codebook size K")
    parser.add_argument("--dim", type=int, default=8, help="code dimension d")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.steps, args.method, args.codes, args.dim, seed=args.seed)
