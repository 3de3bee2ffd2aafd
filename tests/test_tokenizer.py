"""The image tokenizer pipeline at smoke scale on the package's generated Shapes images (written as an image folder
by tests/conftest.py: shape_folder), the same in every checkout: every quantizer trains, DDP keeps the ranks
identical, a SIGKILLed run resumes to the same result, and bad input ends with one line and status 2."""

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

from replicate.configs import with_changes
from replicate.data.images import image_dataset
from replicate.quantize import CODEBOOK_QUANTIZERS
from replicate.results import ROOT
from replicate.train import tokenizer
from replicate.train.configs import train_config
from replicate.train.gan import Objective
from replicate.train.tokenizer import build_model, build_optimizer, train_step

SMOKE = train_config("cifar10-wasserstein", "smoke")
METRICS = ["psnr", "ssim", "rec_mse", "quant_error", "utilization", "perplexity", "w2_distance", "train_loss"]
TRAINING_TIMEOUT = 600  # seconds for one smoke training subprocess: a hang fails instead of blocking the run


def replicate_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "replicate", *args]


def on_folder(root: Path) -> tuple[str, str]:
    """--set overrides that train on the generated image folder instead of CIFAR-10 (the lossless copy)."""
    return "dataset=folder", f"data_root={root}"


# Vanilla and Wasserstein VQ run by default (30-36 s each on an AVX2-only 2-core host, 2026-12-03); the others with
# -m slow (EMA, Online and Linear 30-35 s each; MMD and sliced W2 64 and 85 s of one core), their units by default
DEFAULT_RUN = ("vanilla", "wasserstein")


@pytest.mark.parametrize(
    "method", [m if m in DEFAULT_RUN else pytest.param(m, marks=pytest.mark.slow) for m in CODEBOOK_QUANTIZERS]
)
def test_tiny_vqvae_reconstruction_loss_decreases_with_every_quantizer(method):
    """40 steps on 16 Shapes images (lr 1e-4). The reconstruction term is what must fall: Vanilla VQ's whole
    objective first rises, as the encoder outputs grow away from its tiny initial codebook (U(-1/K, 1/K), official).
    Measured after/before (2026-12-03): Wasserstein 0.594, sliced W2 0.599, Linear 0.648, EMA 0.654, Online 0.663,
    MMD 0.666, Vanilla 0.734; an encoder-decoder that does not learn stays near 1."""
    config = with_changes(SMOKE, {"method": method, "K": 64, "optim.lr": 1e-4})
    torch.manual_seed(0)
    data = image_dataset("shapes", "train", root=None, resolution=32, train_augment=False, seed=0)
    images = torch.stack([data[i][0] for i in range(0, len(data), len(data) // 16)])
    model = build_model(config)
    optimizer = build_optimizer(model, config)

    def reconstruction_loss() -> float:  # through the quantizer, as evaluated
        model.eval()
        with torch.no_grad():
            loss = F.mse_loss(model.decode(model.quantizer(model.encode(images)).quantized), images).item()
        model.train()
        return loss

    before = reconstruction_loss()
    for step in range(40):
        train_step(model, model, optimizer, images, config, step, True, Objective(config.gan), epoch=1)
    assert reconstruction_loss() < 0.8 * before


DDP_SCRIPT = """
import dataclasses, sys, torch
from pathlib import Path
from replicate import distributed
from replicate.train.configs import train_config
from replicate.train import tokenizer
out, root = Path(sys.argv[1]), sys.argv[2]
for method in ('ema', 'online', 'wasserstein'):
    config = dataclasses.replace(train_config('cifar10-' + method, 'smoke'), dataset='folder', data_root=root,
                                 max_train_images=256, batch_size=32, max_eval_images=32)
    captured = {}
    original = tokenizer.VQVAE
    class Capturing(original):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            captured['model'] = self
            captured['initial'] = {name: value.clone() for name, value in self.state_dict().items()}
    tokenizer.VQVAE = Capturing
    tokenizer.train_tokenizer(config, out / method, progress=False)
    tokenizer.VQVAE = original
    model = captured['model']
    torch.save({'initial': captured['initial'], 'final': model.state_dict(),
                'parameters': [name for name, _ in model.named_parameters()]},
               out / f'{method}_rank{distributed.rank()}.pt')
distributed.teardown()
"""


def run_process_group(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run with TRAINING_TIMEOUT that, on timeout, kills the whole process group: torchrun's workers too."""
    with subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=TRAINING_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_two_process_torchrun_trains_and_keeps_parameters_and_buffers_identical(tmp_path, shape_folder):
    script = tmp_path / "ddp_check.py"
    script.write_text(DDP_SCRIPT)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    completed = run_process_group(
        [*launcher, str(script), str(tmp_path), str(shape_folder)], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    for method in ("ema", "online", "wasserstein"):
        first, second = (torch.load(tmp_path / f"{method}_rank{r}.pt") for r in (0, 1))
        assert first["final"].keys() == second["final"].keys() == first["initial"].keys()
        for name in first["final"]:
            assert torch.equal(first["final"][name], second["final"][name]), (method, name)
        assert all(torch.equal(first["initial"][n], second["initial"][n]) for n in first["initial"])
        # training happened: every parameter and the codebook (a buffer under EMA) moved from its initial value
        trained = [*first["parameters"], "quantizer.weight"]
        unchanged = [name for name in trained if torch.equal(first["initial"][name], first["final"][name])]
        assert unchanged == [], (method, unchanged)
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


RESUMED_RUN = ("max_train_images=256", "batch_size=16", "checkpoint_every=4")  # 16 steps, 3 checkpoints inside


def run_training(run_dir: Path, out: Path, root: Path, log: Path) -> subprocess.Popen:
    """The smoke training on the generated folder (RESUMED_RUN), in the background; stderr goes to a file, as a
    pipe nobody reads could fill and stall the run."""
    command = train_smoke_command(run_dir, out, *on_folder(root), *RESUMED_RUN)
    with open(log, "w") as stderr:
        return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)


def finish(process: subprocess.Popen, log: Path) -> None:
    try:
        status = process.wait(timeout=TRAINING_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert status == 0, log.read_text()[-3000:]


@pytest.mark.slow  # 73 s on an AVX2-only 2-core host (2026-12-03); the generator's resume tests run by default
def test_run_killed_mid_epoch_resumes_to_the_same_final_metrics(tmp_path, shape_folder):
    finish(run_training(tmp_path / "a", tmp_path / "out_a", shape_folder, tmp_path / "a.log"), tmp_path / "a.log")
    interrupted = run_training(tmp_path / "b", tmp_path / "out_b", shape_folder, tmp_path / "b.log")
    checkpoint = tmp_path / "b" / "checkpoint.pt"
    deadline = time.time() + TRAINING_TIMEOUT
    while not checkpoint.exists() and time.time() < deadline and interrupted.poll() is None:
        time.sleep(0.01)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait(timeout=60)
    assert not (tmp_path / "b" / "eval.csv").exists(), "the run finished before it could be killed"
    state = torch.load(checkpoint, weights_only=False)
    assert state["run"]["step"] > 0  # killed inside the epoch
    finish(run_training(tmp_path / "b", tmp_path / "out_b", shape_folder, tmp_path / "b.log"), tmp_path / "b.log")
    first = pd.read_csv(tmp_path / "a" / "eval.csv")[METRICS]
    second = pd.read_csv(tmp_path / "b" / "eval.csv")[METRICS]
    pd.testing.assert_frame_equal(first, second, rtol=1e-6)


# 20 s alone on a 2-core AVX2 host, 92 s beside a training run (2026-12-03): in the default suite
def test_sigterm_checkpoints_after_the_step_in_progress_exits_for_requeue_and_resumes(tmp_path, shape_folder):
    """Preemption (replicate/preemption.py): SIGTERM mid-epoch -> a checkpoint at that step (no cadence checkpoint
    is due: checkpoint_every 1000), exit status 75, and the same command finishes the run."""
    settings = (*on_folder(shape_folder), "max_train_images=256", "batch_size=16", "checkpoint_every=1000")
    command = train_smoke_command(tmp_path / "run", tmp_path / "out", *settings)
    log = tmp_path / "train.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.time() + TRAINING_TIMEOUT
    while "epoch 1/" not in log.read_text() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)  # a few steps into the first epoch
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=TRAINING_TIMEOUT) == 75, log.read_text()[-3000:]
    assert "preempted (SIGTERM)" in log.read_text()
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert (state["run"]["epoch"], state["run"]["step"] > 0) == (0, True)  # saved inside the first epoch
    assert not (tmp_path / "run" / "lock").exists()
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TRAINING_TIMEOUT)
    assert finished.returncode == 0 and (tmp_path / "run" / "eval.csv").exists(), finished.stderr[-3000:]


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
        timeout=TRAINING_TIMEOUT,
    )


def test_corrupt_checkpoint_is_a_one_line_error_and_is_kept(tmp_path, shape_folder):
    (tmp_path / "run").mkdir()
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    one_line_error(train_smoke(tmp_path, *on_folder(shape_folder)), "is unreadable")
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


def test_a_training_step_in_channels_last_layout_gives_the_default_layouts_loss():
    config = dataclasses.replace(SMOKE, channels_last=True)
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    losses = []
    for layout in (torch.contiguous_format, torch.channels_last):
        torch.manual_seed(0)
        model = build_model(config).to(memory_format=layout)
        optimizer = build_optimizer(model, config)
        batch = images.contiguous(memory_format=layout)
        losses.append(train_step(model, model, optimizer, batch, config, 0, True, Objective(config.gan), epoch=1)[0])
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


@pytest.mark.slow
def test_channels_last_training_matches_the_default_layout_and_its_checkpoint_loads_plainly(tmp_path):
    """An efficiency setting, not an estimator: the same run in channels-last memory layout ends at the same loss
    and metrics (to float noise: measured 2e-5 on the loss), and its checkpoint loads into the plain model."""
    from replicate.configs import smoke_scale
    from replicate.experiments.wvq_vqvae import paper_config

    base = dataclasses.replace(
        smoke_scale(paper_config("cifar10", "wasserstein", 64)), max_train_images=32, max_eval_images=16
    )
    rows = {}
    for layout in (False, True):
        config = dataclasses.replace(base, channels_last=layout)
        rows[layout] = tokenizer.train_tokenizer(config, tmp_path / str(layout), progress=False).iloc[-1]
        tokenizer.load_trained(dataclasses.replace(config, channels_last=False), tmp_path / str(layout))
    for metric in ("train_loss", "psnr", "utilization"):
        assert rows[True][metric] == pytest.approx(rows[False][metric], rel=1e-3)


def test_persistent_loader_workers_train_the_run_of_a_fresh_loader_each_epoch(tmp_path):
    """A run option, not a setting: two epochs with one persistent worker process end at exactly the metrics of the
    in-process loader (every crop is keyed by its epoch)."""
    from replicate.configs import smoke_scale
    from replicate.experiments.wvq_vqvae import paper_config

    base = dataclasses.replace(
        smoke_scale(paper_config("cifar10", "wasserstein", 64)),
        dataset="shapes",
        max_train_images=16,
        max_eval_images=8,
        batch_size=8,
        epochs=2,
    )
    rows = {}
    for workers, persistent in ((0, False), (1, True)):
        config = dataclasses.replace(base, num_workers=workers, persistent_workers=persistent)
        rows[persistent] = tokenizer.train_tokenizer(config, tmp_path / str(persistent), progress=False)
    assert len(rows[True]) == 2
    timing = [c for c in rows[True].columns if "second" in c]
    pd.testing.assert_frame_equal(rows[True].drop(columns=timing), rows[False].drop(columns=timing))
