"""Training a token generator: a class-conditional prior over a trained tokenizer's tokens, MaskGIT (models/maskgit.py)
on a single-scale tokenizer's grid or VAR (models/var.py) on a multi-scale tokenizer's token maps, as Deferred
Quantization (arXiv 2603.17052, Sec. 5.3) does to show what a shrunk codebook costs generation; Wasserstein VQ leaves
this as its open question 3. The tokenizer is trained first, in its own folder (experiments.wvq_vqvae.run_dir).

  train_generator(GeneratorTraining(tokenizer, "maskgit", ...), Path("runs/generators/x"))   # one process
  torchrun --nproc_per_node=4 ...                                                              # DDP, same call

Optimisation: AdamW, linear warm-up over `warmup_steps`, then a constant lr (our choice: neither paper states the
generator's schedule at our scale); gradient norm clipped to `grad_clip` (0: none); fp32.

Determinism: the batches of an epoch are a permutation seeded by (seed, epoch) (tokenizer.rank_batches); the masks,
label dropouts and dropout of a step come from seeds of (seed, global step, rank), so a resumed run draws the same.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from replicate import distributed
from replicate.errors import ConfigError, ReplicateError
from replicate.metrics.codebook import perplexity, utilization
from replicate.metrics.proxy import ProxyClassifierConfig
from replicate.models import maskgit, var
from replicate.models.vqvae import VQVAE
from replicate.quantize.multiscale import tokens as token_count
from replicate.results import RUN_OPTION, config_id, write_csv
from replicate.train.checkpoint import RunState, load_checkpoint, save_checkpoint
from replicate.train.tokenizer import (
    TokenizerTraining,
    load_trained,
    plain_images,
    rank_batches,
    subset,
    train_tokenizer,
)

EVALUATION_FIELDS = ("eval_samples", "max_pairs", "sample_seeds", "proxy_network", "sample_batch")  # see trained_part
GENERATORS = {"maskgit": (maskgit.MaskGITConfig, maskgit.SamplingConfig), "var": (var.VARConfig, var.SamplingConfig)}


@dataclass(frozen=True)
class GeneratorTraining:
    """One generator run. No defaults for the optimisation: each experiment passes them with their citations."""

    tokenizer: TokenizerTraining  # the run whose tokens are modelled
    generator: str  # "maskgit" (single-scale tokenizer) or "var" (multi-scale tokenizer)
    depth: int
    width: int
    heads: int
    epochs: int
    batch_size: int  # global batch, split evenly over the ranks
    lr: float
    adam_betas: tuple[float, float]
    weight_decay: float
    grad_clip: float  # 0: no clipping
    warmup_steps: int  # linear warm-up, then constant (our choice)
    sampling: tuple[tuple[str, object], ...] = ()  # changes to the generator's SamplingConfig defaults
    seed: int = 0
    # Evaluation (train/evaluate_generator.py), our choices: neither paper states its sample or pair counts.
    eval_samples: int = 1000  # generated images per sampling seed, every class equally often
    max_pairs: int | None = 20_000  # random pairs of the pixel distance; None: all pairs
    sample_seeds: tuple[int, ...] = (0, 1, 2)  # one set of eval_samples per seed: the metrics' mean and spread
    proxy_network: ProxyClassifierConfig | None = None  # the labelled proxy of fidelity (metrics/proxy.py); None: none
    # Images sampled and decoded at once, one generator stream across the batches: bounds memory (the logits of a
    # batch: B x tokens x K floats, twice with guidance; VAR at 680 tokens, K = 16,384: ~90 MB an image), not the law
    # of the samples. Our choice; the cpu VAR at 250 images peaks at 7.0 GB (README, Performance).
    sample_batch: int = 100
    checkpoint_every: int = field(default=500, metadata=RUN_OPTION)  # steps

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise ConfigError(f"unknown generator {self.generator!r}; valid: {', '.join(GENERATORS)}")
        if self.generator == "maskgit" and self.tokenizer.scales:
            raise ConfigError("maskgit needs a single-scale tokenizer (scales=()); use var for a multi-scale one")
        if self.generator == "var" and not self.tokenizer.scales:
            raise ConfigError("var needs a multi-scale tokenizer (scales set); use maskgit for a single-scale one")
        counts = ("depth", "width", "heads", "epochs", "batch_size", "checkpoint_every", "eval_samples", "sample_batch")
        for name in counts:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        for name in ("weight_decay", "grad_clip", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.sample_seeds:
            raise ConfigError("sample_seeds must name at least one seed")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ConfigError(f"max_pairs must be >= 1 or None, got {self.max_pairs}")
        self.model_config(1)  # width / heads fail here, before anything runs
        self.sampling_config()

    def model_config(self, num_classes: int):
        """The generator's configuration over the tokenizer's K, latent grid, d and scales."""
        t = self.tokenizer
        size = dict(depth=self.depth, width=self.width, heads=self.heads)
        if self.generator == "maskgit":
            return maskgit.MaskGITConfig(t.K, t.model_config().latent_resolution, num_classes, **size)
        return var.VARConfig(t.K, t.d, num_classes, scales=t.scales, **size)

    def sampling_config(self):
        """The generator's SamplingConfig with `sampling`'s changes; an unknown field fails in one line."""
        kind = GENERATORS[self.generator][1]
        valid = {f.name for f in dataclasses.fields(kind)}
        for name, _ in self.sampling:
            if name not in valid:
                raise ConfigError(
                    f"unknown {self.generator} sampling field {name!r}; valid: {', '.join(sorted(valid))}"
                )
        return kind(**dict(self.sampling))

    def trained_part(self) -> GeneratorTraining:
        """This configuration with the evaluation fields at their defaults: what the trained generator (its checkpoint
        and run folder) depends on, so that a change of the evaluation re-evaluates without retraining."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in EVALUATION_FIELDS}
        return dataclasses.replace(self, **defaults)

    @property
    def tokens_per_image(self) -> int:
        t = self.tokenizer
        return token_count(t.scales) if t.scales else t.model_config().latent_resolution ** 2


@dataclass
class TokenSet:
    tokens: Tensor  # (N, L) long: the grid row-major (maskgit), or every scale's map row-major, scale by scale (var)
    labels: Tensor  # (N,) long
    num_classes: int
    classes: list[str]


@dataclass
class Generated:
    tokens: Tensor  # (B, L) in [0, K)
    images: Tensor  # (B, 3, H, W) in [-1, 1]


def tokenizer_dir(config: GeneratorTraining) -> Path:
    from replicate.experiments import wvq_vqvae  # lazily: the experiments import the training modules

    return wvq_vqvae.run_dir(config.tokenizer)


@torch.no_grad()
def encode_tokens(model: VQVAE, images: Tensor) -> Tensor:
    """(B, L) token indices of images: the grid, or the scale maps concatenated per image."""
    out = model.quantizer(model.encode(images))
    if hasattr(out, "scale_indices"):
        return torch.cat([s.reshape(images.shape[0], -1) for s in out.scale_indices], 1)
    return out.indices.reshape(images.shape[0], -1)


def extract_tokens(config: GeneratorTraining, device: str | torch.device, run_dir: Path | None = None) -> TokenSet:
    """Every training image of the tokenizer's data (its max_train_images subset, no augmentation) as tokens; cached
    as run_dir/tokens.pt with the tokenizer's config_id, and recomputed when that id differs."""
    t = config.tokenizer
    cache = run_dir / "tokens.pt" if run_dir is not None else None
    state = load_checkpoint(cache) if cache is not None else None
    if state is None or state["tokenizer_id"] != config_id(t):
        model = load_trained(t, tokenizer_dir(config)).to(device)
        data = plain_images(t, "train")
        images = subset(data, t.max_train_images, t.seed)
        loader = torch.utils.data.DataLoader(images, batch_size=64, num_workers=t.num_workers)
        rows, labels = [], []
        for batch, label in loader:
            rows.append(encode_tokens(model, batch.to(device)).cpu())
            labels.append(label.long())
        state = {"tokenizer_id": config_id(t), "tokens": torch.cat(rows), "labels": torch.cat(labels)}
        state["classes"] = list(data.classes)
        if cache is not None and distributed.rank() == 0:
            save_checkpoint(cache, state)
        distributed.barrier()
    classes = list(state["classes"])
    return TokenSet(state["tokens"], state["labels"], len(classes), classes)


class _Module(DistributedDataParallel):
    """DDP that also answers the wrapped generator's attributes (config, mask_id, null_class) for training_loss."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


@dataclass
class _Tally:
    """This epoch's accuracy sum: saved with the checkpoint (RunState keeps the loss sum)."""

    accuracy_sum: float = 0.0

    def state_dict(self) -> dict:
        return {"accuracy_sum": self.accuracy_sum}

    def load_state_dict(self, state: dict) -> None:
        self.accuracy_sum = state["accuracy_sum"]


def step_seed(config: GeneratorTraining, step: int, rank: int) -> int:
    """The seed of one update's random draws: a function of (seed, global step, rank) only."""
    return (config.seed * 1_000_003 + step) * 1024 + rank


def learning_rate(config: GeneratorTraining, step: int) -> float:
    return config.lr * min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else config.lr


def build_generator(config: GeneratorTraining, num_classes: int) -> torch.nn.Module:
    model_config = config.model_config(num_classes)
    return maskgit.MaskGIT(model_config) if config.generator == "maskgit" else var.VAR(model_config)


def split_scales(tokens: Tensor, scales: tuple[int, ...]) -> list[Tensor]:
    """Flat per-image tokens (B, L) -> the scale maps (B, p, p)."""
    parts = tokens.split([p * p for p in scales], dim=1)
    return [part.reshape(-1, p, p) for part, p in zip(parts, scales, strict=True)]


def batch_loss(config: GeneratorTraining, wrapped, tokens: Tensor, labels: Tensor, codebook, generator):
    """(loss, accuracy) of one batch under the generator's training loss."""
    if config.generator == "maskgit":
        out = maskgit.training_loss(wrapped, tokens, labels, generator)
    else:
        out = var.training_loss(wrapped, split_scales(tokens, config.tokenizer.scales), codebook, labels, generator)
    return out.loss, out.accuracy


def train_step(config, wrapped, optimizer, tokens, labels, codebook, step: int, context) -> tuple[float, float]:
    """One update at global `step`; its draws (masks, label dropout, dropout) are seeded by (seed, step, rank)."""
    seed = step_seed(config, step, context.rank)
    torch.manual_seed(seed)  # dropout and drop-path use the global RNG
    generator = torch.Generator(device=context.device).manual_seed(seed)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, step)
    loss, accuracy = batch_loss(config, wrapped, tokens, labels, codebook, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(wrapped.parameters(), config.grad_clip)
    optimizer.step()
    return float(loss.detach()), float(accuracy)


def train_generator(
    config: GeneratorTraining, run_dir: Path, *, device: str | None = None, progress: bool = True
) -> pd.DataFrame:
    """Train (or resume) the generator in `run_dir` (the tokenizer first, in its folder, if unfinished); returns
    one row per epoch: epoch, step, train_loss, train_accuracy, train_revisions."""
    context = distributed.setup(device)
    if config.batch_size % context.world_size:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by {context.world_size} processes")
    train_tokenizer(config.tokenizer, tokenizer_dir(config), device=str(context.device), progress=progress)
    data = extract_tokens(config, context.device, run_dir)
    steps_per_epoch = len(data.tokens) // config.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"{len(data.tokens)} token sets give no batch of {config.batch_size}")
    codebook = None
    if config.generator == "var":
        codebook = (
            load_trained(config.tokenizer, tokenizer_dir(config)).quantizer.codebook().detach().to(context.device)
        )
    torch.manual_seed(config.seed)
    model = build_generator(config, data.num_classes).to(context.device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=config.adam_betas, weight_decay=config.weight_decay
    )
    tally = _Tally()
    parts = {"model": model, "optimizer": optimizer, "tally": tally}
    checkpoint_path = run_dir / "checkpoint.pt"
    run = RunState.restore(checkpoint_path, config.trained_part(), parts)
    wrapped = model if context.world_size == 1 else _Module(model, broadcast_buffers=False)
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=1, default=str))
    if run.epoch < config.epochs:
        run.note_revision()
    model.train()
    while run.epoch < config.epochs:
        batches = rank_batches(len(data.tokens), config, run.epoch, context)[run.step :]
        bar = tqdm(
            batches,
            desc=f"epoch {run.epoch + 1}/{config.epochs}",
            initial=run.step,
            total=steps_per_epoch,
            unit="batch",
            disable=not (progress and context.is_main),
        )
        for batch in bar:
            step = run.epoch * steps_per_epoch + run.step
            tokens, labels = data.tokens[batch].to(context.device), data.labels[batch].to(context.device)
            value, accuracy = train_step(config, wrapped, optimizer, tokens, labels, codebook, step, context)
            run.step, run.loss_sum, run.loss_steps = run.step + 1, run.loss_sum + value, run.loss_steps + 1
            tally.accuracy_sum += accuracy
            if run.step % 10 == 1:
                bar.set_postfix(loss=f"{value:.4f}", acc=f"{accuracy:.3f}")
            if run.step % config.checkpoint_every == 0 and run.step < steps_per_epoch:
                run.save(checkpoint_path, config.trained_part(), parts, context)
        sums = torch.tensor([run.loss_sum, tally.accuracy_sum, run.loss_steps], dtype=torch.float64)
        loss_sum, accuracy_sum, count = distributed.all_reduce_sum_(sums.to(context.device)).tolist()
        run.history.append(
            {
                "epoch": run.epoch + 1,
                "step": (run.epoch + 1) * steps_per_epoch,
                "train_loss": loss_sum / max(count, 1),
                "train_accuracy": accuracy_sum / max(count, 1),
                "train_seconds": round(run.tick(), 1),  # since the start, over every resumed segment
            }
        )
        if context.is_main:
            write_csv(run_dir / "train.csv", pd.DataFrame(run.history))
        run = run.next_epoch()
        tally.accuracy_sum = 0.0
        run.save(checkpoint_path, config.trained_part(), parts, context)
    history = pd.DataFrame(run.history)
    history["train_revisions"] = "+".join(run.revisions)
    return history


@torch.no_grad()
def generate(
    config: GeneratorTraining, run_dir: Path, labels: Tensor, device: str | torch.device, seed: int | None = None
) -> Generated:
    """Samples of a trained generator for `labels` (B,), decoded by its tokenizer, on the CPU; drawn sample_batch
    at a time from one stream seeded by `seed` (default config.seed), so the same call gives the same samples."""
    state = load_checkpoint(run_dir / "checkpoint.pt")
    if state is None:
        raise ReplicateError(f"no checkpoint in {run_dir}: train the generator first")
    data = extract_tokens(config, device, run_dir)  # the cached classes (read from tokens.pt)
    model = build_generator(config, data.num_classes)
    model.load_state_dict(state["model"])
    model = model.to(device).eval()
    tokenizer = load_trained(config.tokenizer, tokenizer_dir(config)).to(device)
    codebook = tokenizer.quantizer.codebook().detach()
    generator = torch.Generator(device=device).manual_seed(config.seed if seed is None else seed)
    side = config.tokenizer.model_config().latent_resolution
    all_tokens, all_images = [], []
    for batch in labels.to(device).split(config.sample_batch):
        if config.generator == "maskgit":
            tokens = maskgit.sample(model, batch, config.sampling_config(), generator)
            latents = codebook[tokens].reshape(len(batch), side, side, -1)
        else:
            maps = var.sample(model, codebook, batch, config.sampling_config(), generator)
            tokens = torch.cat([m.reshape(len(batch), -1) for m in maps], 1)
            latents = var.accumulate(maps, codebook, config.tokenizer.scales)
        all_tokens.append(tokens.cpu())
        all_images.append(tokenizer.decode(latents).clamp(-1, 1).cpu())
    return Generated(tokens=torch.cat(all_tokens), images=torch.cat(all_images))


def token_usage(tokens: Tensor, K: int) -> dict[str, float]:
    """Codebook utilization and perplexity of a set of tokens (e.g. generated ones)."""
    counts = torch.bincount(tokens.reshape(-1).cpu(), minlength=K)
    return {"utilization": utilization(counts), "perplexity": perplexity(counts)}
