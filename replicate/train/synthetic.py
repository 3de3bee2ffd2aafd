"""Training the MLP VQ-VAE of the synthetic shrinkage study (Deferred Quantization, arXiv 2603.17052, V2
Sec. 4.1 and 5.1) on a Gaussian mixture, under a quantization schedule, recording the shrinkage diagnostics
during training and at the end. Single process: the whole study is seconds per run on a CPU."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from replicate.data.synthetic import gaussian_mixture
from replicate.errors import ConfigError
from replicate.metrics.codebook import CODEBOOK_COLUMNS, CodebookUsage, codebook_distances, codebook_metrics
from replicate.metrics.shrinkage import effective_rank, mode_coverage, mode_entropy, per_mode_error
from replicate.models.mlp import MLPAutoencoder
from replicate.quantize import Quantizer, QuantizerConfig, build_quantizer, quantizer_config
from replicate.train.schedule import QuantizationSchedule

SPREAD_SAMPLE = 1000  # points whose embeddings give the latent spread (all pairs)


@dataclass(frozen=True)
class SyntheticTraining:
    """One run of the synthetic study: data, model, quantizer, schedule and optimisation."""

    dim: int  # input dimension; the latent space has the same dimension
    schedule: str  # "early", "deferred", "pretrained" or "random" (train/schedule.py)
    method: str = "ema"
    K: int = 32
    encoder_width: int = 64
    encoder_depth: int = 2
    decoder_width: int = 64
    decoder_depth: int = 2
    steps: int = 3000  # step budget, the same for every schedule ("pretrained" adds its warm-up before it)
    warmup_steps: int = 0  # continuous steps before quantizing ("deferred", "pretrained")
    batch: int = 256
    lr: float = 1e-3  # Adam, for encoder, decoder and (unless the quantizer has its own) the codebook
    adam_betas: tuple[float, float] = (0.9, 0.999)  # torch's default
    grad_clip: float | None = None  # max gradient norm per parameter group; None: no clipping
    kmeans_iterations: int = 50  # Lloyd iterations of the early / deferred codebook initialisation
    quantizer: tuple[tuple[str, float | int | str | bool | None], ...] = ()  # changes to the method's defaults
    seed: int = 0  # the mixture, the model initialisation and the batches

    def __post_init__(self) -> None:
        for name in ("K", "encoder_width", "encoder_depth", "decoder_width", "decoder_depth", "steps", "batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.dim < 2:
            raise ConfigError(f"dim must be >= 2 (the plots project to 2-D), got {self.dim}")
        if self.schedule == "deferred" and self.warmup_steps >= self.steps:
            raise ConfigError(f"warmup_steps ({self.warmup_steps}) must be below steps ({self.steps})")
        self.quantization_schedule()  # an unknown schedule fails here
        self.quantizer_config()  # an unknown method or setting fails here

    def quantizer_config(self) -> QuantizerConfig:
        return quantizer_config(self.method, self.K, self.dim, **dict(self.quantizer))

    def quantization_schedule(self) -> QuantizationSchedule:
        return QuantizationSchedule(self.schedule, self.warmup_steps, kmeans_iterations=self.kmeans_iterations)

    @property
    def record_every(self) -> int:
        """Steps between diagnostics rows."""
        return 100 if self.steps >= 1000 else 10


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

    def adam() -> torch.optim.Adam:
        groups = [{"params": model.parameters(), "lr": training.lr}, *quantizer.param_groups(training.lr)]
        return torch.optim.Adam(groups, betas=training.adam_betas)

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
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if training.grad_clip is not None:
            for group in optimizer.param_groups:
                torch.nn.utils.clip_grad_norm_(group["params"], training.grad_clip)
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
