"""`run --dry-run`: every selected configuration for DRY_STEPS training steps at full size, through the code a real
run takes, before the expensive run: the data loader with its workers over generated images at the configuration's
resolution, the training steps (tokenizer, VQGAN with its discriminator, generator, proxy classifier), one evaluation
on a handful of images, every training interrupted after its first step and resumed from its checkpoint, and the
result row built and checked against the experiment's contract. Nothing is written in the checkout: the images and
run folders live in a temporary folder, and no result row is kept.

What differs from the real run, and why: the data are generated (data/images.py `folder` layout, one class folder
per class of the configuration's data), so that a missing dataset does not hide a failing model; the discriminator
and every phase switch (deferred quantization's k-means) come at the first steps instead of after epochs; the
evaluation reads EVAL_IMAGES images and generators draw EVAL_SAMPLES samples. The batch of each process is the
configuration's per-GPU batch (its batch_size over the processes), or `--dry-run-batch`.
"""

from __future__ import annotations

import gc
import os
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from replicate import distributed, preemption
from replicate.configs import GeneratorTraining, TokenizerTraining, with_changes
from replicate.errors import ConfigError
from replicate.metrics.diversity import NEAREST_K
from replicate.quantize.multiscale import tokens
from replicate.results import Workspace, identity
from replicate.spec import Experiment

DRY_STEPS = 2  # training steps of every training loop: the first is interrupted and resumed
EVAL_IMAGES = 4  # evaluation images of a tokenizer: the evaluation's code path, not its numbers
EVAL_SAMPLES = NEAREST_K + 3  # generated images per sampling seed (one seed): PRDC's radii need more than k + 1
# a tokenizer evaluates EVAL_IMAGES of them; a generator compares its EVAL_SAMPLES samples with as many test images
TEST_IMAGES = max(EVAL_IMAGES, EVAL_SAMPLES)
RESUMES_AT_MOST = 8  # a run still interrupted after this many resumes does not resume: a defect


@dataclass(frozen=True)
class DryRun:
    """One configuration's dry run: what it ran and how long it took."""

    experiment: str
    label: str  # label(config)
    batch: int  # per process
    resolution: int
    resumes: int  # interruptions resumed from a checkpoint
    seconds: float
    peak_memory_bytes: int  # CUDA: the largest allocation; CPU: the process's peak resident size so far

    def line(self) -> str:
        return (
            f"ok {self.experiment} [{self.label}]: {DRY_STEPS} steps at batch {self.batch} per process, "
            f"{self.resolution} px, resumed {self.resumes}x, {self.seconds:.0f} s, "
            f"{self.peak_memory_bytes / 2**30:.1f} GiB peak"
        )


def label(config) -> str:
    """A short name of a configuration for the dry run's lines, e.g. "wasserstein K=16384 multi-scale VQGAN"."""
    if isinstance(config, GeneratorTraining):
        return f"{config.generator} depth {config.depth} on {label(config.tokenizer)}"
    parts = [config.method, f"K={config.K}", f"d={config.model.d}"]
    parts += ["multi-scale"] if config.scales else []
    parts += ["VQGAN"] if config.gan.disc_weight > 0 else []
    parts += [config.schedule] if config.schedule != "random" else []
    return " ".join(parts)


def draw_image(index: int, resolution: int, seed: str) -> Image.Image:
    """A generated picture (a few filled shapes of random colour on a random background), a function of its
    arguments only."""
    rng = random.Random(f"{seed}/{index}")
    image = Image.new("RGB", (resolution, resolution), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = rng.randrange(resolution), rng.randrange(resolution)
        x1, y1 = x0 + rng.randrange(1, resolution // 2 + 2), y0 + rng.randrange(1, resolution // 2 + 2)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


def image_folder(root: Path, resolution: int, classes: int, train_images: int) -> Path:
    """root/{train,test}/class_<i>/<n>.png: `train_images` training images (and TEST_IMAGES test images, at least
    one per class) spread evenly over `classes` class folders; written once per (resolution, classes, count)."""
    folder = root / f"images-{resolution}px-{classes}classes-{train_images}"
    if (folder / "complete").exists():
        return folder
    for split, count in (("train", max(train_images, classes)), ("test", max(TEST_IMAGES, classes))):
        for index in range(count):
            target = folder / split / f"class_{index % classes:04d}" / f"{index:06d}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            draw_image(index, resolution, f"dry-run/{split}").save(target)
    (folder / "complete").touch()
    return folder


def per_process(batch_size: int, world_size: int, batch: int | None) -> int:
    """The batch of one process: `batch` where given, else the configuration's global batch over the processes."""
    if batch is not None:
        if batch < 1:
            raise ConfigError(f"--dry-run-batch must be >= 1, got {batch}")
        return batch
    if batch_size % world_size:
        raise ConfigError(f"batch_size {batch_size} is not divisible by {world_size} processes")
    return batch_size // world_size


def dry_tokenizer(config: TokenizerTraining, folder: Path, batch: int, train_images: int) -> TokenizerTraining:
    """A tokenizer's dry-run configuration over a generated image folder (module docstring)."""
    changes = {
        "dataset": "folder",
        "data_root": str(folder),
        "batch_size": batch,
        "max_train_images": train_images,
        "max_eval_images": EVAL_IMAGES,
        "eval_every": 1,
        "max_steps": DRY_STEPS,
        "checkpoint_every": 1,
        "num_workers": max(1, config.num_workers),  # the loader's worker processes too
    }
    if config.gan.disc_weight > 0:
        changes["gan.disc_start_epoch"] = 1  # the discriminator's step from the first step
    return with_changes(config, changes)


def kmeans_images(config: TokenizerTraining) -> int:
    """The images a k-means initialisation of the codebook needs (Deferred Quantization's arms): at least K vectors,
    one per token of an image (a multi-scale tokenizer's residuals: one per token of every scale)."""
    if config.schedule == "random":
        return 0
    per_image = tokens(config.scales) if config.scales else config.model.latent_resolution**2
    return -(-config.K // per_image)


def dry_config(config, scratch: Path, world_size: int, batch: int | None = None):
    """The dry-run version of a tokenizer or generator configuration; its images are written under `scratch`."""
    if isinstance(config, TokenizerTraining):
        tokenizer_batch = per_process(config.batch_size, world_size, batch) * world_size
        images = DRY_STEPS * tokenizer_batch * config.independent_replicas  # a replica's epoch: 1/n of the images
        images = max(images, kmeans_images(config))
        folder = image_folder(scratch, config.model.resolution, 1, images)
        return dry_tokenizer(config, folder, tokenizer_batch, images)
    if not isinstance(config, GeneratorTraining):
        raise ConfigError(f"a dry run trains image tokenizers and generators, not {type(config).__name__}")
    t = config.tokenizer
    generator_batch = per_process(config.batch_size, world_size, batch) * world_size
    tokenizer_batch = per_process(t.batch_size, world_size, batch) * world_size
    # the generator's two steps need their tokens; a tokenizer replica's epoch draws 1/n of the images
    images = max(DRY_STEPS * max(generator_batch, tokenizer_batch * t.independent_replicas), kmeans_images(t))
    classes = config.proxy_network.num_classes if config.proxy_network else 1
    folder = image_folder(scratch, t.model.resolution, classes, images)
    changes = {
        "tokenizer": dry_tokenizer(t, folder, tokenizer_batch, images),
        "batch_size": generator_batch,
        "max_steps": DRY_STEPS,
        "checkpoint_every": 1,
        "eval_samples": EVAL_SAMPLES,
        "sample_seeds": config.sample_seeds[:1],
        "max_pairs": EVAL_SAMPLES * (EVAL_SAMPLES - 1) // 2,
    }
    if config.proxy_network is not None:
        changes["proxy_network.epochs"] = 1
    return with_changes(config, changes)


@contextmanager
def perceptual_trunk(scratch: Path) -> Iterator[str]:
    """Where the VGG16 ImageNet weights are absent, a randomly initialised VGG16 trunk of the same shapes (written
    under scratch, named by $VQ_VGG16_WEIGHTS while the dry run lasts), so that the perceptual term's code and cost
    run; its values mean nothing and nothing is kept. Yields the note for the report ("" with the real weights)."""
    from replicate.metrics.image import LPIPS_TRUNKS, weights_file

    file_name, variable = LPIPS_TRUNKS["vgg"]
    found, _ = weights_file(None, variable, file_name)
    if found is not None:
        yield ""
        return
    from torchvision.models import vgg16

    path = scratch / file_name
    torch.save({k: v for k, v in vgg16(weights=None).state_dict().items() if k.startswith("features.")}, path)
    before = os.environ.get(variable)
    os.environ[variable] = str(path)
    try:
        yield "perceptual term on an untrained VGG16 (weights absent)"
    finally:
        if before is None:
            del os.environ[variable]
        else:
            os.environ[variable] = before


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def dry_run(
    experiment: Experiment,
    scale: str,
    configs: list,
    *,
    device: torch.device,
    batch: int | None = None,
    scratch: Path | None = None,
    report=print,
) -> list[DryRun]:
    """Dry-run `configs` of an experiment (module docstring); one line each through `report`. A failure raises."""
    world_size = distributed.setup(str(device)).world_size
    done = []
    with tempfile.TemporaryDirectory(prefix="vq-dry-run-", dir=scratch) as folder:
        scratch_folder = Path(folder)
        workspace = Workspace(device, scratch_folder / "runs")
        perceptual = any(perceptual_weight(c) > 0 for c in configs)
        trunk = perceptual_trunk(scratch_folder) if perceptual else nullcontext("")
        with trunk as note:
            for config in configs:
                done.append(dry_run_one(experiment, scale, config, workspace, scratch_folder, world_size, batch))
                if distributed.rank() == 0:
                    report(done[-1].line() + (f" ({note})" if note and perceptual_weight(config) > 0 else ""))
    return done


def perceptual_weight(config) -> float:
    return (config.tokenizer if isinstance(config, GeneratorTraining) else config).gan.perceptual_weight


def dry_run_one(
    experiment: Experiment, scale: str, config, workspace: Workspace, scratch: Path, world_size: int, batch: int | None
) -> DryRun:
    """One configuration's dry run (module docstring)."""
    device = workspace.device
    started = time.time()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    dry = dry_config(config, scratch, world_size, batch)
    resumes = 0
    while True:
        try:
            with preemption.stopping_fresh_runs():
                result = experiment.run(dry, workspace)
            break
        except preemption.ResumeCheck:  # the planned interruption: the next call resumes
            resumes += 1
            if resumes > RESUMES_AT_MOST:
                raise RuntimeError(f"{experiment.name}: the dry run did not finish after {resumes} resumes") from None
    absent = [m for m in experiment.metrics if m not in result.metrics]
    if absent:
        raise RuntimeError(f"{experiment.name}'s run gave no {absent}, which its Experiment.metrics lists")
    identity(experiment.name, scale, dry, experiment.data(dry))  # the row builds; it is not kept
    del result
    gc.collect()
    t = dry.tokenizer if isinstance(dry, GeneratorTraining) else dry
    seconds = time.time() - started
    return DryRun(
        experiment.name,
        label(config),
        dry.batch_size // world_size,
        t.model.resolution,
        resumes,
        seconds,
        peak_memory_bytes(device),
    )


def model_key(config) -> tuple:
    """What makes two configurations different models for a dry run: architecture, quantizer method, multi-scale
    quantizer, discriminator and schedule, and a generator's size; not K, the budget or the data."""
    if isinstance(config, GeneratorTraining):
        return (config.generator, config.depth, config.width, config.heads, model_key(config.tokenizer))
    return (config.model, config.method, config.scales, config.multiscale_quantizer, config.gan, config.schedule)


def distinct_models(configs: list) -> list:
    """One configuration per model_key, the one with the largest codebook (the most memory), in first-seen order."""
    chosen: dict[tuple, object] = {}
    for config in configs:
        key = model_key(config)
        t = config.tokenizer if isinstance(config, GeneratorTraining) else config
        if key not in chosen or t.K > (getattr(chosen[key], "tokenizer", None) or chosen[key]).K:
            chosen[key] = config
    return list(chosen.values())
