"""The image tokenizer pipeline at smoke scale on the CIFAR-10 JPEG copy: every quantizer trains, DDP keeps the
ranks identical, a SIGKILLed run resumes to the same result, and bad input ends with one line and status 2."""

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from replicate.data.images import JPEG_ARCHIVE, image_dataset
from replicate.models.vqvae import VQVAE
from replicate.quantize import QUANTIZERS, build_quantizer
from replicate.results import ROOT
from replicate.train.configs import train_config
from replicate.train.tokenizer import build_optimizer, train_step

needs_cifar = pytest.mark.skipif(
    not JPEG_ARCHIVE.exists(), reason=f"the CIFAR-10 JPEG copy is not at {JPEG_ARCHIVE} (set $VQ_CIFAR10_JPEG)"
)
SMOKE = train_config("cifar10-wasserstein", "smoke")
METRICS = ["psnr", "ssim", "rec_mse", "quant_error", "utilization", "perplexity", "w2_distance", "train_loss"]


def replicate_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "replicate", *args]


@needs_cifar
@pytest.mark.parametrize("method", list(QUANTIZERS))
def test_tiny_vqvae_reconstruction_loss_decreases_with_every_quantizer(method):
    """40 steps on 16 images (lr 1e-4). The reconstruction term is what must fall: Vanilla VQ's whole objective
    first rises, as the encoder outputs grow away from its tiny initial codebook (U(-1/K, 1/K), official)."""
    config = dataclasses.replace(SMOKE, method=method, K=64, lr=1e-4)
    torch.manual_seed(0)
    data = image_dataset("cifar10-jpeg", "train", root=None, resolution=32, train_augment=True, seed=0)
    images = torch.stack([data[i][0] for i in range(16)])
    model = VQVAE(config.model_config(), build_quantizer(config.quantizer_config()))
    optimizer = build_optimizer(model, config)

    def reconstruction_loss() -> float:
        model.eval()
        with torch.no_grad():
            loss = F.mse_loss(model(images)[0], images).item()
        model.train()
        return loss

    before = reconstruction_loss()
    for step in range(40):
        train_step(model, model, optimizer, images, config, step, True)
    assert reconstruction_loss() < 0.6 * before


@needs_cifar
def test_two_process_torchrun_keeps_parameters_and_buffers_identical(tmp_path):
    script = tmp_path / "ddp_check.py"
    script.write_text(
        "import dataclasses, sys, torch\n"
        "from pathlib import Path\n"
        "from replicate import distributed\n"
        "from replicate.train.configs import train_config\n"
        "from replicate.train import tokenizer\n"
        "out = Path(sys.argv[1])\n"
        "for method in ('ema', 'online', 'wasserstein'):\n"
        "    config = dataclasses.replace(train_config('cifar10-' + method, 'smoke'), max_train_images=256,\n"
        "                                 batch_size=32, max_eval_images=32)\n"
        "    captured = {}\n"
        "    original = tokenizer.VQVAE\n"
        "    class Capturing(original):\n"
        "        def __init__(self, *a, **k):\n"
        "            super().__init__(*a, **k); captured['model'] = self\n"
        "    tokenizer.VQVAE = Capturing\n"
        "    tokenizer.train_tokenizer(config, out / method, progress=False)\n"
        "    tokenizer.VQVAE = original\n"
        "    torch.save(captured['model'].state_dict(), out / f'{method}_rank{distributed.rank()}.pt')\n"
        "distributed.teardown()\n"
    )
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(script), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    for method in ("ema", "online", "wasserstein"):
        first, second = (torch.load(tmp_path / f"{method}_rank{r}.pt") for r in (0, 1))
        assert first.keys() == second.keys()
        for name in first:
            assert torch.equal(first[name], second[name]), (method, name)
        # the quantizer trained: its state differs from a fresh initialisation
        assert (tmp_path / method / "eval.csv").exists()


def train_smoke_command(run_dir: Path, out: Path, *settings: str) -> list[str]:
    """`python -m replicate train` of the smoke Wasserstein config, with --set overrides."""
    overrides = [part for setting in settings for part in ("--set", setting)]
    return replicate_command(
        "train",
        "--config",
        "cifar10-wasserstein",
        "--scale",
        "smoke",
        "--run-dir",
        str(run_dir),
        "--out",
        str(out),
        *overrides,
    )


def run_training(run_dir: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        train_smoke_command(run_dir, out, "max_train_images=2048"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@needs_cifar
def test_run_killed_mid_epoch_resumes_to_the_same_final_metrics(tmp_path):
    uninterrupted = run_training(tmp_path / "a", tmp_path / "out_a")
    assert uninterrupted.wait(timeout=900) == 0, uninterrupted.stderr.read()
    interrupted = run_training(tmp_path / "b", tmp_path / "out_b")
    checkpoint = tmp_path / "b" / "checkpoint.pt"
    deadline = time.time() + 600
    while not checkpoint.exists() and time.time() < deadline and interrupted.poll() is None:
        time.sleep(0.01)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert not (tmp_path / "b" / "eval.csv").exists(), "the run finished before it could be killed"
    state = torch.load(checkpoint, weights_only=False)
    assert state["run"]["step"] > 0  # killed inside the epoch
    resumed = run_training(tmp_path / "b", tmp_path / "out_b")
    assert resumed.wait(timeout=900) == 0, resumed.stderr.read()
    first = pd.read_csv(tmp_path / "a" / "eval.csv")[METRICS]
    second = pd.read_csv(tmp_path / "b" / "eval.csv")[METRICS]
    pd.testing.assert_frame_equal(first, second, rtol=1e-6)


def one_line_error(completed: subprocess.CompletedProcess, fragment: str) -> None:
    """Exit status 2 and one error line, no traceback (progress-bar lines may precede it on stderr)."""
    assert completed.returncode == 2, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], completed.stderr
    assert "Traceback" not in completed.stderr


def train_smoke(tmp_path: Path, *settings: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        train_smoke_command(tmp_path / "run", tmp_path, *settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


@needs_cifar
def test_corrupt_checkpoint_is_a_one_line_error_and_is_kept(tmp_path):
    (tmp_path / "run").mkdir()
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    one_line_error(train_smoke(tmp_path), "is unreadable")
    assert checkpoint.read_bytes() == b"not a checkpoint"


def test_unknown_method_is_a_one_line_error(tmp_path):
    one_line_error(train_smoke(tmp_path, "method=kmeanspp"), "unknown method 'kmeanspp'; valid:")


def test_missing_dataset_is_a_one_line_error(tmp_path):
    one_line_error(train_smoke(tmp_path, "dataset=ffhq", f"data_root={tmp_path / 'nope'}"), "FFHQ")


def test_unreadable_image_is_a_one_line_error_naming_the_file(tmp_path):
    for split in ("train", "test"):
        folder = tmp_path / "data" / split / "cat"
        folder.mkdir(parents=True)
        for index in range(40):
            Image.new("RGB", (32, 32), (index, 0, 0)).save(folder / f"{index:04d}.jpg")
    (tmp_path / "data" / "train" / "cat" / "0003.jpg").write_bytes(b"garbage")
    completed = train_smoke(tmp_path, "dataset=folder", f"data_root={tmp_path / 'data'}", "max_train_images=40")
    one_line_error(completed, "0003.jpg")
