"""Training the MLP VQ-VAE of the synthetic shrinkage study (Deferred Quantization, arXiv 2603.17052, V2
Sec. 4.1 and 5.1) on a Gaussian mixture, under a quantization schedule, recording the shrinkage diagnostics
during training and at the end. Single process: the whole study is seconds per run on a CPU."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from replicate.data.synthetic import gaussian_mixture
from replicate.metrics.codebook import CodebookUsage, codebook_distances
from replicate.metrics.shrinkage import effective_rank, mode_coverage, mode_entropy, per_mode_error
from replicate.models.mlp import MLPAutoencoder
from replicate.quantize import Quantizer, QuantizerConfig, build_quantizer
from replicate.train.schedule import QuantizationSchedule

SPREAD_SAMPLE = 1000  # points whose embeddings give the latent spread (all pairs)


@dataclass(frozen=True)
class SyntheticTraining:
    dim: int  # input dimension; the latent space has the same dimension
    steps: int  # total step budget, the same for every schedule
    batch: int
    lr: float  # Adam learning rate of encoder, decoder and (unless the quantizer has its own) the codebook
    encoder_width: int
    encoder_depth: int
    decoder_width: int
    decoder_depth: int
    record_every: int  # steps between diagnostics rows
    seed: int


@dataclass
class SyntheticResult:
    final: dict[str, float]  # diagnostics at the end of training
    history: list[dict]  # diagnostics every `record_every` steps
    embeddings: Tensor  # final encoder outputs of every point
    codebook: Tensor
    points: Tensor
    reconstructions: Tensor
    labels: Tensor
    means: Tensor


def train_synthetic(
    training: SyntheticTraining, quantizer_config: QuantizerConfig, schedule: QuantizationSchedule
) -> SyntheticResult:
    torch.manual_seed(training.seed)
    points, labels, means = gaussian_mixture(training.dim, generator=torch.Generator().manual_seed(training.seed))
    model = MLPAutoencoder(
        training.dim,
        training.dim,
        encoder_width=training.encoder_width,
        encoder_depth=training.encoder_depth,
        decoder_width=training.decoder_width,
        decoder_depth=training.decoder_depth,
    )
    quantizer = build_quantizer(quantizer_config).train()
    optimizer = torch.optim.Adam(
        [{"params": model.parameters(), "lr": training.lr}, *quantizer.param_groups(training.lr)]
    )
    spread_sample = torch.randperm(len(points))[:SPREAD_SAMPLE]
    history = []
    for step in range(training.steps):
        if schedule.initializes(step):
            with torch.no_grad():
                schedule.initialize(quantizer, model.encode(points))
        batch = points[torch.randint(len(points), (training.batch,))]
        embeddings = model.encode(batch)
        quantizing = schedule.quantizes(step)
        out = quantizer(embeddings) if quantizing else None
        reconstruction = model.decode(out.quantized if quantizing else embeddings)
        loss = F.mse_loss(reconstruction, batch) + (out.loss if quantizing else 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if quantizing:
            quantizer.update(embeddings, out)
        if step % training.record_every == 0 or step == training.steps - 1:
            row = diagnostics(model, quantizer, points, labels, means, spread_sample, quantized=quantizing)
            history.append({"step": step, "quantized": quantizing, "loss": float(loss.detach()), **row})
    final = {k: v for k, v in history[-1].items() if k not in ("step", "quantized", "loss")}
    with torch.no_grad():
        embeddings = model.encode(points)
        reconstructions = model.decode(quantizer.eval()(embeddings).quantized)
    return SyntheticResult(
        final, history, embeddings, quantizer.codebook().detach(), points, reconstructions, labels, means
    )


@torch.no_grad()
def diagnostics(
    model: MLPAutoencoder,
    quantizer: Quantizer,
    points: Tensor,
    labels: Tensor,
    means: Tensor,
    spread_sample: Tensor,
    *,
    quantized: bool,
) -> dict[str, float]:
    """The shrinkage diagnostics on the whole dataset; codebook columns are NaN before quantization starts."""
    was_training = quantizer.training
    quantizer.eval()  # evaluation must not touch the Wasserstein feature queue
    embeddings = model.encode(points)
    nan = float("nan")
    row = {
        "effective_rank": effective_rank(embeddings),
        "latent_dist_euclid": codebook_distances(embeddings[spread_sample])["code_dist_euclid"],
    }
    if quantized:
        out = quantizer(embeddings)
        reconstructions = model.decode(out.quantized)
        usage = CodebookUsage(quantizer.num_codes)
        usage.add(embeddings, out.codes, out.indices)
        codebook = quantizer.codebook()
        row |= usage.result() | codebook_distances(codebook)
        row["mode_entropy"] = mode_entropy(model.decode(codebook), means)
        row["code_to_latent_spread"] = row["code_dist_euclid"] / max(row["latent_dist_euclid"], 1e-12)
    else:
        reconstructions = model.decode(embeddings)
        row |= dict.fromkeys(
            (
                "quant_error",
                "utilization",
                "perplexity",
                "code_dist_euclid",
                "code_dist_cosine",
                "mode_entropy",
                "code_to_latent_spread",
            ),
            nan,
        )
    errors = per_mode_error(points, reconstructions, labels, len(means))
    row |= {
        "rec_mse": float(F.mse_loss(reconstructions, points)),
        "modes_covered": mode_coverage(reconstructions, labels, means),
        "mode_error_mean": float(errors.mean()),
        "mode_error_max": float(errors.max()),
    }
    quantizer.train(was_training)
    return row
