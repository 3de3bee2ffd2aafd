"""`run --dry-run` (replicate/dry_run.py): two steps of every selected image configuration at full size on
generated images, an evaluation, a checkpoint resumed, nothing written. The `dryrun` marker runs every distinct
paper-scale model (CI runs it after the slow set)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from replicate.configs import GeneratorTraining, TokenizerTraining
from replicate.dry_run import TEST_IMAGES, distinct_models, dry_config, dry_run, image_folder, label, model_key
from replicate.registry import EXPERIMENTS
from replicate.results import ROOT

CPU = torch.device("cpu")


def test_dry_config_keeps_the_model_and_batch_and_replaces_data_and_budget(tmp_path):
    paper = EXPERIMENTS["wvq_table1"].configs("paper")[0]
    dry = dry_config(paper, tmp_path, world_size=4)
    assert dry.model == paper.model and dry.K == paper.K and dry.quantizer == paper.quantizer
    assert dry.batch_size == paper.batch_size  # four processes at the per-GPU batch
    assert (dry.dataset, dry.max_steps) == ("folder", 2)
    assert dry.max_train_images == 2 * paper.batch_size
    assert len(list((tmp_path / dry.data_root.split("/")[-1] / "train").rglob("*.png"))) == 2 * paper.batch_size


def test_a_rank0_replica_dry_run_has_two_steps_of_its_data_share(tmp_path):
    """Table 3's paper rows train the rank-0 replica of 4 GPUs: an epoch draws a quarter of the images."""
    from replicate.train.loop import Loop

    paper = EXPERIMENTS["wvq_table3"].configs("paper")[0]
    dry = dry_config(paper, tmp_path, world_size=1)
    assert (dry.batch_size, dry.independent_replicas, dry.gan.disc_start_epoch) == (16, 4, 1)
    loop = Loop.of(dry, tmp_path, examples=dry.max_train_images, epochs=1, log="eval.csv", share=4)
    assert loop.steps_per_epoch == 2


def test_a_generator_dry_run_has_a_class_folder_per_class_and_tokens_for_two_batches(tmp_path):
    paper = next(c for c in EXPERIMENTS["dq_generation"].configs("paper") if c.generator == "var")
    dry = dry_config(paper, tmp_path, world_size=1, batch=3)
    assert dry.batch_size == 3 and dry.tokenizer.batch_size == 3 and dry.max_steps == 2
    # two batches need 6 images; k-means on the residuals of every scale needs K = 16,384 vectors: 25 images of 680
    assert dry.tokenizer.max_train_images == 25
    classes = {p.parent.name for p in (tmp_path.glob("*/train/*/*.png"))}
    assert len(classes) == paper.proxy_network.num_classes == 100


def test_generated_images_are_written_once_at_the_resolution(tmp_path):
    folder = image_folder(tmp_path, 48, 3, 5)
    first = sorted(folder.rglob("*.png"))
    assert len(first) == 5 + TEST_IMAGES  # 5 training images, the test images (at least one per class)
    stamp = first[0].stat().st_mtime_ns
    assert image_folder(tmp_path, 48, 3, 5) == folder and first[0].stat().st_mtime_ns == stamp
    from PIL import Image

    assert Image.open(first[0]).size == (48, 48)


def test_distinct_models_keep_the_largest_codebook_of_each_model():
    configs = EXPERIMENTS["wvq_table3"].configs("paper")
    chosen = distinct_models(configs)
    assert [label(c) for c in chosen] == [
        "wasserstein K=100000 d=8 VQGAN",
        "wasserstein K=100000 d=8 multi-scale VQGAN",
    ]


def test_a_dry_run_trains_resumes_and_evaluates_without_writing(tmp_path):
    """A tokenizer and a generator (every training interrupted after one step and resumed), at smoke scale."""
    lines = []
    tokenizer = EXPERIMENTS["wvq_table6"].configs("smoke")[3]
    done = dry_run(EXPERIMENTS["wvq_table6"], "smoke", [tokenizer], device=CPU, scratch=tmp_path, report=lines.append)
    generator = next(c for c in EXPERIMENTS["dq_generation"].configs("smoke") if c.generator == "var")
    done += dry_run(EXPERIMENTS["dq_generation"], "smoke", [generator], device=CPU, scratch=tmp_path)
    assert [d.resumes for d in done] == [1, 2]  # the tokenizer; the generator's tokenizer and generator
    assert lines[0].startswith("ok wvq_table6 [wasserstein K=64 d=8]: 2 steps at batch 16 per process")
    assert list(tmp_path.iterdir()) == []  # the scratch folder is gone


def test_dry_run_command_writes_no_result_and_names_a_bad_batch(tmp_path):
    before = sorted(p.name for p in (ROOT / "tables").iterdir())
    command = [sys.executable, "-m", "replicate", "run", "wvq_table10", "--scale", "smoke", "--dry-run"]
    done = subprocess.run(
        [*command, "--where", "method=vanilla", "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Dry run (scale smoke): 1 configuration(s) passed; no result written" in done.stdout
    assert sorted(p.name for p in (ROOT / "tables").iterdir()) == before and list(tmp_path.iterdir()) == []
    refused = subprocess.run([*command, "--dry-run-batch", "0"], capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "error: --dry-run-batch must be >= 1, got 0"
    ]


def paper_models() -> list[tuple[str, object]]:
    """(experiment, configuration) for every distinct paper-scale image model across the experiments."""
    chosen: dict[tuple, tuple[str, object]] = {}

    for name, experiment in EXPERIMENTS.items():
        if experiment.missing and experiment.missing("paper"):
            continue
        configs = experiment.configs("paper")
        if configs and isinstance(configs[0], (TokenizerTraining, GeneratorTraining)):
            for config in distinct_models(configs):
                chosen.setdefault(model_key(config), (name, config))
    return list(chosen.values())


@pytest.mark.dryrun
@pytest.mark.parametrize("name, config", paper_models(), ids=lambda v: v if isinstance(v, str) else label(v))
def test_every_distinct_paper_model_passes_a_dry_run_at_full_size(name, config, tmp_path):
    """Full resolution and model; a batch of 2 per process (the full per-GPU batches need a GPU's memory)."""
    (done,) = dry_run(EXPERIMENTS[name], "paper", [config], device=CPU, batch=2, scratch=tmp_path)
    assert done.resumes >= 1


def test_a_kmeans_initialised_arm_gets_at_least_k_vectors_of_images(tmp_path):
    """Deferred Quantization's arms initialise the codebook by k-means on at least K encoder outputs."""
    paper = next(c for c in EXPERIMENTS["dq_cifar_sweep"].configs("paper") if c.schedule != "random")
    dry = dry_config(paper, tmp_path, world_size=1, batch=2)
    assert dry.max_train_images * paper.model.latent_resolution**2 >= paper.K
