"""Training the MLP VQ-VAE of the synthetic shrinkage study (Deferred Quantization, arXiv 2603.17052, V2
Sec. 4.1 and 5.1) on a Gaussian mixture, under a quantization schedule, recording the shrinkage diagnostics
during training and at the end. Single process: the whole study is seconds per run on a CPU."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from replicate.configs import SyntheticTraining, clip_gradients, learning_rate
from replicate.data.synthetic import gaussian_mixture
from replicate.metrics.codebook import CODEBOOK_COLUMNS, CodebookUsage, codebook_distances, codebook_metrics
from replicate.metrics.shrinkage import effective_rank, mode_coverage, mode_entropy, per_mode_error
from replicate.models.mlp import MLPAutoencoder
from replicate.quantize import Quantizer, build_quantizer

SPREAD_SAMPLE = 1000  # points whose embeddings give the latent spread (all pairs)


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


def train_synthetic(training: SyntheticTraining) -> SyntheticResult:
    torch.manual_seed(training.seed)
    schedule = training.quantization_schedule()
    points, labels, means = gaussian_mixture(training.dim, generator=torch.Generator().manual_seed(training.seed))
    model = MLPAutoencoder(
        training.dim,
        training.dim,
        encoder_width=training.encoder_width,
        encoder_depth=training.encoder_depth,
        decoder_width=training.decoder_width,
        decoder_depth=training.decoder_depth,
    )
    quantizer = build_quantizer(training.quantizer_config()).train()

    optim = training.optim

    def adam() -> torch.optim.AdamW:  # AdamW without weight decay makes Adam's updates exactly
        groups = [{"params": model.parameters(), "lr": optim.lr}, *quantizer.param_groups(optim.lr)]
        return torch.optim.AdamW(groups, betas=optim.adam_betas, weight_decay=optim.weight_decay)

    optimizer = adam()
    spread_sample = torch.randperm(len(points))[:SPREAD_SAMPLE]
    history = []
    total_steps = schedule.total_steps(training.steps)
    for step in range(total_steps):
        if schedule.initializes(step):
            with torch.no_grad():
                schedule.initialize(quantizer, model.encode(points))
            if schedule.fresh_optimizer:
                optimizer = adam()
        batch = points[torch.randint(len(points), (training.batch,))]
        embeddings = model.encode(batch)
        quantizing = schedule.quantizes(step)
        out = quantizer(embeddings) if quantizing else None
        reconstruction = model.decode(out.quantized if quantizing else embeddings)
        loss = F.mse_loss(reconstruction, batch) + (out.loss if quantizing else 0)
        optimizer.param_groups[0]["lr"] = learning_rate(optim, step)  # a quantizer group keeps its own lr
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(optimizer, optim.grad_clip)
        optimizer.step()
        if quantizing:
            quantizer.update(embeddings, out)
        if step % training.record_every == 0 or step == total_steps - 1:
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
        row |= codebook_metrics(codebook, usage)
        row["mode_entropy"] = mode_entropy(model.decode(codebook), means)
        row["code_to_latent_spread"] = row["code_dist_euclid"] / max(row["latent_dist_euclid"], 1e-12)
    else:
        reconstructions = model.decode(embeddings)
        row |= dict.fromkeys((*CODEBOOK_COLUMNS, "mode_entropy", "code_to_latent_spread"), nan)
    errors = per_mode_error(points, reconstructions, labels, len(means))
    row |= {
        "rec_mse": float(F.mse_loss(reconstructions, points)),
        "modes_covered": mode_coverage(reconstructions, labels, means),
        "mode_error_mean": float(errors.mean()),
        "mode_error_max": float(errors.max()),
    }
    quantizer.train(was_training)
    return row
