"""Multi-node torchrun, simulated on one host: two torchrun agents (`--nnodes 2 --nproc_per_node 1`), one
subprocess each, meet at a c10d rendezvous on 127.0.0.1 and train over gloo, as scripts/slurm.sh starts one agent
per node (c10d numbers the nodes in the order they join: no --node_rank). Both read and write one folder, as the
nodes of a job share a filesystem. A run launched so must give the results of the same run launched otherwise:

* a tokenizer (`python -m replicate train`, smoke scale): its final evaluation row equals the one-process run's
  (same global batch) within float32 rounding: the two ranks' gradients are averaged in another order;
* a generator (MaskGIT, smoke scale, on a tokenizer trained once beforehand): its per-epoch rows and parameters equal
  the single-host two-process run's within float32 rounding. Not the one-process run's: its masks and label dropout
  are drawn per rank (generator.step_seed), so one process draws other masks;
* scripts/slurm.sh's own command, `torchrun ... -m replicate run`: the same row as one process (every rank holds
  rank 0's evaluation rows, broadcast by the epoch loop).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import torch

from replicate import distributed
from replicate.configs import with_changes
from replicate.experiments import generation
from replicate.registry import EXPERIMENTS
from replicate.results import ROOT, Workspace, result_path
from replicate.train import generator
from replicate.train.generator import GeneratorFolders, GeneratorTraining
from replicate.train.tokenizer import train_tokenizer

TIMEOUT = 600  # seconds for one launch: a hang fails instead of blocking the run
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
TOKENIZER = "cifar10-wasserstein"  # the smoke Wasserstein run: its queue gathers every rank's features
# 2 steps of the global batch 16, evaluated on 16 images: every part of the run, in seconds
TOKENIZER_SETTINGS = ("max_train_images=32", "max_eval_images=16")
NOT_COMPARED = ("train_seconds", "train_revisions")  # wall time, and the code revision (the same here)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_node_launchers() -> list[list[str]]:
    """The torchrun command of each of two nodes, joined at a fresh c10d rendezvous on this host."""
    endpoint, job = f"127.0.0.1:{free_port()}", uuid.uuid4().hex[:8]
    rendezvous = ["--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}", f"--rdzv_id={job}"]
    return [[*TORCHRUN, "--nnodes=2", "--nproc_per_node=1", *rendezvous] for _ in range(2)]


def run_all(commands: list[list[str]], logs: Path, name: str) -> None:
    """Start the commands together (each in its own process group, output to logs/<name><i>.log), wait for all; on
    a timeout or a failure, kill the others' process groups and fail with the logs' ends."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = []
    for index, command in enumerate(commands):
        with open(logs / f"{name}{index}.log", "w") as log:
            processes.append(
                subprocess.Popen(
                    command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
    try:
        statuses = [process.wait(timeout=TIMEOUT) for process in processes]
    except subprocess.TimeoutExpired:
        statuses = None
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    tails = "\n".join(
        f"--- {name} {i}:\n" + (logs / f"{name}{i}.log").read_text()[-2000:] for i in range(len(commands))
    )
    assert statuses is not None, f"timed out after {TIMEOUT} s\n{tails}"
    assert statuses == [0] * len(commands), tails


def train_command(out: Path) -> list[str]:
    sets = [part for setting in TOKENIZER_SETTINGS for part in ("--set", setting)]
    where = ["--run-dir", str(out / "run"), "--out", str(out)]
    return ["-m", "replicate", "train", "--config", TOKENIZER, "--scale", "smoke", *sets, *where]


def final_row(out: Path) -> pd.DataFrame:
    """The last row of the `train` command's result table, its evaluation columns only."""
    table = pd.read_csv(result_path(f"train_{TOKENIZER}", "smoke", out / "tables"))
    evaluated = [c for c in pd.read_csv(out / "run" / "eval.csv").columns if c not in NOT_COMPARED]
    return table[evaluated].tail(1).reset_index(drop=True)


# 55 s on 2 cores beside a training run and other tests (load 6.8, 2026-12-04): in the default run
def test_tokenizer_on_two_nodes_ends_with_the_one_process_runs_evaluation(tmp_path):
    two, one = tmp_path / "two_nodes", tmp_path / "one_process"
    run_all([[*launcher, *train_command(two)] for launcher in two_node_launchers()], tmp_path, "node")
    run_all([[sys.executable, *train_command(one)]], tmp_path, "single")
    multi, single = final_row(two), final_row(one)
    assert multi["step"].item() == 2 and multi["epoch"].item() == 1
    # measured 2026-12-04: at most 3e-7 relative (float32 sums of the two half batches' gradients)
    pd.testing.assert_frame_equal(multi, single, check_exact=False, rtol=1e-5, atol=1e-7)
    # each node gives its one process all of its host's cores (distributed.setup: LOCAL_WORLD_SIZE, not WORLD_SIZE)
    device = pd.read_csv(result_path(f"train_{TOKENIZER}", "smoke", two / "tables"))["device"].item()
    assert device.startswith(f"cpu ({distributed.host_cores()} threads"), device


# the smoke MaskGIT arm on a smaller tokenizer run (2 steps of 16 on 32 images, evaluated on 16): 2 generator steps
GENERATOR_CHANGES = {"tokenizer.epochs": 1, "tokenizer.max_train_images": 32, "tokenizer.max_eval_images": 16}
GENERATOR_SCRIPT = f"""
import sys
from pathlib import Path
import torch
from replicate import distributed
from replicate.configs import with_changes
from replicate.experiments import generation
from replicate.results import Workspace
from replicate.train import generator
runs = Path(sys.argv[1])
config = with_changes(generation.smoke_arm("maskgit", "early"), {GENERATOR_CHANGES!r})
folders = generator.generator_folders(config, Workspace(torch.device("cpu"), runs))
history = generator.train_generator(config, folders, progress=False)
if distributed.rank() == 0:
    torch.save(history.to_dict("list"), runs / "history.pt")
distributed.teardown()
"""


def generator_run(runs: Path) -> tuple[GeneratorTraining, GeneratorFolders]:
    config = with_changes(generation.smoke_arm("maskgit", "early"), GENERATOR_CHANGES)
    return config, generator.generator_folders(config, Workspace(torch.device("cpu"), runs))


def generator_result(runs: Path) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """The generator's per-epoch rows (NOT_COMPARED left out) and its checkpointed parameters."""
    history = pd.DataFrame(torch.load(runs / "history.pt")).drop(columns=list(NOT_COMPARED))
    return history, torch.load(generator_run(runs)[1].generator / "checkpoint.pt", weights_only=False)["model"]


# 58 s on 2 cores beside a training run and other tests (load 6.8, 2026-12-04): in the default run
def test_generator_on_two_nodes_equals_the_single_host_two_process_run(tmp_path):
    trained = tmp_path / "tokenizer_runs"  # the tokenizer, trained once; each launch starts from a copy
    config, folders = generator_run(trained)
    train_tokenizer(config.tokenizer, folders.tokenizer, progress=False)
    script = tmp_path / "train_generator.py"
    script.write_text(GENERATOR_SCRIPT)
    two, host = tmp_path / "two_nodes", tmp_path / "one_host"
    for runs in (two, host):
        shutil.copytree(trained, runs)
    run_all([[*launcher, str(script), str(two)] for launcher in two_node_launchers()], tmp_path, "node")
    run_all([[*TORCHRUN, "--nproc_per_node=2", str(script), str(host)]], tmp_path, "host")
    (multi_rows, multi), (host_rows, single_host) = generator_result(two), generator_result(host)
    assert len(multi_rows) == config.epochs and multi.keys() == single_host.keys()
    # Not bit for bit: a node's process has both cores, a single host's two processes one each, and the matrix
    # products sum in another order. Measured 2026-12-04: equal rows, parameters at most 6e-8 apart (of ~0.1)
    pd.testing.assert_frame_equal(multi_rows, host_rows, check_exact=False, rtol=1e-5, atol=1e-7)
    for name in multi:
        torch.testing.assert_close(multi[name], single_host[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow  # 52 s (load 6.8, 2026-12-04)
def test_run_command_on_two_nodes_as_slurm_sh_writes_the_one_process_runs_row(tmp_path):
    """scripts/slurm.sh's command, `torchrun ... -m replicate run`, on the smoke Table 6 Wasserstein row."""
    experiment = EXPERIMENTS["wvq_table6"]

    def command(out: Path) -> list[str]:
        sets = [part for setting in TOKENIZER_SETTINGS for part in ("--set", setting)]
        selected = ["--where", "method=wasserstein", *sets, "--out", str(out)]
        return ["-m", "replicate", "run", experiment.name, "--scale", "smoke", *selected]

    two, one = tmp_path / "two_nodes", tmp_path / "one_process"
    run_all([[*launcher, *command(two)] for launcher in two_node_launchers()], tmp_path, "node")
    run_all([[sys.executable, *command(one)]], tmp_path, "single")
    multi, single = (pd.read_csv(result_path(experiment.name, "smoke", out / "tables")) for out in (two, one))
    metrics = [m for m in experiment.metrics if m not in NOT_COMPARED]
    pd.testing.assert_frame_equal(multi[metrics], single[metrics], check_exact=False, rtol=1e-5, atol=1e-7)
