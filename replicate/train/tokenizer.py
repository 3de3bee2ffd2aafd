"""Training an image VQ-VAE tokenizer: the official Wasserstein VQ optimisation (code/VQVAE/train_vqvae.py),
optionally under Deferred Quantization's schedule, resumable, and data parallel under torchrun.

  python -m replicate train --config cifar10-wasserstein --scale cpu                      # one process
  torchrun --nproc_per_node=4 -m replicate train --config cifar10-wasserstein --scale paper  # DDP

Optimisation (official code, not the paper's text): Adam betas (0.9, 0.95), no weight decay, lr 5e-5 for the
encoder, decoder and non-Wasserstein codebooks; the Wasserstein codebook in its own group at a constant 0.02;
gradient norms clipped to 1.0 per group; the cosine schedule (5,000 warm-up iterations, half cosine to 50,000,
floor lr / 5, first group only) only where the official code uses it (ImageNet); fp32. Loss = reconstruction
MSE + the quantizer's terms (beta commitment, alpha codebook, gamma W2; the method's official weights).

Determinism: the data order of an epoch is a permutation seeded by (seed, epoch); augmentations are seeded per
(seed, epoch, index) by the dataset. A checkpoint (every `checkpoint_every` steps, atomic) holds the model,
optimizer, quantizer state and position, so a run killed at any moment resumes to the same result.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from replicate import distributed
from replicate.data.images import DATA_LABELS, SMALL, image_dataset, source_resolution
from replicate.errors import ConfigError, ReplicateError
from replicate.metrics.codebook import perplexity, utilization
from replicate.metrics.image import PROTOCOLS
from replicate.models.vqvae import VQVAE, VQVAEConfig, table5_layout
from replicate.quantize import build_quantizer, quantizer_config
from replicate.quantize.multiscale import MultiScaleQuantizer, check_scales
from replicate.results import RUN_OPTION, write_csv
from replicate.train.checkpoint import RunState, load_checkpoint
from replicate.train.evaluate import evaluate_tokenizer
from replicate.train.gan import GANLoss, Objective, build_objective, generator_loss
from replicate.train.schedule import SCHEDULES, WARMED, QuantizationSchedule

LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("fp32", "bf16")


def default_workers() -> int:
    """DataLoader processes: half the CPU cores (at most 8) where a GPU trains, so that decoding keeps it fed; none
    on a CPU-only machine, where every core already trains."""
    return min(8, (os.cpu_count() or 2) // 2) if torch.cuda.is_available() else 0


@dataclass(frozen=True)
class TokenizerTraining:
    """What one tokenizer run is. Fields marked RUN_OPTION are machine settings: they enter neither the result
    row, nor config_id, nor the check that a checkpoint belongs to this configuration."""

    dataset: str  # a name of replicate.data.images.DATASETS: the data actually read
    resolution: int
    method: str
    K: int
    d: int = 8
    channels: int = 64  # Table 5
    channel_mult: tuple[int, ...] | None = None  # None: Table 5's for the resolution (models.vqvae.table5_layout)
    attn_resolutions: tuple[int, ...] | None = None  # None: the official code's for the resolution (same rule)
    epochs: int = 50
    batch_size: int = 128  # global batch, split evenly over the ranks
    lr: float = 5e-5
    adam_betas: tuple[float, float] = (0.9, 0.95)  # official: Adam, not AdamW
    grad_clip: float = 1.0
    lr_schedule: str = "constant"  # official: "cosine" for ImageNet only
    warmup_iters: int = 5000
    decay_iters: int = 50_000
    min_lr_ratio: float = 0.2  # the cosine floor: lr / 5
    schedule: str = "random"  # "random": the Wasserstein VQ setting; "early" / "deferred": Deferred Quantization
    warmup_epochs: int = 0  # continuous epochs before quantizing ("deferred": within `epochs`; "pretrained": before)
    kmeans_vectors: int = 100_000  # encoder outputs for the k-means initialisation (not stated by the paper)
    kmeans_iterations: int = 50  # Lloyd iterations of that initialisation (not stated by the paper)
    quantizer: tuple[tuple[str, float | int | str | bool | None], ...] = ()  # changes to the official settings
    scales: tuple[int, ...] = ()  # multi-scale residual quantization over these scales (quantize.multiscale); ()
    # single-scale. The last must be the latent side: VAR_SCALES (680 tokens) for 16 x 16.
    # The VQGAN terms (train/gan.py; Wasserstein VQ Table 3). Defaults: the VQ-VAE's (Table 5: perceptual and
    # adversarial coefficients 0; official code/VQVAE: MSE reconstruction, Adam = AdamW without weight decay).
    reconstruction_loss: str = "mse"  # official v1 VQGAN: "l1"
    perceptual_weight: float = 0.0  # VGG16 LPIPS (v1 VQGAN: 1.0); needs the VGG16 ImageNet weights
    disc_weight: float = 0.0  # w_d of the PatchGAN hinge terms once started (v1 VQGAN: 0.2); 0: no discriminator
    disc_start_epoch: int = 60  # 1-based epoch from which w_d applies (v1 VQGAN: 60 of 200)
    disc_lr: float = 5e-4  # discriminator AdamW lr, on the same schedule as the model's (v1 VQGAN)
    weight_decay: float = 0.0  # AdamW's decoupled decay on every group (v1 VQGAN: 0.01, AdamW's default)
    max_train_images: int | None = None  # reduced scales: a fixed random subset
    max_eval_images: int | None = None
    eval_every: int = 1  # epochs
    metric_protocol: str = "project"  # LPIPS / rFID: "project" or "official" (replicate.metrics.image.PROTOCOLS)
    precision: str = "fp32"  # "fp32", or "bf16": encoder and decoder under bfloat16 autocast (VQVAE.forward)
    seed: int = 123  # official seed
    checkpoint_every: int = field(default=500, metadata=RUN_OPTION)  # steps
    num_workers: int = field(default_factory=default_workers, metadata=RUN_OPTION)
    data_root: str | None = field(default=None, metadata=RUN_OPTION)

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown lr_schedule {self.lr_schedule!r}; valid: {', '.join(LR_SCHEDULES)}")
        for name in ("resolution", "K", "d", "channels", "epochs", "batch_size", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if self.metric_protocol not in PROTOCOLS:
            raise ConfigError(f"unknown metric_protocol {self.metric_protocol!r}; valid: {', '.join(PROTOCOLS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.schedule == "deferred" and not 0 < self.warmup_epochs < self.epochs:
            raise ConfigError(f"deferred quantization needs 0 < warmup_epochs < epochs, got {self.warmup_epochs}")
        if self.schedule == "pretrained" and self.warmup_epochs < 1:
            raise ConfigError(f"the pretrained arm needs warmup_epochs >= 1, got {self.warmup_epochs}")
        channel_mult, attn_resolutions = table5_layout(self.resolution)  # one rule, in one place
        if self.channel_mult is None:
            object.__setattr__(self, "channel_mult", channel_mult)
        if self.attn_resolutions is None:
            object.__setattr__(self, "attn_resolutions", attn_resolutions)
        self.quantizer_config()  # an unknown method or setting fails here, before anything runs
        self.gan_loss()
        if self.scales:
            object.__setattr__(self, "scales", check_scales(self.scales))
            if self.scales[-1] != self.model_config().latent_resolution:
                raise ConfigError(
                    f"the last scale {self.scales[-1]} must be the latent side {self.model_config().latent_resolution}"
                )

    def quantizer_config(self):
        return quantizer_config(self.method, self.K, self.d, **dict(self.quantizer))

    def gan_loss(self) -> GANLoss:
        """The generator's terms beyond the quantizer's (train/gan.py)."""
        return GANLoss(
            disc_weight=self.disc_weight,
            disc_start_epoch=self.disc_start_epoch,
            perceptual_weight=self.perceptual_weight,
            reconstruction=self.reconstruction_loss,
        )

    def build_model(self) -> VQVAE:
        """The tokenizer: Table 5's encoder and decoder around the method's quantizer, multi-scale where `scales`."""
        quantizer = build_quantizer(self.quantizer_config())
        if self.scales:
            quantizer = MultiScaleQuantizer(quantizer, self.scales)
        return VQVAE(self.model_config(), quantizer)

    @property
    def total_epochs(self) -> int:
        """Epochs in all: `epochs`, plus the autoencoder phase before them for the pretrained arm."""
        return self.epochs + self.warmup_epochs if self.schedule == "pretrained" else self.epochs

    def model_config(self) -> VQVAEConfig:
        return VQVAEConfig(
            self.resolution,
            channels=self.channels,
            channel_mult=tuple(self.channel_mult),
            attn_resolutions=tuple(self.attn_resolutions),
            codebook_dim=self.d,
        )


def smoke_scale(config: TokenizerTraining, *, epochs: int = 1) -> TokenizerTraining:
    """The smoke version of any tokenizer run (every code path in seconds, no data needed): generated 32 px
    images, a two-level narrow model, K <= 64, 64 training and 32 evaluation images."""
    return dataclasses.replace(
        config,
        dataset="shapes",
        resolution=32,
        K=min(config.K, 64),
        channels=32,
        channel_mult=(1, 2),
        epochs=epochs,
        batch_size=16,
        max_train_images=64,
        max_eval_images=32,
        warmup_epochs=min(config.warmup_epochs, epochs - 1),
        attn_resolutions=(16,),  # the attention path too, at the 16 x 16 level
        checkpoint_every=2,
    )


def describe_data(config: TokenizerTraining) -> str:
    """The `data` label of a result: the dataset (with FFHQ's source resolution), the resolution where it is not a
    32 px dataset's native one, and every reduction, e.g. "CIFAR-10 (lossless copy), 2 epochs, ch 32, 20,000
    training images" or "CelebA 10k (not FFHQ), 64 px, 3 epochs"."""
    name = DATA_LABELS.get(config.dataset, config.dataset)
    source = source_resolution(config.dataset, config.data_root)
    parts = [f"{name} ({source} px source)" if source else name]
    if config.dataset not in SMALL or config.resolution != 32:
        parts.append(f"{config.resolution} px")
    if config.schedule == "pretrained":
        parts.append(f"{config.warmup_epochs} autoencoder + {config.epochs} quantized epochs")
    else:
        parts.append(f"{config.epochs} epoch{'s' * (config.epochs > 1)}")
    if config.channels != 64:
        parts.append(f"ch {config.channels}")
    if config.max_train_images:
        parts.append(f"{config.max_train_images:,} training images")
    if config.max_eval_images:
        parts.append(f"{config.max_eval_images:,} evaluation images")
    if config.disc_weight > 0 and config.perceptual_weight == 0:
        parts.append("no perceptual loss")  # a VQGAN without its VGG16 LPIPS term (weights unavailable here)
    return ", ".join(parts)


def learning_rate(config: TokenizerTraining, step: int) -> float:
    """Official ImageNet schedule: linear warm-up, half-cycle cosine to decay_iters, then the floor."""
    if config.lr_schedule == "constant":
        return config.lr
    floor = config.lr * config.min_lr_ratio
    if step < config.warmup_iters:
        return config.lr * (step + 1) / config.warmup_iters
    if step >= config.decay_iters:
        return floor
    progress = (step - config.warmup_iters) / (config.decay_iters - config.warmup_iters)
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


def subset(dataset, limit: int | None, seed: int):
    if limit is None or limit >= len(dataset):
        return dataset
    chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:limit]
    return torch.utils.data.Subset(dataset, sorted(chosen.tolist()))


def rank_batches(size: int, config: TokenizerTraining, epoch: int, context: distributed.Context) -> list[list[int]]:
    """This rank's batches of an epoch: a permutation seeded by (seed, epoch), cut into global batches (the
    incomplete last one dropped), each split evenly over the ranks."""
    per_rank = config.batch_size // context.world_size
    order = torch.randperm(size, generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch)).tolist()
    starts = range(context.rank * per_rank, (size // config.batch_size) * config.batch_size, config.batch_size)
    return [order[start : start + per_rank] for start in starts]


def train_tokenizer(
    config: TokenizerTraining, run_dir: Path, *, device: str | None = None, progress: bool = True
) -> pd.DataFrame:
    """Train (or resume) one tokenizer in `run_dir`; returns its evaluation rows (one per evaluated epoch)."""
    context = distributed.setup(device)
    if config.batch_size % context.world_size:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by {context.world_size} processes")
    torch.manual_seed(config.seed)
    # before the data: a missing VGG16 stops the run at once (the discriminator's init is seeded, as the model's)
    objective = build_objective(config, context)
    datasets = {
        split: image_dataset(
            config.dataset,
            split,
            root=config.data_root,
            resolution=config.resolution,
            train_augment=split == "train",
            seed=config.seed,
        )
        for split in ("train", "test")
    }
    train_data = subset(datasets["train"], config.max_train_images, config.seed)
    eval_data = subset(datasets["test"], config.max_eval_images, config.seed + 1)
    steps_per_epoch = len(train_data) // config.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"{len(train_data)} training images give no batch of {config.batch_size}")
    schedule = QuantizationSchedule(
        config.schedule, config.warmup_epochs * steps_per_epoch, kmeans_iterations=config.kmeans_iterations
    )
    model = config.build_model().to(context.device)
    optimizer = build_optimizer(model, config)
    checkpoint_path = run_dir / "checkpoint.pt"
    parts = {"model": model, "optimizer": optimizer} | (
        {"adversary": objective.adversary} if objective.adversary else {}
    )
    run = RunState.restore(checkpoint_path, config, parts)
    wrapped = (
        model
        if context.world_size == 1
        else DistributedDataParallel(model, broadcast_buffers=False, find_unused_parameters=config.schedule in WARMED)
    )
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=1))
    if run.epoch < config.total_epochs:
        run.note_revision()  # training goes on, maybe under other code: the result row names every revision
    while run.epoch < config.total_epochs:
        datasets["train"].set_epoch(run.epoch)
        batches = rank_batches(len(train_data), config, run.epoch, context)[run.step :]
        loader = torch.utils.data.DataLoader(
            train_data, batch_sampler=batches, num_workers=config.num_workers, pin_memory=context.device.type == "cuda"
        )
        bar = tqdm(
            loader,
            desc=f"epoch {run.epoch + 1}/{config.total_epochs}",
            initial=run.step,
            total=steps_per_epoch,
            unit="batch",
            disable=not (progress and context.is_main),
        )
        for images, _ in bar:
            step = run.epoch * steps_per_epoch + run.step
            if schedule.initializes(step):
                initialize_codebook(model, train_data, schedule, config, context)
                if schedule.fresh_optimizer:  # the paper's arm: train the VQ-VAE anew from the autoencoder
                    optimizer = build_optimizer(model, config)
            loss, out = train_step(
                wrapped,
                model,
                optimizer,
                images.to(context.device, non_blocking=True),
                config,
                step,
                schedule.quantizes(step),
                objective,
                epoch=run.epoch + 1,
            )
            run.step, run.loss_sum, run.loss_steps = run.step + 1, run.loss_sum + loss, run.loss_steps + 1
            if out is not None and run.step % 10 == 1:
                bar.set_postfix(loss=f"{loss:.4f}", **batch_usage(out.indices, config.K))
            if run.step % config.checkpoint_every == 0 and run.step < steps_per_epoch:
                run.save(checkpoint_path, config, parts, context)
        if (run.epoch + 1) % config.eval_every == 0 or run.epoch + 1 == config.total_epochs:
            if context.is_main:
                row = evaluate_tokenizer(
                    model,
                    eval_data,
                    batch_size=2 * config.batch_size,
                    device=context.device,
                    num_workers=config.num_workers,
                    quantized=schedule.quantizes((run.epoch + 1) * steps_per_epoch - 1),
                    protocol=config.metric_protocol,
                )
                run.history.append(
                    {
                        "epoch": run.epoch + 1,
                        "step": (run.epoch + 1) * steps_per_epoch,
                        "train_loss": run.loss_sum / max(run.loss_steps, 1),
                        **row,
                        "train_seconds": round(run.tick(), 1),  # since the start, over every resumed segment
                    }
                )
                write_csv(run_dir / "eval.csv", pd.DataFrame(run.history))
            distributed.barrier()
        run = run.next_epoch()
        run.save(checkpoint_path, config, parts, context)
    history = pd.DataFrame(run.history)
    history["train_revisions"] = "+".join(run.revisions)  # the code revisions that trained this tokenizer
    return history


def batch_usage(indices: torch.Tensor, num_codes: int) -> dict[str, str]:
    """U and C of one batch, for the progress bar (the evaluation uses the whole set)."""
    counts = torch.bincount(indices.reshape(-1), minlength=num_codes)
    return {"U": f"{utilization(counts):.3f}", "C": f"{perplexity(counts):.1f}"}


def build_optimizer(model: VQVAE, config: TokenizerTraining) -> torch.optim.AdamW:
    """Group 0: everything at the model's lr (incl. codebooks that share it); then any quantizer group with
    its own lr (the Wasserstein codebook). Each group is clipped separately. AdamW with weight_decay 0 is the
    official VQ-VAE's Adam, update for update."""
    special = [g for g in model.quantizer.param_groups(config.lr) if g["lr"] != config.lr]
    own = {id(p) for g in special for p in g["params"]}
    shared = [p for p in model.parameters() if p.requires_grad and id(p) not in own]
    return torch.optim.AdamW(
        [{"params": shared, "lr": config.lr}, *special], betas=config.adam_betas, weight_decay=config.weight_decay
    )


def train_step(
    wrapped,
    model: VQVAE,
    optimizer,
    images,
    config: TokenizerTraining,
    step: int,
    quantize: bool,
    objective: Objective,
    *,
    epoch: int,
):
    """One generator (tokenizer) update, then one discriminator update where there is one; epoch is 1-based."""
    lr = learning_rate(config, step)
    optimizer.param_groups[0]["lr"] = lr
    forward = wrapped(images, quantize=quantize, precision=config.precision)
    out = forward.quantizer
    adversary = objective.adversary
    logits_fake = adversary.logits_for_generator(forward.reconstructions, epoch) if adversary is not None else None
    losses = generator_loss(
        objective.loss,
        epoch,
        images,
        forward.reconstructions,
        out.loss if out is not None else 0.0,
        logits_fake,
        objective.lpips,
    )
    optimizer.zero_grad(set_to_none=True)
    losses.total.backward()
    for group in optimizer.param_groups:
        torch.nn.utils.clip_grad_norm_(group["params"], config.grad_clip)
    optimizer.step()
    if out is not None:
        model.quantizer.update(forward.latents.detach(), out)
    if adversary is not None:  # the discriminator follows the model's schedule (official: both groups)
        adversary.step(images, forward.reconstructions, epoch, lr * config.disc_lr / config.lr)
    return float(losses.total.detach()), out


@torch.no_grad()
def initialize_codebook(
    model: VQVAE, data, schedule: QuantizationSchedule, config: TokenizerTraining, context: distributed.Context
) -> None:
    """Deferred Quantization's k-means initialisation on encoder outputs of a fixed sample of training
    images (rank 0 computes, every rank receives the codes)."""
    if schedule.kind == "random":
        return
    tokens_per_image = model.config.latent_resolution**2
    count = min(len(data), math.ceil(config.kmeans_vectors / tokens_per_image))
    chosen = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed + 7))[:count].tolist()
    was_training = model.training
    model.eval()
    latents = torch.cat(
        [
            model.encode(torch.stack([data[i][0] for i in chosen[s : s + 64]]).to(context.device)).reshape(-1, config.d)
            for s in range(0, count, 64)
        ]
    )
    model.train(was_training)
    if context.is_main:
        schedule.initialize(model.quantizer, latents, generator=torch.Generator().manual_seed(config.seed))
    codes = model.quantizer.codebook().detach().clone()
    model.quantizer.set_codebook(distributed.broadcast_(codes))


def load_trained(config: TokenizerTraining, run_dir: Path) -> VQVAE:
    """The model of a finished (or checkpointed) run, in evaluation mode."""
    state = load_checkpoint(run_dir / "checkpoint.pt")
    if state is None:
        raise ReplicateError(f"no checkpoint in {run_dir}: train first")
    model = config.build_model()
    model.load_state_dict(state["model"])
    return model.eval()


def plain_images(config: TokenizerTraining, split: str):
    """A split of the tokenizer's dataset at its resolution, without augmentation: what evaluation, figures and
    generator references read."""
    return image_dataset(
        config.dataset,
        split,
        root=config.data_root,
        resolution=config.resolution,
        train_augment=False,
        seed=config.seed,
    )


@torch.no_grad()
def latent_sample(model: VQVAE, config: TokenizerTraining, count: int) -> torch.Tensor:
    """`count` encoder outputs (continuous latents) of the first evaluation images, as in the official
    extract_codebook_feature.py (Fig. 5 data)."""
    data = plain_images(config, "test")
    per_image = model.config.latent_resolution**2
    images = torch.stack([data[i][0] for i in range(min(len(data), -(-count // per_image)))])
    return torch.cat([model.encode(batch).reshape(-1, config.d) for batch in images.split(64)])[:count]
