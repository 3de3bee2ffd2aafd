"""`python -m replicate plan`: FLOPs counted on the meta device against a hand count, the plan of a smoke run, and
--probe's measured seconds a step."""

import re

import torch
from torch import nn

from replicate.cli import main
from replicate.configs import with_changes
from replicate.plan import counted, probe, tokenizer_cost
from replicate.registry import EXPERIMENTS
from replicate.runner import run_experiment


def test_flops_of_two_convolutions_are_the_hand_count():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).to("meta")
    flops, activations = counted(model, torch.empty(2, 3, 16, 16, device="meta"))
    pixels = 2 * 16 * 16  # images x positions; a multiply-add is 2 FLOPs
    assert flops == 2 * pixels * (3 * 8 * 9 + 8 * 4)
    assert activations == 4 * pixels * (8 + 8 + 4)  # float32 outputs of conv, ReLU, conv


def test_a_tokenizer_step_counts_its_network_three_times_and_its_search_once():
    config = EXPERIMENTS["wvq_table6"].configs("smoke")[0]
    cost = tokenizer_cost(config)
    side = config.model.latent_resolution
    search = 2 * config.batch_size * side * side * config.K * config.model.d
    assert cost.step_flops > search and (cost.step_flops - search) % 3 == 0
    assert cost.parameters == sum(
        p.numel() for p in __import__("replicate.train.tokenizer", fromlist=["x"]).build_model(config).parameters()
    )


def test_plan_counts_the_configurations_still_to_run(tmp_path, capsys):
    experiment = EXPERIMENTS["wvq_table4"]
    run_experiment(experiment, "smoke", tables=tmp_path / "tables", figures=tmp_path / "figures")
    assert main(["plan", "wvq_table4", "wvq_table6", "--scale", "smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"wvq_table4 [smoke]: 0 of {len(experiment.configs('smoke'))} configuration(s) to run" in out
    planned = len(EXPERIMENTS["wvq_table6"].configs("smoke"))
    assert f"wvq_table6 [smoke]: {planned} of {planned} configuration(s) to run" in out
    assert "GPU-hours at 100 TFLOP/s sustained" in out and "data and weights: found" in out


def test_probe_prints_a_positive_measured_seconds_a_step_beside_the_estimate(tmp_path, capsys):
    argv = ["plan", "wvq_table6", "--scale", "smoke", "--where", "method=vanilla", "--probe", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    timed = re.findall(r"^ {4}(\S+) s/step \((\S+) TFLOP/s\)  vanilla K=64 d=8 \(tokenizer\)$", out, re.MULTILINE)
    assert len(timed) == 1 and float(timed[0][0]) > 0 and float(timed[0][1]) > 0
    assert "GPU-hours at 100 TFLOP/s sustained" in out
    hours = re.search(r"at the probed speeds: (\S+) hours on this cpu for the ([\d,]+) steps", out)
    assert hours and float(hours[1]) >= 0 and int(hours[2].replace(",", "")) > 0


def test_probe_times_a_generator_and_its_tokenizer():
    config = EXPERIMENTS["dq_generation"].configs("smoke")[-1]  # VAR on a multi-scale tokenizer
    seconds = probe(with_changes(config, {"batch_size": 2, "tokenizer.batch_size": 2}), torch.device("cpu"))
    assert len(seconds) == 2 and all(s > 0 for s in seconds)


def test_a_rank0_replica_counts_the_steps_of_its_data_share():
    """Table 3's paper rows: 200 epochs of FFHQ's 70,000 images, a quarter (half) an epoch at 16 (32) a step."""
    for config in EXPERIMENTS["wvq_table3"].configs("paper"):
        assert tokenizer_cost(config).steps == 200 * 1093
