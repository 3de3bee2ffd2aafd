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

import math
from pathlib import Path

import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel

from replicate import distributed
from replicate.configs import TokenizerTraining, clip_gradients, learning_rate
from replicate.data.images import DATA_LABELS, SMALL, EpochBatches, EpochKeyed, image_dataset, source_resolution
from replicate.errors import ReplicateError
from replicate.metrics.codebook import perplexity, utilization
from replicate.models.vqvae import VQVAE
from replicate.quantize import MULTISCALE_QUANTIZERS, build_quantizer
from replicate.quantize.multiscale import tokens
from replicate.results import Workspace, config_id
from replicate.train.checkpoint import load_checkpoint, load_part
from replicate.train.evaluate import evaluate_tokenizer
from replicate.train.gan import Objective, build_objective, generator_loss
from replicate.train.loop import Loop, train_epochs
from replicate.train.schedule import WARMED, QuantizationSchedule


def build_model(config: TokenizerTraining) -> VQVAE:
    """The tokenizer: Table 5's encoder and decoder around the method's quantizer, multi-scale where `scales`."""
    quantizer = build_quantizer(config.quantizer_config())
    if config.scales:
        quantizer = MULTISCALE_QUANTIZERS[config.multiscale_quantizer](quantizer, config.scales)
    return VQVAE(config.model, quantizer)


def describe_data(config: TokenizerTraining) -> str:
    """The `data` label of a result: the dataset (with FFHQ's source resolution), the resolution where it is not a
    32 px dataset's native one, and every reduction, e.g. "CIFAR-10 (lossless copy), 2 epochs, ch 32, 20,000
    training images" or "CelebA 10k (not FFHQ), 64 px, 3 epochs"."""
    name = DATA_LABELS.get(config.dataset, config.dataset)
    source = source_resolution(config.dataset, config.data_root)
    parts = [f"{name} ({source} px source)" if source else name]
    if config.dataset not in SMALL or config.model.resolution != 32:
        parts.append(f"{config.model.resolution} px")
    if config.schedule == "pretrained":
        parts.append(f"{config.warmup_epochs} autoencoder + {config.epochs} quantized epochs")
    else:
        parts.append(f"{config.epochs} epoch{'s' * (config.epochs > 1)}")
    if config.model.channels != 64:
        parts.append(f"ch {config.model.channels}")
    if config.max_train_images:
        parts.append(f"{config.max_train_images:,} training images")
    if config.max_eval_images:
        parts.append(f"{config.max_eval_images:,} evaluation images")
    if config.independent_replicas > 1:
        n = config.independent_replicas
        parts.append(f"rank-0 replica of {n} GPUs without gradient averaging (1/{n} of the data an epoch)")
    if config.gan.disc_weight > 0 and config.gan.perceptual_weight == 0:
        parts.append("no perceptual loss")  # a VQGAN without its VGG16 LPIPS term (weights unavailable here)
    return ", ".join(parts)


def subset(dataset, limit: int | None, seed: int):
    if limit is None or limit >= len(dataset):
        return dataset
    chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:limit]
    return torch.utils.data.Subset(dataset, sorted(chosen.tolist()))


def train_tokenizer(
    config: TokenizerTraining, run_dir: Path, *, device: str | None = None, progress: bool = True
) -> pd.DataFrame:
    """Train (or resume) one tokenizer in `run_dir`; returns its evaluation rows (one per evaluated epoch)."""
    context = distributed.setup(device)
    torch.manual_seed(config.seed)
    # before the data: a missing VGG16 stops the run at once (the discriminator's init is seeded, as the model's)
    objective = build_objective(config, context)
    datasets = {
        split: image_dataset(
            config.dataset,
            split,
            root=config.data_root,
            resolution=config.model.resolution,
            train_augment=split == "train",
            seed=config.seed,
        )
        for split in ("train", "test")
    }
    train_data = subset(datasets["train"], config.max_train_images, config.seed)
    eval_data = subset(datasets["test"], config.max_eval_images, config.seed + 1)
    examples, epochs = len(train_data), config.total_epochs
    loop = Loop.of(
        config,
        run_dir,
        examples=examples,
        epochs=epochs,
        log="eval.csv",
        progress=progress,
        share=config.independent_replicas,
    )
    warmup_steps = config.warmup_epochs * loop.steps_per_epoch
    if config.max_steps is not None and warmup_steps:  # a dry run's few steps cross the switch half-way
        warmup_steps = max(1, config.max_steps // 2)
    schedule = QuantizationSchedule(config.schedule, warmup_steps, kmeans_iterations=config.kmeans_iterations)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    model = build_model(config).to(context.device, memory_format=layout)
    parts = {"model": model, "optimizer": build_optimizer(model, config)}
    parts |= {"adversary": objective.adversary} if objective.adversary else {}
    wrapped = (
        model
        if context.world_size == 1
        else DistributedDataParallel(model, broadcast_buffers=False, find_unused_parameters=config.schedule in WARMED)
    )
    wrapped = torch.compile(wrapped) if config.compile else wrapped

    order, loader = EpochBatches(), None

    def batches(epoch: int, index_lists: list[list[int]]):
        nonlocal loader
        datasets["train"].set_epoch(epoch)  # the main process's crops (a k-means initialisation reads train_data)
        order.set(epoch, index_lists)
        if loader is None or not config.persistent_workers:  # a new loader starts new worker processes
            loader = torch.utils.data.DataLoader(
                EpochKeyed(train_data),
                batch_sampler=order,
                num_workers=config.num_workers,
                pin_memory=context.device.type == "cuda",
                persistent_workers=config.persistent_workers and config.num_workers > 0,
            )
        return (images.to(context.device, non_blocking=True, memory_format=layout) for images, _ in loader)

    def step(images, index: int, epoch: int, show: bool):
        if schedule.initializes(index):
            initialize_codebook(model, train_data, schedule, config, context)
            if schedule.fresh_optimizer:  # the paper's arm: train the VQ-VAE anew from the autoencoder
                parts["optimizer"] = build_optimizer(model, config)  # the one the checkpoints hold from now on
        quantize = schedule.quantizes(index)
        loss, out = train_step(
            wrapped, model, parts["optimizer"], images, config, index, quantize, objective, epoch=epoch
        )
        return {"loss": loss}, batch_usage(out.indices, model.quantizer.num_codes) if show and out is not None else {}

    def epoch_end(run) -> dict | None:
        finished = run.epoch + 1
        if finished % config.eval_every and finished != config.total_epochs:
            return None
        if not context.is_main:
            return None
        return evaluate_tokenizer(
            model,
            eval_data,
            batch_size=2 * config.batch_size,
            device=context.device,
            num_workers=config.num_workers,
            quantized=schedule.quantizes(finished * loop.steps_per_epoch - 1),
            protocol=config.metric_protocol,
        )

    return train_epochs(loop, parts, context, batches=batches, step=step, epoch_end=epoch_end)


def batch_usage(indices: torch.Tensor, num_codes: int) -> dict[str, str]:
    """U and C of one batch, for the progress bar (the evaluation uses the whole set)."""
    counts = torch.bincount(indices.reshape(-1), minlength=num_codes)
    return {"U": f"{utilization(counts):.3f}", "C": f"{perplexity(counts):.1f}"}


def build_optimizer(model: VQVAE, config: TokenizerTraining) -> torch.optim.AdamW:
    """Group 0: everything at the model's lr (incl. codebooks that share it); then any quantizer group with
    its own lr (the Wasserstein codebook). Each group is clipped separately. AdamW with weight_decay 0 is the
    official VQ-VAE's Adam, update for update."""
    optim = config.optim
    special = [g for g in model.quantizer.param_groups(optim.lr) if g["lr"] != optim.lr]
    own = {id(p) for g in special for p in g["params"]}
    shared = [p for p in model.parameters() if p.requires_grad and id(p) not in own]
    return torch.optim.AdamW(
        [{"params": shared, "lr": optim.lr}, *special], betas=optim.adam_betas, weight_decay=optim.weight_decay
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
    lr = learning_rate(config.optim, step)
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
    clip_gradients(optimizer, config.optim.grad_clip)
    optimizer.step()
    if out is not None:
        model.quantizer.update(forward.latents.detach(), out)
    if adversary is not None:  # the discriminator follows the model's schedule (official: both groups)
        adversary.step(images, forward.reconstructions, epoch, lr * config.gan.disc_lr / config.optim.lr)
    return float(losses.total.detach()), out


@torch.no_grad()
def initialize_codebook(
    model: VQVAE, data, schedule: QuantizationSchedule, config: TokenizerTraining, context: distributed.Context
) -> None:
    """Deferred Quantization's k-means initialisation on what the codebook quantizes, for a fixed sample of training
    images (rank 0 computes, every rank receives the codes): their encoder outputs, or for a multi-scale quantizer the
    residuals of every scale (one pass with the codebook as it is), not the full-resolution latents alone."""
    if schedule.kind == "random" or not model.quantizer.learned_codebook:
        return
    tokens_per_image = tokens(config.scales) if config.scales else model.config.latent_resolution**2
    count = min(len(data), math.ceil(config.kmeans_vectors / tokens_per_image))
    chosen = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed + 7))[:count].tolist()
    was_training = model.training
    model.eval()
    vectors = []
    for start in range(0, count, 64):
        latents = model.encode(torch.stack([data[i][0] for i in chosen[start : start + 64]]).to(context.device))
        vectors.append(model.quantizer(latents).residuals if config.scales else latents.reshape(-1, config.model.d))
    latents = torch.cat(vectors)
    model.train(was_training)
    if context.is_main:
        schedule.initialize(model.quantizer, latents, generator=torch.Generator().manual_seed(config.seed))
    codes = model.quantizer.codebook().detach().clone()
    model.quantizer.set_codebook(distributed.broadcast_(codes))


def tokenizer_folder(config: TokenizerTraining, workspace: Workspace) -> Path:
    """runs/tokenizers/<hash of config_id>/: the run's checkpoint and per-epoch log (results.run_folder)."""
    return workspace.folder("tokenizers", config_id(config))


def load_trained(config: TokenizerTraining, run_dir: Path) -> VQVAE:
    """The model of a finished (or checkpointed) run, in evaluation mode."""
    state = load_checkpoint(run_dir / "checkpoint.pt")
    if state is None:
        raise ReplicateError(f"no checkpoint in {run_dir}: train first")
    model = build_model(config)
    load_part(model, state, "model", run_dir)
    return model.eval()


def plain_images(config: TokenizerTraining, split: str):
    """A split of the tokenizer's dataset at its resolution, without augmentation: what evaluation, figures and
    generator references read."""
    return image_dataset(
        config.dataset,
        split,
        root=config.data_root,
        resolution=config.model.resolution,
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
    return torch.cat([model.encode(batch).reshape(-1, config.model.d) for batch in images.split(64)])[:count]
