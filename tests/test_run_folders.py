"""One rule for run folders (results.run_folder), honoured by --out; the runner owns --force (every folder a
recomputed configuration asks for is emptied first, its tokenizer's included); a generation arm trains its tokenizer
once; a named experiment whose images are missing stops before anything runs."""

import subprocess

import pytest
import torch
from checkout_guard import checkout_entries

from replicate.cli import main
from replicate.registry import EXPERIMENTS
from replicate.results import RUNS, Workspace, config_key, run_folder
from replicate.train import generator, tokenizer


def test_run_folders_are_named_by_kind_and_configuration_under_the_runs_root(tmp_path):
    first, again = run_folder("tokenizers", "a=1", tmp_path), run_folder("tokenizers", "a=1", tmp_path)
    assert first == again and first.parent == tmp_path / "tokenizers" and first.name == config_key("a=1")
    assert run_folder("tokenizers", "a=2", tmp_path) != first
    assert run_folder("generators", "a=1", tmp_path).parent.name == "generators"


def test_a_forced_workspace_empties_each_folder_once_and_a_plain_one_never(tmp_path):
    folder = run_folder("tokenizers", "x", tmp_path)
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_text("old")
    assert (Workspace(torch.device("cpu"), tmp_path).folder("tokenizers", "x") / "checkpoint.pt").exists()
    forced = Workspace(torch.device("cpu"), tmp_path, force=True)
    assert not forced.folder("tokenizers", "x").exists()
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_text("new")  # written by this invocation: asked for again, it stays
    assert (forced.folder("tokenizers", "x") / "checkpoint.pt").read_text() == "new"


@pytest.fixture
def counted_training(monkeypatch):
    """Every tokenizer and generator training of the run: (kind, whether its folder held a checkpoint)."""
    calls = []
    for module, name in ((tokenizer, "train_tokenizer"), (generator, "train_generator")):
        real = getattr(module, name)

        def spy(config, folder, *args, real=real, name=name, **options):
            path = folder.generator if name == "train_generator" else folder
            calls.append((name, (path / "checkpoint.pt").exists()))
            return real(config, folder, *args, **options)

        monkeypatch.setattr(module, name, spy)
        for user in ("replicate.experiments.generation", "replicate.experiments.wvq_vqvae"):
            monkeypatch.setattr(f"{user}.{name}", spy, raising=False)
    return calls


@pytest.mark.slow  # two smoke generation arms: ~2 min on a busy 2-core host
def test_out_holds_every_file_of_a_run_and_force_retrains_the_tokenizer_of_a_generation_arm(tmp_path, counted_training):
    before = sorted(RUNS.rglob("*")) if RUNS.exists() else []
    arm = ["run", "wvq_generation", "--scale", "smoke", "--where", "tokenizer.method=wasserstein"]
    arm += ["--out", str(tmp_path)]
    assert main(arm) == 0
    assert counted_training == [("train_tokenizer", False), ("train_generator", False)]  # the tokenizer once
    kinds = {path.name for path in (tmp_path / "runs").iterdir()}
    assert kinds == {"tokenizers", "generators", "proxies"}
    assert (tmp_path / "tables" / "wvq_generation_smoke.csv").exists()
    assert (sorted(RUNS.rglob("*")) if RUNS.exists() else []) == before  # nothing in the checkout's runs/
    counted_training.clear()
    assert main([*arm, "--force"]) == 0
    assert counted_training == [("train_tokenizer", False), ("train_generator", False)]  # from scratch, both


def test_a_tokenizer_run_under_out_keeps_its_run_folder_there(tmp_path):
    before = sorted(RUNS.rglob("*")) if RUNS.exists() else []
    assert main(["run", "wvq_table6", "--scale", "smoke", "--where", "method=vanilla", "--out", str(tmp_path)]) == 0
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["tokenizers"]
    assert (sorted(RUNS.rglob("*")) if RUNS.exists() else []) == before


def test_a_named_experiment_without_its_images_stops_with_one_line_before_anything_runs(tmp_path, capsys):
    command = ["run", "dq_generation", "--scale", "paper", "--set", "tokenizer.data_root=/nonexistent"]
    assert main([*command, "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "ImageNet-100" in error and "/nonexistent/train" in error
    assert not any(tmp_path.iterdir())  # nothing written


def test_the_generation_experiments_keep_no_folder_rule_of_their_own():
    for name in ("dq_generation", "wvq_generation", "wvq_table6", "wvq_table3"):
        assert not hasattr(EXPERIMENTS[name], "discard")
    assert not hasattr(generator, "tokenizer_dir")


def test_the_checkout_guard_sees_a_file_written_into_a_checkout_and_ignores_tool_caches(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("runs/\n__pycache__/\n")
    before = checkout_entries(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_text("")
    assert checkout_entries(tmp_path) == before
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "checkpoint.pt").write_text("")
    (tmp_path / "tables.csv").write_text("")
    assert checkout_entries(tmp_path) - before == {"!! runs/", "?? tables.csv"}
