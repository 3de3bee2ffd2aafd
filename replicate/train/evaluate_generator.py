"""Evaluation of a trained token generator (train/generator.py) on `samples` generated images, with balanced class
labels (the same for every arm): Deferred Quantization's diversity measure, token usage beside the tokenizer's,
g-FID where the Inception weights exist, and a labelled proxy of fidelity otherwise.

- pixel_distance: mean L2 distance between two generated images in [0, 1] (all pixels and channels) over
  `max_pairs` random pairs (all pairs when None): our reading of V2's "Pixel Dist." (the paper states neither norm,
  range nor pair count; its 70-81 at 128 px fit this); pixel_distance_real is the same on as many training
  images, the reference of the dataset itself;
- gen_utilization / gen_perplexity: U and C of the generated tokens; tok_utilization / tok_perplexity: of the
  training images' tokens, which the generator models;
- gfid: Fréchet distance of Inception pool features, generated vs the same number of training images (torch-fidelity's
  extractor, as the rFID of train/evaluate.py); NaN with `gfid_note` without the weights;
- proxy_*: with a proxy classifier trained in the project (metrics/proxy.py), its features' Fréchet distance,
  precision, recall, density, coverage and the generated set's Vendi score (metrics/diversity.py): never compared
  with a published number.
"""

from __future__ import annotations

from pathlib import Path

import torch

from replicate.metrics.diversity import pixel_distance, proxy_fidelity
from replicate.metrics.image import RFIDAccumulator, load_inception
from replicate.metrics.proxy import ProxyClassifier, features_of
from replicate.train.generator import GeneratorTraining, extract_tokens, generate, token_usage
from replicate.train.tokenizer import plain_images


def balanced_labels(samples: int, num_classes: int) -> torch.Tensor:
    """0, 1, ..., num_classes - 1, 0, 1, ...: every class equally often, the same labels for every arm."""
    return torch.arange(samples) % num_classes


def real_images(config: GeneratorTraining, count: int) -> torch.Tensor:
    """`count` training images of the tokenizer's dataset in [-1, 1], a fixed random choice (seed 0)."""
    data = plain_images(config.tokenizer, "train")
    chosen = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:count].tolist()
    return torch.stack([data[i][0] for i in chosen])


@torch.no_grad()
def evaluate_generator(
    config: GeneratorTraining,
    run_dir: Path,
    *,
    samples: int,
    max_pairs: int | None,
    device: str | torch.device,
    proxy: ProxyClassifier | None = None,
) -> dict:
    """One result row of a trained generator (module docstring)."""
    tokens = extract_tokens(config, device, run_dir)
    generated = generate(config, run_dir, balanced_labels(samples, tokens.num_classes), device)
    fake = generated.images.cpu()
    real = real_images(config, samples)
    pairs = torch.Generator().manual_seed(config.seed)
    row = {
        "samples": samples,
        "pixel_distance": pixel_distance((fake + 1) / 2, max_pairs=max_pairs, generator=pairs).mean,
        "pixel_distance_real": pixel_distance((real + 1) / 2, max_pairs=max_pairs, generator=pairs).mean,
    }
    K = config.tokenizer.K
    row |= {f"gen_{k}": v for k, v in token_usage(generated.tokens, K).items()}
    row |= {f"tok_{k}": v for k, v in token_usage(tokens.tokens, K).items()}
    inception, reason = load_inception()
    if inception is not None:
        fid = RFIDAccumulator(inception)
        for start in range(0, samples, 100):
            fid.add(fake[start : start + 100], real[start : start + 100])
        row["gfid"], row["gfid_note"] = fid.result(), ""
    else:
        row["gfid"], row["gfid_note"] = float("nan"), reason
    if proxy is not None:
        row |= proxy_fidelity(features_of(proxy, real, batch_size=256), features_of(proxy, fake, batch_size=256))
    return row
