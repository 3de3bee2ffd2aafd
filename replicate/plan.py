"""`python -m replicate plan`: what a run will do and cost before it starts, per experiment: the configurations still
to run (not in the result table), whether their data and weights are here, and for the image pipelines the steps,
the FLOPs of one training step, the GPU-hours those steps take at a stated sustained throughput and an estimate of
the memory one GPU needs at the configuration's batch. Nothing is trained or allocated: models are built on torch's
meta device and their FLOPs counted by torch's FLOP counter.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

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

    classes = config.proxy_network.num_classes  # the data's classes (its proxy classifier's)
    model_config = config.model_config(classes)
    with torch.device("meta"):
        model = build_generator(config, classes)
        labels = torch.zeros(config.batch_size, dtype=torch.long)
        if config.generator == "maskgit":
            inputs = torch.zeros(config.batch_size, model_config.tokens, dtype=torch.long)
        else:
            length = tokens(config.tokenizer.scales) - config.tokenizer.scales[0] ** 2
            inputs = torch.empty(config.batch_size, length, config.tokenizer.model.d)
        flops, activations = counted(model, inputs, labels)
    parameters = sum(p.numel() for p in model.parameters())
    return Cost(_steps(config.tokenizer, config.batch_size, config.epochs), 3 * flops, parameters, activations)


def _steps(config: TokenizerTraining, batch: int, epochs: int | None = None) -> int | None:
    images = config.max_train_images or TRAIN_IMAGES.get(config.dataset)
    if images is None:
        return None
    return (config.total_epochs if epochs is None else epochs) * (images // batch)


def config_costs(config) -> list[Cost]:
    """The trainings a configuration runs: a generator's tokenizer, then the generator; a tokenizer; none for a
    synthetic study (its cost is measured, README), not counted."""
    if isinstance(config, GeneratorTraining):
        return [tokenizer_cost(config.tokenizer), generator_cost(config)]
    if isinstance(config, TokenizerTraining):
        return [tokenizer_cost(config)]
    return []


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


def plan_lines(experiment: Experiment, scale: str, tables: Path = TABLES, tflops: float = SUSTAINED_TFLOPS) -> str:
    """The plan of one experiment at one scale, a few lines."""
    configs = experiment.configs(scale)
    done = read_results(experiment, result_path(experiment.name, scale, tables))
    finished = set() if done is None else set(done["config_id"])
    todo = [c for c in configs if config_id(c) not in finished]
    lines = [f"{experiment.name} [{scale}]: {len(todo)} of {len(configs)} configuration(s) to run"]
    if not configs:
        return lines[0] + " (none at this scale)"
    lines.append(f"  data and weights: {data_status(experiment, scale, todo or configs)}")
    costs = [cost for c in todo for cost in config_costs(c)]
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
    return "\n".join(lines)
