"""`python -m replicate plan`: what a run will do and cost before it starts, per experiment: the configurations still
to run (not in the result table), whether their data and weights are here, and for the image pipelines the steps,
the FLOPs of one training step, the GPU-hours those steps take at a stated sustained throughput and an estimate of
the memory one GPU needs at the configuration's batch. Nothing is trained or allocated: models are built on torch's
meta device and their FLOPs counted by torch's FLOP counter.

`plan --probe` also measures, on this machine, the seconds of one training step of each distinct model of the
selection (dry_run.distinct_models): two real steps of the training code's own train_step at the configuration's
full batch and resolution on random inputs, the second timed (the first allocates and picks cuDNN's algorithms).
Not the dry run itself: its seconds include image writing, evaluation and a resume, not a step's cost.
"""

from __future__ import annotations

import dataclasses
import gc
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from replicate import distributed
from replicate.configs import GeneratorTraining, TokenizerTraining
from replicate.errors import MissingDataError
from replicate.quantize.multiscale import tokens
from replicate.results import TABLES, config_id, read_results, result_path
from replicate.spec import Experiment

SUSTAINED_TFLOPS = 100.0  # assumed per GPU (--tflops): ~1/4 of an H100's dense TF32 peak, ~1/3 of an A100's bf16
# Training images of the full datasets, for planning before they are here (their papers / dataset cards; ImageNet-100
# and ODIR-5K as data/images.py splits them: 126,689 training images less 25,000 held out; 70% of 6,392 images)
TRAIN_IMAGES = {"cifar10": 50_000, "svhn": 73_257, "ffhq": 70_000, "imagenet": 1_281_167}
TRAIN_IMAGES |= {"imagenet100": 101_689, "odir": 4_474}
ADAM_BYTES = 16  # fp32 parameter, gradient and Adam's two moments
PROBE_STEPS = 2  # training steps run by --probe; the last one is timed


@dataclasses.dataclass
class Cost:
    """One configuration's training: steps, FLOPs a step (forward and backward), parameters, activation bytes."""

    steps: int | None
    step_flops: float
    parameters: int
    activation_bytes: int

    @property
    def memory_bytes(self) -> int:
        return self.parameters * ADAM_BYTES + self.activation_bytes


def counted(module: torch.nn.Module, *inputs) -> tuple[float, int]:
    """(forward FLOPs, bytes of every leaf module's float output) of module(*inputs) on meta tensors."""
    outputs = []

    def keep(_, __, output):
        for tensor in output if isinstance(output, tuple) else (output,):
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                outputs.append(tensor.numel() * tensor.element_size())

    leaves = [m for m in module.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(keep) for m in leaves]
    try:
        with FlopCounterMode(display=False) as counter:
            module(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return float(counter.get_total_flops()), sum(outputs)


class _Autoencoder(torch.nn.Module):
    """Encoder, 1 x 1 convolutions and decoder of a tokenizer without its quantizer (whose search is counted apart)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, images):
        latents = self.model.quant_conv(self.model.encoder(images))
        return self.model.decoder(self.model.post_quant_conv(latents))


def tokenizer_cost(config: TokenizerTraining) -> Cost:
    """A tokenizer step: 3 x the forward of encoder and decoder (forward + backward), the discriminator's forward on
    both batches where it is on, and the nearest-code distances, 2 N K d for the N vectors searched (all scales')."""
    from replicate.models.discriminator import PatchGANConfig, PatchGANDiscriminator
    from replicate.train.tokenizer import build_model

    resolution, batch = config.model.resolution, config.batch_size
    with torch.device("meta"):
        model = build_model(config)
        images = torch.empty(batch, 3, resolution, resolution)
        flops, activations = counted(_Autoencoder(model), images)
        flops *= 3
        if config.gan.disc_weight > 0:
            discriminator_flops, discriminator_bytes = counted(PatchGANDiscriminator(PatchGANConfig()), images)
            flops, activations = flops + 6 * discriminator_flops, activations + 2 * discriminator_bytes
    side = config.model.latent_resolution
    searched = batch * (tokens(config.scales) if config.scales else side * side)
    flops += 2 * searched * config.K * config.model.d
    parameters = sum(p.numel() for p in model.parameters())
    return Cost(_steps(config, batch), flops, parameters, activations)


def generator_cost(config: GeneratorTraining) -> Cost:
    """A generator step: 3 x the transformer's forward on a batch of token sequences (its tokenizer's training is
    a cost of its own, config_costs)."""
    from replicate.train.generator import build_generator

    classes = num_classes(config)
    model_config = config.model_config(classes)
    with torch.device("meta"):
        model = build_generator(config, classes)
        labels = torch.zeros(config.batch_size, dtype=torch.long)
        if config.generator != "var":  # maskgit and the autoregressive model read a token grid
            inputs = torch.zeros(config.batch_size, model_config.tokens, dtype=torch.long)
        else:
            length = tokens(config.tokenizer.scales) - config.tokenizer.scales[0] ** 2
            inputs = torch.empty(config.batch_size, length, config.tokenizer.model.d)
        flops, activations = counted(model, inputs, labels)
    parameters = sum(p.numel() for p in model.parameters())
    return Cost(_steps(config.tokenizer, config.batch_size, config.epochs), 3 * flops, parameters, activations)


def num_classes(config: GeneratorTraining) -> int:
    """The classes a generator is conditioned on: its data's, i.e. its proxy classifier's (1 without one)."""
    return config.proxy_network.num_classes if config.proxy_network else 1


def _steps(config: TokenizerTraining, batch: int, epochs: int | None = None) -> int | None:
    """Training steps over the tokenizer's images: its own (an epoch of a rank-0 replica draws 1/n of them,
    train/loop.py), or a generator's `epochs` over all of them."""
    images = config.max_train_images or TRAIN_IMAGES.get(config.dataset)
    if images is None:
        return None
    if epochs is None:
        return config.total_epochs * (-(-images // config.independent_replicas) // batch)
    return epochs * (images // batch)


def config_costs(config) -> list[Cost]:
    """The trainings a configuration runs: a generator's tokenizer, then the generator; a tokenizer; none for a
    synthetic study (its cost is measured, README), not counted."""
    if isinstance(config, GeneratorTraining):
        return [tokenizer_cost(config.tokenizer), generator_cost(config)]
    if isinstance(config, TokenizerTraining):
        return [tokenizer_cost(config)]
    return []


def tokenizer_step(config: TokenizerTraining, device: torch.device) -> Callable[[], object]:
    """One real tokenizer update (train/tokenizer.py train_step) on a random batch at the full batch and resolution,
    quantizing and with the discriminator's term on where there is one: a run's steady step."""
    from replicate.train.gan import build_objective
    from replicate.train.tokenizer import build_model, build_optimizer, train_step

    torch.manual_seed(config.seed)
    objective = build_objective(config, distributed.Context(0, 1, device))
    model = build_model(config).to(device).train()
    optimizer = build_optimizer(model, config)
    side = config.model.resolution
    images = torch.rand(config.batch_size, 3, side, side, device=device) * 2 - 1
    epoch = max(1, config.gan.disc_start_epoch)  # from this 1-based epoch on the discriminator counts (gan.py)
    return lambda: train_step(model, model, optimizer, images, config, 0, True, objective, epoch=epoch)


def generator_step(config: GeneratorTraining, device: torch.device) -> Callable[[], object]:
    """One real generator update (train/generator.py train_step) on random tokens and labels at the full batch;
    VAR's teacher forcing reads an untrained tokenizer's quantizer of the same shapes."""
    from replicate.train.generator import build_generator, train_step
    from replicate.train.tokenizer import build_model

    torch.manual_seed(config.seed)
    classes, optim = num_classes(config), config.optim
    model = build_generator(config, classes).to(device).train()
    optimizer = torch.optim.AdamW(  # as train_generator's
        model.parameters(), lr=optim.lr, betas=optim.adam_betas, weight_decay=optim.weight_decay
    )
    quantizer = build_model(config.tokenizer).quantizer.to(device).eval() if config.generator == "var" else None
    tokens = torch.randint(config.tokenizer.K, (config.batch_size, config.tokens_per_image), device=device)
    labels = torch.randint(classes, (config.batch_size,), device=device)
    context = distributed.Context(0, 1, device)
    return lambda: train_step(config, model, optimizer, tokens, labels, quantizer, 0, context)


def step_builders(config) -> list[tuple[str, Callable]]:
    """(name, builder(config, device) -> step) of each training of an image configuration, in config_costs' order."""
    if isinstance(config, GeneratorTraining):
        return [("its tokenizer", lambda c, d: tokenizer_step(c.tokenizer, d)), ("generator", generator_step)]
    return [("tokenizer", tokenizer_step)]


def seconds_a_step(step: Callable[[], object], device: torch.device) -> float:
    """The seconds of the last of PROBE_STEPS calls of `step` (the first ones allocate and warm up)."""
    for _ in range(PROBE_STEPS - 1):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def probe(config, device: torch.device) -> list[float | None]:
    """Measured seconds a step of each training of a configuration (None: out of the GPU's memory)."""
    seconds = []
    for _, build in step_builders(config):
        try:
            seconds.append(seconds_a_step(build(config, device), device))
        except torch.cuda.OutOfMemoryError:
            seconds.append(None)
        gc.collect()  # the model, its optimizer and batch go before the next one is built
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return seconds


def probe_lines(planned: list[tuple[object, list[Cost]]], scale: str, device: torch.device) -> list[str]:
    """--probe: the measured seconds a step of each distinct model beside its FLOPs, then the hours every planned
    step takes on this machine at those speeds (each configuration at its model's, probed at the largest K)."""
    from replicate.dry_run import distinct_models, label, model_key, perceptual_trunk, perceptual_weight

    costs_of = {id(config): costs for config, costs in planned}
    models = distinct_models([c for c, costs in planned if costs])
    lines = [f"  probe on {device}: {PROBE_STEPS} steps at the full batch and size, the last timed"]
    measured = {}
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    distributed.set_tf32(scale == "paper")  # as a run's default (runner.run_experiment)
    try:
        with tempfile.TemporaryDirectory(prefix="vq-probe-") as scratch:
            perceptual = any(perceptual_weight(c) > 0 for c in models)
            with perceptual_trunk(Path(scratch)) if perceptual else nullcontext("") as note:
                for config in models:
                    measured[model_key(config)] = probe(config, device)
                    parts = zip(step_builders(config), costs_of[id(config)], measured[model_key(config)], strict=True)
                    for (part, _), cost, seconds in parts:
                        lines.append(f"    {_speed(cost, seconds)}  {label(config)} ({part})")
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    hours, steps, left_out = 0.0, 0, 0
    for config, costs in planned:
        for cost, seconds in zip(costs, measured.get(model_key(config), []), strict=False):
            if cost.steps is None or seconds is None:
                left_out += 1
                continue
            hours, steps = hours + cost.steps * seconds / 3600, steps + cost.steps
    left = f"; {left_out} training(s) of unknown size or out of memory left out" if left_out else ""
    extra = f"; {note}" if note else ""
    lines.append(
        f"  at the probed speeds: {hours:,.2f} hours on this {device.type} for the {steps:,} steps{left}{extra}"
    )
    return lines


def _speed(cost: Cost, seconds: float | None) -> str:
    if seconds is None:
        return "out of memory"
    return f"{seconds:.4g} s/step ({cost.step_flops / seconds / 1e12:.3g} TFLOP/s)"


def data_status(experiment: Experiment, scale: str, configs: list) -> str:
    """ "found", or why not and what fixes it (the reason the run itself would give)."""
    from replicate.runner import check_data

    reason = experiment.missing(scale) if experiment.missing else None
    if reason:
        return reason
    try:
        check_data(configs)
    except MissingDataError as error:
        return str(error)
    return "found"


def plan_lines(
    experiment: Experiment,
    scale: str,
    tables: Path = TABLES,
    tflops: float = SUSTAINED_TFLOPS,
    probe_on: torch.device | None = None,
    overrides: dict[str, str] | None = None,
    where: dict[str, str] | None = None,
) -> str:
    """The plan of one experiment at one scale, a few lines, for the configurations `run` would take with the same
    --set and --where; with probe_on, the step times measured there."""
    from replicate.runner import resolve_configs

    configs = resolve_configs(experiment, scale, overrides, where)
    done = read_results(experiment, result_path(experiment.name, scale, tables))
    finished = set() if done is None else set(done["config_id"])
    todo = [c for c in configs if config_id(c) not in finished]
    lines = [f"{experiment.name} [{scale}]: {len(todo)} of {len(configs)} configuration(s) to run"]
    if not configs:
        return lines[0] + " (none at this scale)"
    lines.append(f"  data and weights: {data_status(experiment, scale, todo or configs)}")
    planned = [(c, config_costs(c)) for c in todo]
    costs = [cost for _, config_cost in planned for cost in config_cost]
    if costs:
        total = sum((c.steps or 0) * c.step_flops for c in costs)
        unknown = sum(c.steps is None for c in costs)
        largest = max(costs, key=lambda c: c.memory_bytes)
        lines.append(
            f"  {sum(c.steps or 0 for c in costs):,} steps, {max(c.step_flops for c in costs) / 1e12:.3g} TFLOP a step "
            f"at most, {total / 1e18:.3g} EFLOP: {total / (tflops * 1e12) / 3600:,.1f} GPU-hours at {tflops:g} "
            f"TFLOP/s sustained" + (f" ({unknown} configuration(s) of unknown size left out)" if unknown else "")
        )
        lines.append(
            f"  memory at the full batch on one GPU, estimated: {largest.memory_bytes / 2**30:,.1f} GiB "
            f"({largest.parameters / 1e6:,.1f} M parameters with gradients and Adam, every layer's activations; "
            "the activations divide among the GPUs that share the batch)"
        )
        if probe_on is not None:
            lines += probe_lines(planned, scale, probe_on)
    return "\n".join(lines)
