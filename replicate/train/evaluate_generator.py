"""Evaluation of a trained token generator (train/generator.py): `eval_samples` generated images with balanced class
labels (the same for every arm), drawn once per seed of `sample_seeds`; each metric is the mean over those draws,
with its spread (`<metric>_std`, ddof 1) beside it. Deferred Quantization's diversity measure, token usage beside
the tokenizer's, g-FID where the Inception weights exist, and a labelled proxy of fidelity otherwise.

- pixel_distance: mean L2 distance between two generated images in [0, 1] (all pixels and channels) over
  `max_pairs` random pairs (all pairs when None; `pixel_pairs` says how many): our reading of V2's "Pixel Dist."
  (the paper states neither norm, range nor pair count; its 70-81 at 128 px fit this); pixel_distance_real is the
  same on as many training images, the reference of the dataset itself;
- gen_utilization / gen_perplexity: U and C of the generated tokens; tok_utilization / tok_perplexity: of the
  training images' tokens, which the generator models;
- gfid: Fréchet distance of Inception pool features, generated vs the same number of training images (torch-fidelity's
  extractor, as the rFID of train/evaluate.py); NaN with `gfid_note` without the weights;
- proxy_*: with the proxy classifier of `proxy_network` (metrics/proxy.py, trained once per dataset and cached; its test
  accuracy is `proxy_accuracy`), its features' Fréchet distance, precision, recall, density, coverage and the generated
  set's Vendi score (metrics/diversity.py): never compared with a published number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from replicate.metrics.diversity import pixel_distance, proxy_fidelity
from replicate.metrics.image import RFIDAccumulator, load_inception
from replicate.metrics.proxy import ProxyClassifier, features_of, train_proxy
from replicate.train.checkpoint import load_checkpoint, load_part, save_checkpoint
from replicate.train.generator import (
    GeneratorFolders,
    GeneratorTraining,
    extract_tokens,
    generate,
    proxy_key,
    token_usage,
)
from replicate.train.tokenizer import plain_images


def balanced_labels(samples: int, num_classes: int) -> torch.Tensor:
    """0, 1, ..., num_classes - 1, 0, 1, ...: every class equally often, the same labels for every arm."""
    return torch.arange(samples) % num_classes


def real_images(config: GeneratorTraining, count: int) -> torch.Tensor:
    """`count` training images of the tokenizer's dataset in [-1, 1], a fixed random choice (seed 0)."""
    data = plain_images(config.tokenizer, "train")
    chosen = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:count].tolist()
    return torch.stack([data[i][0] for i in chosen])


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


def _mean_and_spread(draws: list[dict]) -> dict:
    """Each numeric metric's mean over the draws and its std (ddof 1; NaN for one draw) as `<metric>_std`."""
    row = {}
    for name in draws[0]:
        values = np.array([draw[name] for draw in draws], dtype=float)
        row[name] = float(values.mean())
        row[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return row


@torch.no_grad()
def evaluate_generator(
    config: GeneratorTraining,
    folders: GeneratorFolders,
    device: str | torch.device,
    proxy: ProxyClassifier | None = None,
) -> dict:
    """One result row of a trained generator (module docstring); `proxy` overrides the trained proxy (tests)."""
    samples = config.eval_samples
    tokens = extract_tokens(config, folders, device)
    real = real_images(config, samples)
    pairs = torch.Generator().manual_seed(config.seed)
    reference = pixel_distance((real + 1) / 2, max_pairs=config.max_pairs, generator=pairs)
    row = {"pixel_pairs": reference.pairs, "pixel_distance_real": reference.mean}
    row |= {f"tok_{k}": v for k, v in token_usage(tokens.tokens, config.tokenizer.K).items()}
    inception, reason = load_inception()
    row["gfid_note"] = "" if inception is not None else reason
    if proxy is None and config.proxy_network is not None:
        proxy, row["proxy_accuracy"] = trained_proxy(config, device, folders.proxy)
    real_features = features_of(proxy, real, batch_size=256) if proxy is not None else None
    draws = []
    for seed in config.sample_seeds:
        generated = generate(config, folders, balanced_labels(samples, tokens.num_classes), device, seed)
        fake = generated.images.cpu()
        pairs = torch.Generator().manual_seed(seed)
        draw = {"pixel_distance": pixel_distance((fake + 1) / 2, max_pairs=config.max_pairs, generator=pairs).mean}
        draw |= {f"gen_{k}": v for k, v in token_usage(generated.tokens, config.tokenizer.K).items()}
        draw["gfid"] = float("nan")
        if inception is not None:
            fid = RFIDAccumulator(inception)
            for start in range(0, samples, 100):
                fid.add(fake[start : start + 100], real[start : start + 100])
            draw["gfid"] = fid.result()
        if proxy is not None:
            draw |= proxy_fidelity(real_features, features_of(proxy, fake, batch_size=256))
        draws.append(draw)
    return row | _mean_and_spread(draws)
