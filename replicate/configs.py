"""What a run is: the configurations of the three kinds of training (tokenizer, generator, synthetic study), each a
frozen dataclass composed of shared parts: the model (VQVAEConfig), the loss beyond the quantizer's (GANLoss) and
the optimisation (Optimisation, with the one learning-rate function of every schedule). Light on purpose: it imports
no training loop and no network, so that reports and the experiments' configuration lists can load it alone.

A part's fields are columns of a result row under their own names (results.configuration_fields), and are set on
the command line with a dot: `--set optim.lr=1e-4`, `--set model.channels=32`, `--set tokenizer.gan.disc_weight=0`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from replicate.errors import ConfigError, unknown_name
from replicate.metrics.proxy import ProxyClassifierConfig
from replicate.quantize import MULTISCALE_QUANTIZERS, QuantizerConfig, quantizer_config
from replicate.quantize.multiscale import VAR_SCALES, check_scales
from replicate.results import RUN_OPTION

PART = {"part": True}  # field metadata: a part whose fields are the configuration's own columns (no prefix)
LR_SCHEDULES = ("constant", "warmup", "cosine")
QUANTIZATION_SCHEDULES = ("early", "deferred", "pretrained", "random")  # train/schedule.py
WARMED = ("deferred", "pretrained")  # the quantization schedules with a continuous phase
RECONSTRUCTIONS = ("l1", "mse")
PRECISIONS = ("fp32", "bf16")
GENERATORS = ("maskgit", "var", "autoregressive")  # var alone reads a multi-scale tokenizer


def part(default) -> dataclasses.Field:
    """A part field with a default (a frozen configuration: immutable, so one instance is shared safely)."""
    return field(default=default, metadata=PART)


# ---- optimisation ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Optimisation:
    """AdamW (Adam's update where weight_decay is 0), the learning rate's schedule and the gradient clipping."""

    lr: float
    adam_betas: tuple[float, float] = (0.9, 0.999)  # torch's default
    grad_clip: float | None = None  # max gradient norm of each parameter group; None: no clipping
    # "constant": lr at every step (warmup_iters and decay_iters unused); "warmup": linear warm-up over warmup_iters,
    # then lr; "cosine": that warm-up, then a half cosine from lr down to lr * min_lr_ratio at decay_iters, then that
    # floor (the official Wasserstein VQ ImageNet and VQGAN schedule)
    lr_schedule: str = "constant"
    warmup_iters: int = 0
    decay_iters: int = 0
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0  # AdamW's decoupled decay on every group

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise unknown_name("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be > 0, or None for no clipping; got {self.grad_clip}")
        for name in ("weight_decay", "warmup_iters", "decay_iters"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.lr_schedule == "cosine" and self.decay_iters <= self.warmup_iters:
            raise ConfigError(f"the cosine schedule needs decay_iters > warmup_iters, got {self.decay_iters}")


def learning_rate(optim: Optimisation, step: int) -> float:
    """The learning rate of the model's parameter group at optimizer step `step` (from 0), for every schedule.
    The two warm-up ramps are equal in exact arithmetic; each keeps the order of operations of the runs it has
    trained (the generator's, the official cosine code's), so that those runs resume and rerun bit for bit."""
    if optim.lr_schedule == "constant":
        return optim.lr
    if optim.lr_schedule == "warmup":
        return optim.lr * min(1.0, (step + 1) / optim.warmup_iters) if optim.warmup_iters else optim.lr
    if step < optim.warmup_iters:
        return optim.lr * (step + 1) / optim.warmup_iters
    floor = optim.lr * optim.min_lr_ratio
    if step >= optim.decay_iters:
        return floor
    progress = (step - optim.warmup_iters) / (optim.decay_iters - optim.warmup_iters)
    return floor + 0.5 * (optim.lr - floor) * (1 + math.cos(math.pi * progress))


def clip_gradients(optimizer: torch.optim.Optimizer, grad_clip: float | None) -> None:
    """Clip the gradient norm of each parameter group of `optimizer` to grad_clip (official Wasserstein VQ: per
    group); None: no clipping."""
    if grad_clip is not None:
        for group in optimizer.param_groups:
            torch.nn.utils.clip_grad_norm_(group["params"], grad_clip)


# ---- the image model -------------------------------------------------------------------------------------------


def table5_layout(resolution: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(channel multipliers, attention resolutions) of Table 5 and the official code for a resolution: [1, 1, 2]
    without attention outside the middle blocks up to 64 px (the official factor-4 model); [1, 1, 2, 2, 4] with
    attention at 16 x 16 from 128 px (the official factor-16 model)."""
    return ((1, 1, 2), ()) if resolution <= 64 else ((1, 1, 2, 2, 4), (16,))


@dataclass(frozen=True)
class VQVAEConfig:
    """The VQ-VAE of models/vqvae.py (Wasserstein VQ Table 5, official code/VQVAE/model/vqvae.py)."""

    resolution: int  # input height = width
    d: int = 8  # the codebook dimension (Table 5), the quantizer's
    channels: int = 64  # Table 5: 64 for every VQ-VAE
    channel_mult: tuple[int, ...] | None = None  # None: table5_layout's for the resolution
    attn_resolutions: tuple[int, ...] | None = None  # None: table5_layout's for the resolution
    num_res_blocks: int = 2
    z_channels: int = 256

    def __post_init__(self) -> None:
        channel_mult, attn_resolutions = table5_layout(self.resolution)  # one rule, in one place
        if self.channel_mult is None:
            object.__setattr__(self, "channel_mult", channel_mult)
        if self.attn_resolutions is None:
            object.__setattr__(self, "attn_resolutions", attn_resolutions)
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        object.__setattr__(self, "attn_resolutions", tuple(self.attn_resolutions))
        if min(self.resolution, self.channels, self.z_channels, self.d, self.num_res_blocks, *self.channel_mult) < 1:
            raise ConfigError("resolution, channels, multipliers, z_channels, d and num_res_blocks must be >= 1")
        if self.resolution % 2 ** (len(self.channel_mult) - 1):
            raise ConfigError(f"resolution {self.resolution} is not divisible by the downsampling factor")

    @property
    def latent_resolution(self) -> int:
        return self.resolution // 2 ** (len(self.channel_mult) - 1)


# ---- the loss beyond the quantizer's -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GANLoss:
    """The reconstruction, perceptual and adversarial terms of a tokenizer's loss (train/gan.py). Defaults: the
    official Wasserstein-VQ v1 VQGAN (code/VQGAN/FFHQ); VQVAE_LOSS below is the VQ-VAE's (no perceptual term, no
    discriminator: disc_weight 0 builds none)."""

    # official: torch.mean(torch.abs(x - x_rec)); "mse" is the squared L2 that the paper's VQ-VAE term writes
    reconstruction_loss: str = "l1"
    perceptual_weight: float = 1.0  # official vqgan.py adds lpips_loss unweighted; Table 5 "perceptual 1.0"
    # official: model.train() also puts the LPIPS module in train mode, so the Dropout(0.5) in front of each
    # linear head (taming's LPIPS(use_dropout=True)) is active in the training loss
    perceptual_dropout: bool = True
    disc_weight: float = 0.2  # official config.py rate_d (FFHQ override 0.2); paper lambda = 0.2 (Table 5)
    disc_start_epoch: int = 60  # official disc_epoch (FFHQ override 60 of 200 epochs), 1-based as its loop
    disc_lr: float = 5e-4  # the discriminator's AdamW lr, on the same schedule as the model's (official v1 VQGAN)

    def __post_init__(self) -> None:
        if self.disc_weight < 0 or self.perceptual_weight < 0:
            raise ConfigError("disc_weight and perceptual_weight must be >= 0")
        if self.disc_start_epoch < 1:
            raise ConfigError(f"disc_start_epoch is 1-based, got {self.disc_start_epoch}")
        if self.reconstruction_loss not in RECONSTRUCTIONS:
            raise unknown_name("reconstruction loss", self.reconstruction_loss, RECONSTRUCTIONS)
        if not self.disc_lr > 0:
            raise ConfigError(f"disc_lr must be > 0, got {self.disc_lr}")


# Table 5: perceptual and adversarial coefficients 0; official code/VQVAE: MSE reconstruction
VQVAE_LOSS = GANLoss(disc_weight=0.0, perceptual_weight=0.0, reconstruction_loss="mse")
# Official code/VQVAE/train_vqvae.py: Adam (0.9, 0.95) = AdamW without weight decay, lr 5e-5, gradient norms clipped
# to 1.0 per group; the cosine schedule (5,000 warm-up iterations, half cosine to 50,000, floor lr / 5) where the
# official code uses it (ImageNet: lr_schedule="cosine"); its warm-up is unused under the constant schedule.
VQVAE_OPTIMISATION = Optimisation(
    5e-5, (0.9, 0.95), grad_clip=1.0, lr_schedule="constant", warmup_iters=5000, decay_iters=50_000, min_lr_ratio=0.2
)


def default_workers() -> int:
    """DataLoader processes: half the CPU cores (at most 8) where a GPU trains, so that decoding keeps it fed; none
    on a CPU-only machine, where every core already trains."""
    return min(8, (os.cpu_count() or 2) // 2) if torch.cuda.is_available() else 0


# ---- the generators' networks (models/maskgit.py, models/var.py, models/autoregressive.py) ---------------------------


@dataclass(frozen=True)
class MaskGITConfig:
    vocab_size: int  # the tokenizer's K; no default: set by the tokenizer (MaskGIT's: 1024)
    grid: int  # side of the square token grid; no default (MaskGIT: 16, for 256 px images at f = 16)
    num_classes: int  # no default: set by the data (MaskGIT: ImageNet's 1000)
    # Size: MaskGIT Sec. 4.1 (24 layers, 16 heads, 768 embedding and 3072 MLP dimensions), which the official config
    # and the public PyTorch port's ImageNet 256 model (valeoai/Maskgit-pytorch v1 README) share; that port is most
    # likely what the Deferred Quantization authors used (they do not say).
    depth: int = 24
    width: int = 768
    heads: int = 16
    mlp_ratio: float = 4.0  # 3072 / 768 (Sec. 4.1)
    dropout: float = 0.1  # Sec. 4.1: dropout rate 0.1
    label_smoothing: float = 0.1  # Sec. 4.1: label smoothing 0.1 (official class-conditional config too)
    # Probability of training with the null class, for classifier-free guidance: MaskGIT has none; the PyTorch
    # port's drop_label = 0.1.
    label_dropout: float = 0.1

    def __post_init__(self) -> None:
        if min(self.vocab_size, self.grid, self.num_classes, self.depth, self.width, self.heads) < 1:
            raise ConfigError("vocab_size, grid, num_classes, depth, width and heads of MaskGIT must be >= 1")
        if self.width % self.heads:
            raise ConfigError(f"MaskGIT width {self.width} must be a multiple of heads {self.heads}")
        if self.mlp_ratio <= 0:
            raise ConfigError(f"MaskGIT mlp_ratio must be > 0, got {self.mlp_ratio}")
        for name in ("dropout", "label_smoothing", "label_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"MaskGIT {name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def tokens(self) -> int:
        return self.grid * self.grid


@dataclass(frozen=True)
class MaskGITSampling:
    steps: int = 8  # T: MaskGIT Table 1, 8 steps at 256 x 256 (12 at 512 x 512)
    temperature: float = 1.0  # MaskGIT samples from the predicted distribution as is; 0 = greedy (argmax)
    # Scale of the Gumbel noise on the confidence, annealed by (1 - (t+1)/T): official sample_choice_temperature = 4.5
    # (also the PyTorch port's r_temp at 256 px); 0 = a deterministic confidence ranking.
    choice_temperature: float = 4.5
    guidance_scale: float = 0.0  # s in cond + s (cond - uncond); 0 = no guidance (MaskGIT has none; the port uses 3)
    top_k: int | None = None  # None = the full distribution (MaskGIT does not truncate it)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"sampling steps must be >= 1, got {self.steps}")
        for name in ("temperature", "choice_temperature", "guidance_scale"):
            if getattr(self, name) < 0:
                raise ConfigError(f"sampling {name} must be >= 0, got {getattr(self, name)}")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"sampling top_k must be None or >= 1, got {self.top_k}")


@dataclass(frozen=True)
class VARConfig:
    """Transformer settings; width, heads and drop_path left None follow VAR's scaling rule for `depth` (resolved
    here, so dataclasses.replace(config, depth=...) keeps the old resolved values: pass them as None again)."""

    vocab_size: int  # K of the tokenizer's codebook
    code_dim: int  # d of the tokenizer's codebook
    num_classes: int  # the null class (classifier-free guidance) is index num_classes
    scales: tuple[int, ...] = VAR_SCALES  # VAR's 10 scales, 680 tokens (official patch_nums)
    depth: int = 16  # VAR-d16, VAR's smallest model (Table 1); Deferred Quantization's "depth 16"
    width: int | None = None  # VAR Sec. 4: w = 64 d
    heads: int | None = None  # VAR Sec. 4: h = d
    mlp_ratio: float = 4.0  # official VAR default mlp_ratio=4 (GPT-2's 4 w hidden units)
    dropout: float = 0.0  # official drop_rate = attn_drop_rate = 0
    drop_path: float | None = None  # VAR Sec. 4: dr = 0.1 d / 24, stochastic depth (official drop_path_rate)
    label_dropout: float = 0.1  # official cond_drop_rate=0.1: label -> null class, for classifier-free guidance

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", check_scales(self.scales))
        for name in ("vocab_size", "code_dim", "num_classes", "depth"):
            _check_count(name, getattr(self, name))
        object.__setattr__(self, "width", 64 * self.depth if self.width is None else self.width)
        object.__setattr__(self, "heads", self.depth if self.heads is None else self.heads)
        object.__setattr__(self, "drop_path", 0.1 * self.depth / 24 if self.drop_path is None else self.drop_path)
        _check_count("width", self.width)
        _check_count("heads", self.heads)
        if self.width % self.heads:
            raise ConfigError(f"width {self.width} is not divisible by heads {self.heads}")
        if not self.mlp_ratio > 0:
            raise ConfigError(f"mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        for name in ("dropout", "drop_path", "label_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")


@dataclass(frozen=True)
class VARSampling:
    """How `sample` draws tokens. Guided logits at scale index i = 0 .. S-1: (1 + t_i) cond - t_i uncond with
    t_i = guidance_scale * i / (S - 1) when guidance_ramp (official autoregressive_infer_cfg), else guidance_scale;
    then / temperature, then top-k, then top-p."""

    temperature: float = 1.0  # our choice: VAR's sampler has no temperature (= 1)
    top_k: int | None = 900  # VAR README, FID setting: top_k=900 (None = off)
    top_p: float | None = 0.96  # VAR README, FID setting: top_p=0.96 (None = off)
    guidance_scale: float = 1.5  # VAR README, FID setting: cfg=1.5 (0 = off: the null class is never run)
    guidance_ramp: bool = True  # official autoregressive_infer_cfg: t = cfg * si / (S - 1)

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature!r}")
        if self.top_k is not None:
            _check_count("top_k", self.top_k)
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1] or None, got {self.top_p!r}")
        if not self.guidance_scale >= 0:
            raise ConfigError(f"guidance_scale must be >= 0, got {self.guidance_scale!r}")


# LlamaGen-B (arXiv 2406.06525, its table of model sizes; official GPT_B): LlamaGen's smallest class-conditional
# model, 111M parameters at K = 16,384 and 16 x 16 tokens. The paper-scale size of the autoregressive generator.
LLAMAGEN_B = {"depth": 12, "width": 768, "heads": 12}


@dataclass(frozen=True)
class AutoregressiveConfig:
    """LlamaGen's raster-order transformer (models/autoregressive.py); defaults: LlamaGen-B, official ModelArgs."""

    vocab_size: int  # the tokenizer's K (LlamaGen's: 16,384)
    grid: int  # side of the square token grid (LlamaGen: 16, for 256 px images at f = 16)
    num_classes: int  # the null class (classifier-free guidance) is index num_classes
    depth: int = LLAMAGEN_B["depth"]
    width: int = LLAMAGEN_B["width"]
    heads: int = LLAMAGEN_B["heads"]
    ffn_multiple_of: int = 256  # official multiple_of: SwiGLU hidden = 8 w / 3 rounded up to it (2048 at w = 768)
    rope_base: float = 10_000.0  # official rope_base of the 2-D rotary embedding
    norm_eps: float = 1e-5  # official norm_eps (RMSNorm)
    dropout: float = 0.1  # official token_dropout_p = resid_dropout_p = ffn_dropout_p = 0.1 (attn_dropout_p = 0)
    label_dropout: float = 0.1  # official class_dropout_prob = 0.1: label -> null class

    def __post_init__(self) -> None:
        for name in ("vocab_size", "grid", "num_classes", "depth", "width", "heads", "ffn_multiple_of"):
            _check_count(name, getattr(self, name))
        if self.width % (4 * self.heads):  # 2-D rotary: each head turns pairs of channels, half by row, half by column
            raise ConfigError(f"width {self.width} must be a multiple of 4 x heads ({4 * self.heads})")
        if not (self.rope_base > 0 and self.norm_eps > 0):
            raise ConfigError(f"rope_base and norm_eps must be > 0, got {self.rope_base!r}, {self.norm_eps!r}")
        for name in ("dropout", "label_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")

    @property
    def tokens(self) -> int:
        return self.grid * self.grid


@dataclass(frozen=True)
class AutoregressiveSampling:
    """How `sample` draws each token: guided logits uncond + s (cond - uncond) (LlamaGen's form: s = 1 is the
    conditional model, whose null class is then never run), then / temperature, top-k, top-p; temperature 0 = argmax."""

    temperature: float = 1.0  # official sample_c2i_ddp.py default
    top_k: int | None = None  # official default top_k=0: off
    top_p: float | None = None  # official default top_p=1.0: off
    guidance_scale: float = 2.0  # LlamaGen README, GPT-B at 256 px: --cfg-scale 2.0

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature!r}")
        if self.top_k is not None:
            _check_count("top_k", self.top_k)
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1] or None, got {self.top_p!r}")
        if not self.guidance_scale >= 0:
            raise ConfigError(f"guidance_scale must be >= 0, got {self.guidance_scale!r}")


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")


# ---- the three kinds of run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenizerTraining:
    """One image tokenizer run (train/tokenizer.py). Fields marked RUN_OPTION are machine settings: they enter
    neither the result row, nor config_id, nor the check that a checkpoint belongs to this configuration."""

    dataset: str  # a name of replicate.data.images.DATASETS: the data actually read, at model.resolution
    method: str
    K: int
    model: VQVAEConfig = field(metadata=PART)  # its d is the quantizer's dimension
    epochs: int = 50
    batch_size: int = 128  # global batch, split evenly over the ranks
    optim: Optimisation = part(VQVAE_OPTIMISATION)  # the official VQ-VAE's; the Wasserstein codebook has its own lr
    schedule: str = "random"  # "random": the Wasserstein VQ setting; "early" / "deferred": Deferred Quantization
    warmup_epochs: int = 0  # continuous epochs before quantizing ("deferred": within `epochs`; "pretrained": before)
    kmeans_vectors: int = 100_000  # encoder outputs for the k-means initialisation (not stated by the paper)
    kmeans_iterations: int = 50  # Lloyd iterations of that initialisation (not stated by the paper)
    quantizer: tuple[tuple[str, float | int | str | bool | None], ...] = ()  # changes to the official settings
    scales: tuple[int, ...] = ()  # multi-scale residual quantization over these scales (quantize.multiscale); ()
    # single-scale. The last must be the latent side: VAR_SCALES (680 tokens) for 16 x 16.
    # Which multi-scale quantizer (quantize.MULTISCALE_QUANTIZERS): Wasserstein VQ's v1 residual quantizer, or VAR's
    # own ("var": phi convolutions, detached residual, its loss); meaningful where `scales` is set
    multiscale_quantizer: str = "wasserstein_v1"
    gan: GANLoss = part(VQVAE_LOSS)  # the VQGAN terms (train/gan.py; Wasserstein VQ Table 3); default the VQ-VAE's
    max_train_images: int | None = None  # reduced scales: a fixed random subset
    max_eval_images: int | None = None
    eval_every: int = 1  # epochs
    metric_protocol: str = "project"  # LPIPS / rFID: "project" or "official" (replicate.metrics.image.PROTOCOLS)
    precision: str = "fp32"  # "fp32", or "bf16": encoder and decoder under bfloat16 autocast (VQVAE.forward)
    # GPU efficiency, off by default as in the official code (fp32 + TF32): the model and its batches in channels-last
    # memory layout; the training forward through torch.compile (the checkpoint keeps the plain model's weights)
    channels_last: bool = False
    compile: bool = False
    seed: int = 123  # official seed
    # 1: one model, its gradients averaged over the ranks (DDP). n > 1: the rank-0 replica of an official run on n
    # GPUs that never averaged gradients (Wasserstein VQ's VQGAN and VAR code call model.module, bypassing DDP): an
    # epoch draws its DistributedSampler share (every n-th example of the epoch's permutation) at `batch_size`, the
    # per-GPU batch, in one process
    independent_replicas: int = 1
    checkpoint_every: int = field(default=500, metadata=RUN_OPTION)  # steps
    num_workers: int = field(default_factory=default_workers, metadata=RUN_OPTION)
    # Keep the loader's worker processes from one epoch to the next (GPU efficiency; off as in the official code). A
    # run option, not a setting: every batch is the same either way (items carry their epoch: data.images.EpochKeyed)
    persistent_workers: bool = field(default=False, metadata=RUN_OPTION)
    data_root: str | None = field(default=None, metadata=RUN_OPTION)
    max_steps: int | None = field(default=None, metadata=RUN_OPTION)  # the dry run's: stop there (train/loop.py)

    def __post_init__(self) -> None:
        from replicate.metrics.image import PROTOCOLS
        from replicate.quantize.multiscale import check_scales

        for name in ("K", "epochs", "batch_size", "eval_every", "checkpoint_every", "independent_replicas"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None:
            _check_count("max_steps", self.max_steps)
        if self.precision not in PRECISIONS:
            raise unknown_name("precision", self.precision, PRECISIONS)
        if self.metric_protocol not in PROTOCOLS:
            raise unknown_name("metric_protocol", self.metric_protocol, PROTOCOLS)
        if self.schedule not in QUANTIZATION_SCHEDULES:
            raise unknown_name("schedule", self.schedule, QUANTIZATION_SCHEDULES)
        if self.schedule == "deferred" and not 0 < self.warmup_epochs < self.epochs:
            raise ConfigError(f"deferred quantization needs 0 < warmup_epochs < epochs, got {self.warmup_epochs}")
        if self.schedule == "pretrained" and self.warmup_epochs < 1:
            raise ConfigError(f"the pretrained arm needs warmup_epochs >= 1, got {self.warmup_epochs}")
        self.quantizer_config()  # an unknown method or setting fails here, before anything runs
        if self.multiscale_quantizer not in MULTISCALE_QUANTIZERS:
            raise unknown_name("multiscale_quantizer", self.multiscale_quantizer, MULTISCALE_QUANTIZERS)
        if self.scales:
            object.__setattr__(self, "scales", check_scales(self.scales))
            if self.scales[-1] != self.model.latent_resolution:
                raise ConfigError(
                    f"the last scale {self.scales[-1]} must be the latent side {self.model.latent_resolution}"
                )

    def quantizer_config(self) -> QuantizerConfig:
        return quantizer_config(self.method, self.K, self.model.d, **dict(self.quantizer))

    @property
    def total_epochs(self) -> int:
        """Epochs in all: `epochs`, plus the autoencoder phase before them for the pretrained arm."""
        return self.epochs + self.warmup_epochs if self.schedule == "pretrained" else self.epochs


EVALUATION_FIELDS = ("eval_samples", "max_pairs", "sample_seeds", "proxy_network", "sample_batch")  # trained_part


@dataclass(frozen=True)
class GeneratorTraining:
    """One generator run (train/generator.py). No default optimisation: each experiment passes it, cited."""

    tokenizer: TokenizerTraining  # the run whose tokens are modelled (its columns: tokenizer_<name>)
    generator: str  # "maskgit" or "autoregressive" (single-scale tokenizer), or "var" (multi-scale tokenizer)
    depth: int
    width: int
    heads: int
    epochs: int
    batch_size: int  # global batch, split evenly over the ranks
    optim: Optimisation = field(metadata=PART)
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
    max_steps: int | None = field(default=None, metadata=RUN_OPTION)  # the dry run's: stop there (train/loop.py)

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise unknown_name("generator", self.generator, GENERATORS)
        if self.generator != "var" and self.tokenizer.scales:
            raise ConfigError(f"{self.generator} needs a single-scale tokenizer (scales=()); var reads multi-scale")
        if self.generator == "var" and not self.tokenizer.scales:
            raise ConfigError("var needs a multi-scale tokenizer (scales set); use maskgit for a single-scale one")
        counts = ("depth", "width", "heads", "epochs", "batch_size", "checkpoint_every", "eval_samples", "sample_batch")
        for name in counts:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None:
            _check_count("max_steps", self.max_steps)
        if not self.sample_seeds:
            raise ConfigError("sample_seeds must name at least one seed")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ConfigError(f"max_pairs must be >= 1 or None, got {self.max_pairs}")
        self.model_config(1)  # width / heads fail here, before anything runs
        self.sampling_config()

    def _kinds(self):
        return {
            "maskgit": (MaskGITConfig, MaskGITSampling),
            "var": (VARConfig, VARSampling),
            "autoregressive": (AutoregressiveConfig, AutoregressiveSampling),
        }

    def model_config(self, num_classes: int):
        """The generator's configuration over the tokenizer's K, latent grid, d and scales."""
        t, kind = self.tokenizer, self._kinds()[self.generator][0]
        size = dict(depth=self.depth, width=self.width, heads=self.heads)
        if self.generator != "var":  # a single-scale tokenizer's square grid
            return kind(t.K, t.model.latent_resolution, num_classes, **size)
        return kind(t.K, t.model.d, num_classes, scales=t.scales, **size)

    def sampling_config(self):
        """The generator's SamplingConfig with `sampling`'s changes; an unknown field fails in one line."""
        kind = self._kinds()[self.generator][1]
        valid = {f.name for f in dataclasses.fields(kind)}
        for name, _ in self.sampling:
            if name not in valid:
                raise unknown_name(f"{self.generator} sampling field", name, valid)
        return kind(**dict(self.sampling))

    def trained_part(self) -> GeneratorTraining:
        """This configuration with the evaluation fields at their defaults: what the trained generator (its checkpoint
        and run folder) depends on, so that a change of the evaluation re-evaluates without retraining."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in EVALUATION_FIELDS}
        return dataclasses.replace(self, **defaults)

    @property
    def tokens_per_image(self) -> int:
        from replicate.quantize.multiscale import tokens

        t = self.tokenizer
        return tokens(t.scales) if t.scales else t.model.latent_resolution**2


@dataclass(frozen=True)
class SyntheticTraining:
    """One run of the synthetic study (train/synthetic.py): data, model, quantizer, schedule and optimisation."""

    dim: int  # input dimension; the latent space has the same dimension
    schedule: str  # "early", "deferred", "pretrained" or "random" (train/schedule.py)
    method: str = "ema"
    K: int = 32
    encoder_width: int = 64
    encoder_depth: int = 2
    decoder_width: int = 64
    decoder_depth: int = 2
    steps: int = 3000  # step budget, the same for every schedule ("pretrained" adds its warm-up before it)
    warmup_steps: int = 0  # continuous steps before quantizing ("deferred", "pretrained"); not the lr's warm-up
    batch: int = 256
    optim: Optimisation = part(Optimisation(1e-3))  # Adam at torch's defaults, no clipping, constant lr
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
        if self.schedule not in QUANTIZATION_SCHEDULES:
            raise unknown_name("schedule", self.schedule, QUANTIZATION_SCHEDULES)
        if self.warmup_steps < 0 or (self.schedule in WARMED) != (self.warmup_steps > 0):
            raise ConfigError(
                f"warmup_steps must be > 0 for {' and '.join(WARMED)} and 0 otherwise, got {self.warmup_steps}"
            )
        self.quantizer_config()  # an unknown method or setting fails here

    def quantizer_config(self) -> QuantizerConfig:
        return quantizer_config(self.method, self.K, self.dim, **dict(self.quantizer))

    def quantization_schedule(self):
        from replicate.train.schedule import QuantizationSchedule  # lazily: k-means, the codebook's mechanics

        return QuantizationSchedule(self.schedule, self.warmup_steps, kmeans_iterations=self.kmeans_iterations)

    @property
    def record_every(self) -> int:
        """Steps between diagnostics rows."""
        return 100 if self.steps >= 1000 else 10


# ---- the atomic setting (train/atomic.py; Wasserstein VQ Fig. 12) --------------------------------------------


MOMENTUM = 0.9  # official: SGD(momentum=0.9) for every gradient-trained method


def atomic_settings(method: str, dim: int) -> tuple[dict, float | None]:
    """(quantizer settings, SGD learning rate or None for no optimizer) of the official atomic code."""
    per_vector = float(dim)  # alpha = d: squared error summed over d, as the official loss
    settings = {
        "vanilla": ({"alpha": per_vector, "beta": 0.0}, 1.0),
        "ema": ({"beta": 0.0, "decay": 0.9}, None),
        "online": ({"alpha": per_vector, "beta": 0.0, "decay": 0.9, "anchor": "closest"}, 3.0),
        "linear": ({"alpha": per_vector, "beta": 0.0}, 0.02),
        # loss = 0.1 * codebook loss + 10 * W2 on the current batch, biased covariances, no scale normalisation
        "wasserstein": (
            {
                "alpha": 0.1 * per_vector,
                "beta": 0.0,
                "gamma": 10.0,
                "queue_size": None,
                "normalize_scale": False,
                "unbiased_covariance": False,
                "codebook_lr": None,
            },
            3.0,
        ),
        # Beyond the papers (no official code): Wasserstein VQ's loss weights with its term replaced, and SGD steps
        # that give the same initial pull on the codebook mean. Measured 2026-11-25 (K = 4,096 codes N(0, I), 4,096
        # features N(1, I), d = 8, gamma 1): the mean gradient per code is 2.44e-4 for W2, 8.6e-5 for sliced W2
        # (2.8 = sqrt(8) times less: a random direction sees 1/d of the squared shift) and 7.5e-5 for MMD^2 (3.3 times
        # less); so lr 3 sqrt(d) and 10. MMD keeps 4,096 features and codes a step (its K x K kernel: quantize/mmd.py).
        "mmd": (
            {
                "alpha": 0.1 * per_vector,
                "beta": 0.0,
                "gamma": 10.0,
                "codebook_lr": None,
                "max_features": 4096,
                "max_codes": 4096,
            },
            10.0,
        ),
        "sliced_wasserstein": (
            {"alpha": 0.1 * per_vector, "beta": 0.0, "gamma": 10.0, "queue_size": None, "codebook_lr": None},
            3.0 * math.sqrt(dim),
        ),
    }
    quantizer_config(method, 1, 1)  # an unknown method fails here, naming the valid ones
    return settings[method]


# ---- changing a configuration ----------------------------------------------------------------------------------


def with_changes(config, changes: Mapping[str, object]):
    """A copy of a configuration with fields changed; a nested configuration's field is named with a dot, as on
    the command line ("optim.lr", "model.channels", "tokenizer.gan.disc_weight"). An unknown name fails in one line."""
    direct, nested = {}, {}
    for key, value in changes.items():
        head, dot, rest = key.partition(".")
        if dot:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[key] = value
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted((set(direct) | set(nested)) - names)
    if unknown:
        kind = type(config).__name__
        raise ConfigError(f"unknown configuration field(s) {unknown} for {kind}; valid: {sorted(names)}")
    for head, inner in nested.items():
        owner = direct.get(head, getattr(config, head))
        if not dataclasses.is_dataclass(owner):
            raise ConfigError(f"{head}.{next(iter(inner))}: {head} is not a configuration with fields")
        direct[head] = with_changes(owner, inner)
    return dataclasses.replace(config, **direct)


def smoke_scale(config: TokenizerTraining, *, epochs: int = 1) -> TokenizerTraining:
    """The smoke version of any tokenizer run (every code path in seconds, no data needed): generated 32 px
    images, a two-level narrow model with attention at 16 x 16, K <= 64, 64 training and 32 evaluation images."""
    return with_changes(
        config,
        {
            "dataset": "shapes",
            "model.resolution": 32,
            "model.channels": 32,
            "model.channel_mult": (1, 2),
            "model.attn_resolutions": (16,),  # the attention path too, at the 16 x 16 level
            "K": min(config.K, 64),
            "epochs": epochs,
            "batch_size": 16,
            "max_train_images": 64,
            "max_eval_images": 32,
            "warmup_epochs": min(config.warmup_epochs, epochs - 1),
            "checkpoint_every": 2,
        },
    )
