"""Training a token generator: a class-conditional prior over a trained tokenizer's tokens, MaskGIT (models/maskgit.py)
or the raster-order autoregressive transformer (models/autoregressive.py, LlamaGen-style) on a single-scale
tokenizer's grid, or VAR (models/var.py) on a multi-scale tokenizer's token maps, as Deferred
Quantization (arXiv 2603.17052, Sec. 5.3) does to show what a shrunk codebook costs generation; Wasserstein VQ leaves
this as its open question 3. The tokenizer is trained before, in its own run folder (tokenizer.tokenizer_folder).

  train_generator(GeneratorTraining(tokenizer, "maskgit", ...), generator_folders(config, workspace))  # one process
  torchrun --nproc_per_node=4 ...                                                              # DDP, same call

Optimisation (config.optim): AdamW, linear warm-up over `warmup_iters`, then a constant lr (lr_schedule "warmup",
our choice: neither paper states the generator's schedule at our scale); gradient norm clipped to `grad_clip` (None:
none); fp32.

Determinism: the batches of an epoch are a permutation seeded by (seed, epoch) (loop.rank_batches); the masks,
label dropouts and dropout of a step come from seeds of (seed, global step, rank), so a resumed run draws the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from replicate import distributed
from replicate.configs import GeneratorTraining, clip_gradients, learning_rate
from replicate.errors import ReplicateError
from replicate.metrics.codebook import perplexity, utilization
from replicate.models import autoregressive, maskgit, var
from replicate.models.vqvae import VQVAE
from replicate.results import Workspace, config_id
from replicate.train.checkpoint import load_checkpoint, load_part, save_checkpoint
from replicate.train.loop import Loop, train_epochs
from replicate.train.tokenizer import (
    load_trained,
    plain_images,
    subset,
    tokenizer_folder,
)


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


@dataclass(frozen=True)
class GeneratorFolders:
    """The run folders of one generator run (results.run_folder): its own (checkpoint, token cache, per-epoch log),
    its trained tokenizer's (read only) and its proxy classifier's (trained once per proxy and dataset; None without
    a proxy)."""

    generator: Path
    tokenizer: Path
    proxy: Path | None


def generator_folders(config: GeneratorTraining, workspace: Workspace) -> GeneratorFolders:
    """The folders of a generator run: runs/generators/<hash of the trained part's config_id> (shared by
    configurations that differ only in their evaluation), the tokenizer's and runs/proxies/<hash of proxy_key>."""
    return GeneratorFolders(
        generator=workspace.folder("generators", config_id(config.trained_part())),
        tokenizer=tokenizer_folder(config.tokenizer, workspace),
        proxy=workspace.folder("proxies", proxy_key(config)) if config.proxy_network is not None else None,
    )


def proxy_key(config: GeneratorTraining) -> str:
    """What a trained proxy classifier depends on: its configuration and the images it learns (dataset, size)."""
    t = config.tokenizer
    return f"{config_id(config.proxy_network)};dataset={t.dataset};resolution={t.model.resolution}"


@torch.no_grad()
def encode_tokens(model: VQVAE, images: Tensor) -> Tensor:
    """(B, L) token indices of images: the grid, or the scale maps concatenated per image."""
    out = model.quantizer(model.encode(images))
    if hasattr(out, "scale_indices"):
        return torch.cat([s.reshape(images.shape[0], -1) for s in out.scale_indices], 1)
    return out.indices.reshape(images.shape[0], -1)


def extract_tokens(config: GeneratorTraining, folders: GeneratorFolders, device: str | torch.device) -> TokenSet:
    """Every training image of the tokenizer's data (its max_train_images subset, no augmentation) as tokens; cached
    in the generator's folder (tokens.pt) with the tokenizer's config_id, and recomputed when that id differs."""
    t = config.tokenizer
    cache = folders.generator / "tokens.pt"
    state = load_checkpoint(cache)
    if state is None or state["tokenizer_id"] != config_id(t):
        model = load_trained(t, folders.tokenizer).to(device)
        data = plain_images(t, "train")
        images = subset(data, t.max_train_images, t.seed)
        loader = torch.utils.data.DataLoader(images, batch_size=64, num_workers=t.num_workers)
        rows, labels = [], []
        for batch, label in loader:
            rows.append(encode_tokens(model, batch.to(device)).cpu())
            labels.append(label.long())
        state = {"tokenizer_id": config_id(t), "tokens": torch.cat(rows), "labels": torch.cat(labels)}
        state["classes"] = list(data.classes)
        if distributed.rank() == 0:
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


def step_seed(config: GeneratorTraining, step: int, rank: int) -> int:
    """The seed of one update's random draws: a function of (seed, global step, rank) only."""
    return (config.seed * 1_000_003 + step) * 1024 + rank


def build_generator(config: GeneratorTraining, num_classes: int) -> torch.nn.Module:
    kinds = {"maskgit": maskgit.MaskGIT, "var": var.VAR, "autoregressive": autoregressive.Autoregressive}
    return kinds[config.generator](config.model_config(num_classes))


def split_scales(tokens: Tensor, scales: tuple[int, ...]) -> list[Tensor]:
    """Flat per-image tokens (B, L) -> the scale maps (B, p, p)."""
    parts = tokens.split([p * p for p in scales], dim=1)
    return [part.reshape(-1, p, p) for part, p in zip(parts, scales, strict=True)]


def batch_loss(config: GeneratorTraining, wrapped, tokens: Tensor, labels: Tensor, quantizer, generator):
    """(loss, accuracy) of one batch under the generator's training loss."""
    if config.generator == "maskgit":
        out = maskgit.training_loss(wrapped, tokens, labels, generator)
    elif config.generator == "autoregressive":
        out = autoregressive.training_loss(wrapped, tokens, labels, generator)
    else:
        out = var.training_loss(wrapped, split_scales(tokens, config.tokenizer.scales), quantizer, labels, generator)
    return out.loss, out.accuracy


def train_step(config, wrapped, optimizer, tokens, labels, quantizer, step: int, context) -> tuple[float, float]:
    """One update at global `step`; its draws (masks, label dropout, dropout) are seeded by (seed, step, rank)."""
    seed = step_seed(config, step, context.rank)
    torch.manual_seed(seed)  # dropout and drop-path use the global RNG
    generator = torch.Generator(device=context.device).manual_seed(seed)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config.optim, step)
    loss, accuracy = batch_loss(config, wrapped, tokens, labels, quantizer, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not torch.isfinite(torch.nn.utils.get_total_norm(grads)):
        # VAR's and LlamaGen's training skip such a step (their gradient scaler does); every rank sees the same
        # averaged gradients, so every rank skips it
        optimizer.zero_grad(set_to_none=True)
        tqdm.write(f"step {step}: non-finite gradient, update skipped")
        return float(loss.detach()), float(accuracy)
    clip_gradients(optimizer, config.optim.grad_clip)  # its one group: every parameter of the generator
    optimizer.step()
    return float(loss.detach()), float(accuracy)


def train_generator(
    config: GeneratorTraining, folders: GeneratorFolders, *, device: str | None = None, progress: bool = True
) -> pd.DataFrame:
    """Train (or resume) the generator in its folder on the tokens of the trained tokenizer in folders.tokenizer;
    returns one row per epoch: epoch, step, train_loss, train_accuracy, train_seconds, train_revisions."""
    context = distributed.setup(device)
    data = extract_tokens(config, folders, context.device)
    quantizer = None  # VAR's teacher forcing reads the tokenizer's decoding of the coarser scales
    if config.generator == "var":
        quantizer = load_trained(config.tokenizer, folders.tokenizer).quantizer.to(context.device)
    torch.manual_seed(config.seed)
    model = build_generator(config, data.num_classes).to(context.device)
    optim = config.optim
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=optim.lr, betas=optim.adam_betas, weight_decay=optim.weight_decay
    )
    wrapped = model if context.world_size == 1 else _Module(model, broadcast_buffers=False)
    model.train()
    trained, examples = config.trained_part(), len(data.tokens)
    loop = Loop.of(
        trained, folders.generator, examples=examples, epochs=config.epochs, log="train.csv", progress=progress
    )

    def batches(epoch: int, index_lists: list[list[int]]):
        return ((data.tokens[b].to(context.device), data.labels[b].to(context.device)) for b in index_lists)

    def step(batch, index: int, epoch: int, show: bool):
        loss, accuracy = train_step(config, wrapped, optimizer, *batch, quantizer, index, context)
        return {"loss": loss, "accuracy": accuracy}, {}

    parts = {"model": model, "optimizer": optimizer}
    return train_epochs(loop, parts, context, batches=batches, step=step, epoch_end=lambda run: {})


@torch.no_grad()
def generate(
    config: GeneratorTraining,
    folders: GeneratorFolders,
    labels: Tensor,
    device: str | torch.device,
    seed: int | None = None,
) -> Generated:
    """Samples of a trained generator for `labels` (B,), decoded by its tokenizer, on the CPU; drawn sample_batch
    at a time from one stream seeded by `seed` (default config.seed), so the same call gives the same samples."""
    state = load_checkpoint(folders.generator / "checkpoint.pt")
    if state is None:
        raise ReplicateError(f"no checkpoint in {folders.generator}: train the generator first")
    data = extract_tokens(config, folders, device)  # the cached classes (read from tokens.pt)
    model = build_generator(config, data.num_classes)
    load_part(model, state, "model", folders.generator)
    model = model.to(device).eval()
    tokenizer = load_trained(config.tokenizer, folders.tokenizer).to(device)
    codebook = tokenizer.quantizer.codebook().detach()
    generator = torch.Generator(device=device).manual_seed(config.seed if seed is None else seed)
    side = config.tokenizer.model.latent_resolution
    all_tokens, all_images = [], []
    for batch in labels.to(device).split(config.sample_batch):
        if config.generator == "maskgit":
            tokens = maskgit.sample(model, batch, config.sampling_config(), generator)
            latents = codebook[tokens].reshape(len(batch), side, side, -1)
        elif config.generator == "autoregressive":
            tokens = autoregressive.sample(model, batch, config.sampling_config(), generator)
            latents = codebook[tokens].reshape(len(batch), side, side, -1)
        else:
            maps = var.sample(model, tokenizer.quantizer, batch, config.sampling_config(), generator)
            tokens = torch.cat([m.reshape(len(batch), -1) for m in maps], 1)
            latents = var.accumulate(maps, tokenizer.quantizer)
        all_tokens.append(tokens.cpu())
        all_images.append(tokenizer.decode(latents).clamp(-1, 1).cpu())
    return Generated(tokens=torch.cat(all_tokens), images=torch.cat(all_images))


def token_usage(tokens: Tensor, K: int) -> dict[str, float]:
    """Codebook utilization and perplexity of a set of tokens (e.g. generated ones)."""
    counts = torch.bincount(tokens.reshape(-1).cpu(), minlength=K)
    return {"utilization": utilization(counts), "perplexity": perplexity(counts)}
