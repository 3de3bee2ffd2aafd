"""The command line: bad input ends with one line naming the valid choices, exit status 2, no output files."""

import json
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from replicate.cli import main
from replicate.errors import ConfigError
from replicate.metrics.codebook import evaluate_codebook
from replicate.results import ROOT, read_csv, write_csv


@pytest.mark.parametrize(
    "argv,message",
    [
        (["run", "nope"], "unknown experiment 'nope'; valid: "),
        (["run", "--only", "wvq_table4,nope"], "unknown experiment 'nope'"),
        (
            ["run", "wvq_table4", "--scale", "huge"],
            "invalid choice: 'huge' (choose from 'smoke', 'cpu', 'paper')",
        ),
        (["run", "wvq_table4", "--set", "K=0"], "K must be >= 1, got 0"),
        (["run", "wvq_table4", "--set", "d=0"], "d must be >= 1, got 0"),
        (["run", "wvq_table4", "--set", "N=-3"], "N must be >= 1, got -3"),
        (["run", "wvq_table4", "--set", "K=many"], "K='many' is not a valid int"),
        (["run", "wvq_table4", "--set", "spread=nan"], "spread must be > 0"),
        (["run", "wvq_table4", "--set", "colour=red"], "unknown configuration field(s) ['colour']"),
        (["run", "wvq_table4", "--where", "colour=red"], "unknown configuration field(s) ['colour']"),
        (["run", "wvq_fig12", "--where", "K"], "--where expects key=value, got 'K'"),
        (["run", "wvq_fig12", "--where", "method=mmd"], "no configuration of wvq_fig12 at scale cpu has method=mmd"),
        (
            ["run", "wvq_table4", "--set", "distribution=cauchy"],
            "unknown distribution 'cauchy'; valid: gaussian, uniform",
        ),
        (
            ["bench", "--methods", "vanilla,nope"],
            "unknown method 'nope'; valid: vanilla, ema, online, linear, wasserstein",
        ),
    ],
)
def test_bad_input_gives_one_line_exit_2_and_no_files(argv, message, tmp_path, capsys):
    try:
        status = main([*argv, "--out", str(tmp_path)] if argv[0] == "run" else argv)
    except SystemExit as stop:  # argparse's own errors
        status = stop.code
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1 and message in err
    assert not any(tmp_path.iterdir())


def test_nan_features_are_rejected_with_a_clear_error():
    features = torch.randn(100, 8)
    features[5, 2] = float("nan")
    with pytest.raises(ConfigError, match="features contain NaN"):
        evaluate_codebook(features, torch.randn(16, 8))


def test_module_entry_point_runs_and_lists_experiments():
    listed = subprocess.run(
        [sys.executable, "-m", "replicate", "list"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0 and "wvq_table4" in listed.stdout
    scales = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()}
    assert scales["wvq_table6"] == "[smoke,cpu,paper]" and scales["wvq_table1"] == "[smoke,paper]"  # no cpu version
    bad = subprocess.run(
        [sys.executable, "-m", "replicate", "run", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: unknown experiment")


def test_run_writes_the_output_contract_files(tmp_path, capsys):
    assert main(["run", "wvq_table4", "--scale", "smoke", "--out", str(tmp_path)]) == 0
    names = {p.name for p in (tmp_path / "tables").iterdir()}
    assert {"wvq_table4_smoke.csv", "wvq_table4_smoke.md", "wvq_table4_smoke_comparison.csv"} <= names
    assert "Summary (scale smoke)" in capsys.readouterr().out


def test_run_summary_prints_each_claim_with_the_verdict_of_the_comparison(tmp_path, capsys):
    assert main(["run", "wvq_table4", "--scale", "smoke", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split("Summary (scale smoke)")[1]
    comparison = (tmp_path / "tables" / "wvq_table4_smoke.md").read_text()
    claims = [line.removeprefix("- **").replace("**: ", ": ", 1) for line in comparison.splitlines()]
    claims = [c for c in claims if c.startswith(("PASS: ", "FAIL: "))]
    assert claims and all(c in printed for c in claims)


def test_bench_json_lines_have_the_documented_keys(capsys):
    assert (
        main(
            [
                "bench",
                "--json",
                "--K",
                "64",
                "--N",
                "500",
                "--eval-N",
                "1000",
                "--repeats",
                "1",
                "--methods",
                "vanilla,wasserstein",
            ]
        )
        == 0
    )
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"search/fast", "search/naive", "step/fast", "step/naive", "evaluate_EUC"} == {r["name"] for r in records}
    for record in records:
        assert {"name", "method", "K", "N", "d", "seconds_per_step", "peak_mb"} <= set(record)


def test_bench_sample_times_both_cpu_generators(capsys):
    assert main(["bench", "--json", "--sample", "4", "--repeats", "1"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["N"]) for r in records] == [("sample/maskgit", 4), ("sample/var", 4)]
    assert all(r["seconds_per_step"] > 0 for r in records)


def test_experiment_with_missing_data_is_skipped_with_its_reason_and_others_go_on(tmp_path, capsys, monkeypatch):
    import dataclasses

    import replicate.cli as cli

    table4 = cli.EXPERIMENTS["wvq_table4"]
    unavailable = dataclasses.replace(table4, name="needs_ffhq", missing=lambda scale: "FFHQ not found at /data/ffhq")
    monkeypatch.setattr(cli, "EXPERIMENTS", {"needs_ffhq": unavailable, "wvq_table4": table4})
    assert main(["run", "--scale", "smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "skipped  needs_ffhq" in out and "FFHQ not found at /data/ffhq" in out
    assert "ran      wvq_table4" in out
    # nothing written for it: REPORT.md lists it as not run
    assert not list((tmp_path / "tables").glob("needs_ffhq_*"))


def test_compressed_tables_are_byte_identical_when_rewritten(tmp_path):
    """gzip without a timestamp: rewriting unchanged points leaves git with nothing to commit."""
    frame = pd.DataFrame({"config_key": ["a", "b"], "x": [0.1, 2.5]})
    path = tmp_path / "e_cpu_points.csv.gz"
    write_csv(path, frame)
    first = path.read_bytes()
    time.sleep(1.1)
    write_csv(path, frame)
    assert path.read_bytes() == first and read_csv(path).equals(frame)
