"""Evaluation of a trained token generator (train/generator.py): `eval_samples` generated images with balanced class
labels (the same for every arm), drawn once per seed of `sample_seeds`; each metric of the samples is the mean over
those draws, with its spread (`<metric>_std`, ddof 1) beside it. Deferred Quantization's diversity measure read
against the tokenizer's own ceiling, token usage beside the tokenizer's, g-FID where the Inception weights exist,
labelled proxies of fidelity otherwise, and a validity gate. "Test images" are `eval_samples` held-out images of the
tokenizer's test split, a fixed random choice (seed 0); "training images" as many of its training split (seed 0).

- pixel_distance: mean L2 distance between two generated images in [0, 1] (all pixels and channels) over
  `max_pairs` random pairs (all pairs when None; `pixel_pairs` says how many): our reading of V2's "Pixel Dist."
  (the paper states neither norm, range nor pair count; its 70-81 at 128 px fit this); pixel_mad255: a second
  reading, the per-pixel mean absolute difference on the 0-255 scale, on the same pairs (metrics/diversity.py);
- <reading>_real / _test / _recon: the same on the training images (the dataset's own reference), on the test
  images, and on the tokenizer's reconstructions of those test images: the ceiling, the most diversity its decoder
  gives real images (a blurring tokenizer lowers it, whatever the generator); <reading>_rel = <reading> / _recon
  per draw (metrics/diversity.relative_to_ceiling), the share of that ceiling the generator reaches;
- gen_utilization / gen_perplexity: U and C of the generated tokens; tok_utilization / tok_perplexity: of the
  training images' tokens, which the generator models;
- gfid: Fréchet distance of Inception pool features, generated vs the same number of training images (torch-fidelity's
  extractor, as the rFID of train/evaluate.py, and as published g-FIDs use the training set); NaN with `gfid_note`
  without the weights;
- proxy_*: with the proxy classifier of `proxy_network` (metrics/proxy.py, trained once per dataset and cached; its test
  accuracy is `proxy_accuracy`), its features' Fréchet distance, precision, recall, density, coverage and KID
  (proxy_kid: metrics/diversity.kernel_inception_distance), all against the TEST images (until issue 36 the Fréchet
  distance and PRDC read training images), the generated set's Vendi score, its Inception-Score analogue on the
  proxy's softmax (proxy_is) and the share of samples the proxy assigns to their conditioning label
  (proxy_class_accuracy, beside chance_accuracy = 1 / classes): never compared with a published number. NaN, with
  the reason in `proxy_note`, without a proxy;
- token_nll: the generator's held-out negative log-likelihood (nats per token) of the test images' tokens given
  their labels, by its own training loss in eval mode without label dropout or label smoothing: teacher-forced for
  VAR and the autoregressive model; for MaskGIT, whose loss draws a mask ratio per image, the masked-token NLL at a
  fixed ratio MASK_RATIO (ceil(N / 2) positions per grid, chosen uniformly from a stream seeded NLL_SEED);
  token_nll_unigram: the entropy of the training tokens' frequencies with add-one smoothing (nats), the NLL of a
  model that knows only how often each code occurs;
- generator_valid: 1.0 when token_nll < token_nll_unigram and, for a class-conditional generator (more than one
  class), proxy_class_accuracy (mean over the draws) > 2 x chance_accuracy; 0.0 when either fails; NaN when an input
  is NaN. `generator_valid_note` names the failed or missing condition ("" when valid). A diversity number of a
  generator that fails it measures noise, not a model.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from replicate.errors import ReplicateError
from replicate.metrics.codebook import perplexity
from replicate.metrics.diversity import (
    inception_score,
    kernel_inception_distance,
    pixel_distance,
    proxy_fidelity,
    relative_to_ceiling,
)
from replicate.metrics.image import RFIDAccumulator, load_inception
from replicate.metrics.proxy import ProxyClassifier, class_probabilities, features_of, train_proxy
from replicate.train.checkpoint import load_checkpoint, load_part, save_checkpoint
from replicate.train.generator import (
    GeneratorFolders,
    GeneratorTraining,
    batch_loss,
    build_generator,
    encode_tokens,
    extract_tokens,
    generate,
    proxy_key,
    token_usage,
)
from replicate.train.tokenizer import load_trained, plain_images

MASK_RATIO = 0.5  # issue 36: MaskGIT's held-out NLL at one fixed ratio (its training loss draws one per image)
NLL_SEED = 0  # the stream of MaskGIT's held-out masks (and of the unused label-dropout draws of the others)
PROXY_COLUMNS = ("proxy_frechet", "proxy_precision", "proxy_recall", "proxy_density", "proxy_coverage")
PROXY_COLUMNS += ("proxy_vendi", "proxy_kid", "proxy_is", "proxy_class_accuracy")
NAN = float("nan")


class Images(NamedTuple):
    images: Tensor  # (N, 3, H, W) in [-1, 1]
    labels: Tensor  # (N,) long


def balanced_labels(samples: int, num_classes: int) -> torch.Tensor:
    """0, 1, ..., num_classes - 1, 0, 1, ...: every class equally often, the same labels for every arm."""
    return torch.arange(samples) % num_classes


def real_images(config: GeneratorTraining, count: int, split: str = "train") -> Images:
    """`count` images of the tokenizer's dataset split (all when it has fewer) in [-1, 1] with their labels, a fixed
    random choice (seed 0)."""
    data = plain_images(config.tokenizer, split)
    chosen = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:count].tolist()
    return Images(torch.stack([data[i][0] for i in chosen]), torch.tensor([int(data[i][1]) for i in chosen]))


def trained_proxy(config: GeneratorTraining, device: str | torch.device, folder: Path):
    """(proxy network in eval mode, its test accuracy) for the tokenizer's dataset: trained on its training split
    (no augmentation) the first time, then read back from folder/proxy.pt (GeneratorFolders.proxy)."""
    t = config.tokenizer
    key = proxy_key(config)
    model = ProxyClassifier(config.proxy_network)
    state = load_checkpoint(folder / "proxy.pt")
    if state is None or state["key"] != key:
        with torch.enable_grad():  # also when called under no_grad (evaluate_generator)
            trained = train_proxy(config.proxy_network, plain_images(t, "train"), plain_images(t, "test"), device)
        state = {"key": key, "model": trained.model.cpu().state_dict(), "accuracy": trained.test_accuracy}
        save_checkpoint(folder / "proxy.pt", state)
    load_part(model, state, "model", folder)
    return model.to(device).eval(), state["accuracy"]


def trained_generator(
    config: GeneratorTraining, folders: GeneratorFolders, num_classes: int, device
) -> torch.nn.Module:
    """The generator of a finished (or checkpointed) run, in eval mode on `device`."""
    state = load_checkpoint(folders.generator / "checkpoint.pt")
    if state is None:
        raise ReplicateError(f"no checkpoint in {folders.generator}: train the generator first")
    model = build_generator(config, num_classes)
    load_part(model, state, "model", folders.generator)
    return model.to(device).eval()


class _Conditional:
    """A generator as its training loss reads it, with neither label dropout nor label smoothing: the loss is then
    the negative log-likelihood of the tokens given their true labels."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        changes = {"label_dropout": 0.0}
        if hasattr(model.config, "label_smoothing"):
            changes["label_smoothing"] = 0.0
        self.config = dataclasses.replace(model.config, **changes)

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


def masked_nll(model, tokens: Tensor, labels: Tensor, generator: torch.Generator) -> tuple[Tensor, int]:
    """(sum of NLL, count) of the tokens at ceil(MASK_RATIO N) positions of each grid (B, N), chosen uniformly
    (the lowest ranks of uniform scores, as maskgit.random_mask), the rest given: MaskGIT's loss at a fixed ratio."""
    batch, n = tokens.shape
    ranks = torch.rand(batch, n, generator=generator, device=tokens.device).argsort(1).argsort(1)
    mask = ranks < math.ceil(MASK_RATIO * n)
    logits = model(tokens.masked_fill(mask, model.mask_id), labels, at=mask)
    return F.cross_entropy(logits.double(), tokens[mask], reduction="sum"), int(mask.sum())


@torch.no_grad()
def held_out_nll(config: GeneratorTraining, model, tokens: Tensor, labels: Tensor, quantizer) -> float:
    """Mean NLL (nats per token) of a generator in eval mode on (N, L) tokens given their labels, sample_batch
    images at a time (module docstring: teacher-forced, or masked at MASK_RATIO for MaskGIT)."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(NLL_SEED)
    total, count = 0.0, 0
    for batch, batch_labels in zip(tokens.split(config.sample_batch), labels.split(config.sample_batch), strict=True):
        batch, batch_labels = batch.to(device), batch_labels.to(device)
        if config.generator == "maskgit":
            nll, n = masked_nll(model, batch, batch_labels, generator)
        else:  # the training loss's mean over the batch's tokens, times their number
            loss, _ = batch_loss(config, _Conditional(model), batch, batch_labels, quantizer, generator)
            nll, n = loss.double() * batch.numel(), batch.numel()
        total, count = total + float(nll), count + n
    return total / count


def unigram_entropy(tokens: Tensor, K: int) -> float:
    """Entropy (nats) of the K codes' frequencies in `tokens`, each count plus one (add-one smoothing)."""
    return math.log(perplexity(torch.bincount(tokens.reshape(-1).cpu(), minlength=K) + 1))


def generator_validity(token_nll: float, unigram: float, class_accuracy: float, num_classes: int) -> tuple[float, str]:
    """(1.0 / 0.0 / NaN, note): the module docstring's gate; the note names each failed condition, or the missing
    input when it cannot be decided."""
    conditional = num_classes > 1
    chance = 1 / num_classes
    failed, missing = [], []
    if math.isnan(token_nll) or math.isnan(unigram):
        missing.append("no token NLL")
    elif token_nll >= unigram:
        failed.append(f"token_nll {token_nll:.4g} >= unigram {unigram:.4g}")
    if conditional and math.isnan(class_accuracy):
        missing.append("no proxy class accuracy")
    elif conditional and class_accuracy <= 2 * chance:
        failed.append(f"proxy_class_accuracy {class_accuracy:.4g} <= 2 x chance {chance:.4g}")
    if failed:
        return 0.0, "invalid: " + "; ".join(failed)
    if missing:
        return NAN, "not decided: " + "; ".join(missing)
    return 1.0, ""


def pixel_readings(images: Tensor, max_pairs: int | None, seed: int) -> tuple[dict[str, float], int]:
    """({"pixel_distance", "pixel_mad255"}, pairs) of images in [-1, 1], both readings on the same pairs (two
    generators seeded alike)."""
    unit = (images + 1) / 2
    l2 = pixel_distance(unit, max_pairs=max_pairs, generator=torch.Generator().manual_seed(seed))
    mad = pixel_distance(unit, max_pairs=max_pairs, generator=torch.Generator().manual_seed(seed), reading="mad255")
    return {"pixel_distance": l2.mean, "pixel_mad255": mad.mean}, l2.pairs


@torch.no_grad()
def tokenized(tokenizer, images: Tensor, batch: int) -> tuple[Tensor, Tensor]:
    """(reconstructions clamped to [-1, 1] as generate decodes, tokens as extract_tokens encodes) of images, on the
    CPU, `batch` at a time."""
    device = next(tokenizer.parameters()).device
    reconstructions, tokens = [], []
    for chunk in images.split(batch):
        chunk = chunk.to(device)
        reconstructions.append(tokenizer(chunk).reconstructions.clamp(-1, 1).cpu())
        tokens.append(encode_tokens(tokenizer, chunk).cpu())
    return torch.cat(reconstructions), torch.cat(tokens)


def proxy_readings(proxy, test_features: Tensor, fake: Tensor, labels: Tensor, seed: int) -> dict[str, float]:
    """PROXY_COLUMNS of one draw of generated images (conditioned on `labels`, balanced_labels of the data's classes)
    against the test images' features; proxy_class_accuracy NaN when the proxy has fewer classes than the labels."""
    features = features_of(proxy, fake, batch_size=256)
    probabilities = class_probabilities(proxy, features)
    readings = proxy_fidelity(test_features, features)
    kid_subsets = torch.Generator().manual_seed(seed)
    readings["proxy_kid"] = kernel_inception_distance(test_features, features, generator=kid_subsets)
    readings["proxy_is"] = inception_score(probabilities)
    readings["proxy_class_accuracy"] = NAN
    if probabilities.shape[1] > int(labels.max()):
        readings["proxy_class_accuracy"] = float((probabilities.argmax(1) == labels).double().mean())
    return readings


def _mean_and_spread(draws: list[dict]) -> dict:
    """Each numeric metric's mean over the draws and its std (ddof 1; NaN for one draw) as `<metric>_std`."""
    row = {}
    for name in draws[0]:
        values = np.array([draw[name] for draw in draws], dtype=float)
        row[name] = float(values.mean())
        row[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return row


def _references(config: GeneratorTraining, folders: GeneratorFolders, tokens, device) -> tuple[dict, Images, Images]:
    """(the row's columns that do not depend on a sampling seed, the training images, the test images): the pixel
    readings of the training and test images and of the tokenizer's reconstructions of the test images, the token
    NLLs on the test images' tokens, the training tokens' usage (`tokens`: extract_tokens) and chance."""
    train, test = real_images(config, config.eval_samples), real_images(config, config.eval_samples, "test")
    tokenizer = load_trained(config.tokenizer, folders.tokenizer).to(device)
    reconstructions, test_tokens = tokenized(tokenizer, test.images, config.sample_batch)
    row = {}
    for name, images in (("real", train.images), ("test", test.images), ("recon", reconstructions)):
        readings, pairs = pixel_readings(images, config.max_pairs, config.seed)
        row |= {f"{reading}_{name}": value for reading, value in readings.items()}
        row.setdefault("pixel_pairs", pairs)  # the training images' count: as many as the samples
    model = trained_generator(config, folders, tokens.num_classes, device)
    quantizer = tokenizer.quantizer if config.generator == "var" else None
    row["token_nll"] = held_out_nll(config, model, test_tokens, test.labels, quantizer)
    row["token_nll_unigram"] = unigram_entropy(tokens.tokens, config.tokenizer.K)
    row |= {f"tok_{k}": v for k, v in token_usage(tokens.tokens, config.tokenizer.K).items()}
    row["chance_accuracy"] = 1 / tokens.num_classes
    return row, train, test


@torch.no_grad()
def evaluate_generator(
    config: GeneratorTraining,
    folders: GeneratorFolders,
    device: str | torch.device,
    proxy: ProxyClassifier | None = None,
) -> dict:
    """One result row of a trained generator (module docstring); `proxy` overrides the trained proxy (tests)."""
    samples, tokens = config.eval_samples, extract_tokens(config, folders, device)
    row, train, test = _references(config, folders, tokens, device)
    inception, reason = load_inception()
    row["gfid_note"] = "" if inception is not None else reason
    row["proxy_accuracy"], row["proxy_note"] = NAN, ""
    if proxy is None and config.proxy_network is not None:
        proxy, row["proxy_accuracy"] = trained_proxy(config, device, folders.proxy)
    if proxy is None:
        row["proxy_note"] = "not computed: no proxy_network in the configuration"
    test_features = features_of(proxy, test.images, batch_size=256) if proxy is not None else None
    labels = balanced_labels(samples, tokens.num_classes)
    draws = []
    for seed in config.sample_seeds:
        generated = generate(config, folders, labels, device, seed)
        fake = generated.images.cpu()
        draw, _ = pixel_readings(fake, config.max_pairs, seed)
        for reading in ("pixel_distance", "pixel_mad255"):
            draw[f"{reading}_rel"] = relative_to_ceiling(draw[reading], row[f"{reading}_recon"])
        draw |= {f"gen_{k}": v for k, v in token_usage(generated.tokens, config.tokenizer.K).items()}
        draw["gfid"] = NAN
        if inception is not None:
            fid = RFIDAccumulator(inception)
            for start in range(0, samples, 100):
                fid.add(fake[start : start + 100], train.images[start : start + 100])
            draw["gfid"] = fid.result()
        draw |= dict.fromkeys(PROXY_COLUMNS, NAN)
        if proxy is not None:
            draw |= proxy_readings(proxy, test_features, fake, labels, seed)
        draws.append(draw)
    row |= _mean_and_spread(draws)
    if proxy is not None and math.isnan(row["proxy_class_accuracy"]):
        row["proxy_note"] = "proxy_class_accuracy not computed: the proxy has fewer classes than the data"
    inputs = (row["token_nll"], row["token_nll_unigram"], row["proxy_class_accuracy"], tokens.num_classes)
    row["generator_valid"], row["generator_valid_note"] = generator_validity(*inputs)
    return row
