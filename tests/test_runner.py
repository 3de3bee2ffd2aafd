"""The runner as a user meets it: --force retrains, damaged or locked result tables stop with one line and stay in
place, machine settings do not change what a configuration is, and every resolved setting is in the row."""

import dataclasses
import subprocess
import sys
import time

import pandas as pd
import pytest

from replicate.cli import main
from replicate.configs import smoke_scale
from replicate.errors import ConfigError, ReplicateError
from replicate.experiments import dq_synthetic, xp_synthetic
from replicate.registry import EXPERIMENTS
from replicate.results import (
    RUN_OPTION,
    ResultFileError,
    config_id,
    configuration_fields,
    identity,
    read_csv,
    result_path,
)
from replicate.runner import resolve_configs, run_experiment
from replicate.train import checkpoint, loop, tokenizer

TABLE4 = EXPERIMENTS["wvq_table4"]


def one_config(name: str) -> object:
    """The experiment reduced to its first smoke configuration."""
    experiment = EXPERIMENTS[name]
    first = experiment.configs("smoke")[0]
    return dataclasses.replace(experiment, configs=lambda scale: [first])


@pytest.fixture
def spied_training(tmp_path, monkeypatch):
    """Record, for each tokenizer training, whether it started from a checkpoint."""
    started = []
    real = tokenizer.train_tokenizer

    def spy(config, run_dir, **options):
        started.append((run_dir / "checkpoint.pt").exists())
        return real(config, run_dir, **options)

    monkeypatch.setattr(tokenizer, "train_tokenizer", spy)  # the experiments import it when they run
    return started


def test_force_retrains_a_tokenizer_from_scratch_instead_of_reloading_its_checkpoint(tmp_path, spied_training):
    experiment = one_config("wvq_table6")
    folders = dict(tables=tmp_path / "tables", figures=tmp_path / "figures", runs=tmp_path / "runs")
    run_experiment(experiment, "smoke", **folders)
    result_path(experiment.name, "smoke", folders["tables"]).unlink()  # without --force a checkpoint is reused
    run_experiment(experiment, "smoke", **folders)
    run_experiment(experiment, "smoke", **folders, force=True)
    assert spied_training == [False, True, False]


def test_a_tokenizer_resumed_under_other_code_names_every_revision_that_trained_it(tmp_path, monkeypatch):
    config = dataclasses.replace(smoke_scale(EXPERIMENTS["wvq_table6"].configs("paper")[0]), epochs=2)
    monkeypatch.setattr(checkpoint, "git_revision", lambda: "aaaaaaa")
    monkeypatch.setattr(loop, "RunState", _StopAfterOneEpoch)
    with pytest.raises(_Stop):
        tokenizer.train_tokenizer(config, tmp_path, progress=False)
    monkeypatch.setattr(loop, "RunState", checkpoint.RunState)
    monkeypatch.setattr(checkpoint, "git_revision", lambda: "bbbbbbb")
    history = tokenizer.train_tokenizer(config, tmp_path, progress=False)
    assert set(history["train_revisions"]) == {"aaaaaaa+bbbbbbb"}
    again = tokenizer.train_tokenizer(config, tmp_path, progress=False)  # finished: nothing more is trained
    assert set(again["train_revisions"]) == {"aaaaaaa+bbbbbbb"}


class _Stop(Exception):
    pass


class _StopAfterOneEpoch(checkpoint.RunState):
    def save(self, path, config, parts, context) -> None:
        super().save(path, config, parts, context)
        if self.epoch == 1 and self.step == 0:
            raise _Stop


def test_where_runs_only_the_configurations_with_the_named_values(tmp_path):
    experiment = EXPERIMENTS["wvq_fig12"]
    chosen = resolve_configs(experiment, "smoke", where={"method": "vanilla,ema", "d": "8"})
    assert chosen and {c.method for c in chosen} == {"vanilla", "ema"}
    assert len(chosen) == sum(c.method in ("vanilla", "ema") for c in experiment.configs("smoke"))
    first = dataclasses.replace(experiment, configs=lambda scale: experiment.configs(scale)[:6])
    run_experiment(first, "smoke", where={"method": "ema"}, tables=tmp_path, figures=tmp_path)
    assert set(read_csv(result_path("wvq_fig12", "smoke", tmp_path))["method"]) == {"ema"}


def test_where_selects_by_a_nested_configurations_field_named_with_a_dot():
    """Deferred Quantization's Tables 3-4 alone: the paper-scale generators whose tokenizer is on ODIR."""
    experiment = EXPERIMENTS["dq_generation"]
    odir = resolve_configs(experiment, "paper", where={"tokenizer.dataset": "odir"})
    assert {(c.tokenizer.dataset, c.generator) for c in odir} == {("odir", "var")}
    assert {c.tokenizer.schedule for c in odir} == {"early", "deferred"}
    both = resolve_configs(experiment, "paper", where={"tokenizer.dataset": "imagenet100", "generator": "maskgit"})
    assert len(both) == 2 and {c.tokenizer.dataset for c in both} == {"imagenet100"}
    with pytest.raises(ConfigError, match=r"unknown configuration field\(s\) \['colour'\]"):
        resolve_configs(experiment, "paper", where={"tokenizer.colour": "red"})
    with pytest.raises(ConfigError, match="generator is not a configuration"):
        resolve_configs(experiment, "paper", where={"generator.depth": "16"})


def test_machine_settings_enter_neither_the_row_nor_the_configuration_id():
    config = EXPERIMENTS["wvq_table6"].configs("cpu")[0]
    moved = dataclasses.replace(config, data_root="/somewhere/else", num_workers=8, checkpoint_every=7)
    assert config_id(moved) == config_id(config)
    row = identity("wvq_table6", "cpu", moved, "label")
    assert not {"data_root", "num_workers", "checkpoint_every"} & set(row)
    assert row["channel_mult"] == "1,1,2"


def test_every_row_carries_its_resolved_quantizer_settings_and_a_distinct_id_when_they_differ():
    dq = dq_synthetic.make(8, "early", seed=0)
    xp = xp_synthetic.make(8, "early", "ema", seed=0)  # the same fields, the method's official EMA settings
    dq_row, xp_row = identity("dq", "cpu", dq, ""), identity("xp", "cpu", xp, "")
    assert (dq_row["q_decay"], dq_row["q_beta"]) == (0.99, 0.25)
    assert (xp_row["q_decay"], xp_row["q_beta"]) == (0.8, 1.0)
    assert dq_row["config_id"] != xp_row["config_id"]
    fig12 = EXPERIMENTS["wvq_fig12"].configs("cpu")
    wasserstein = identity("wvq_fig12", "cpu", next(c for c in fig12 if c.method == "wasserstein"), "")
    assert (wasserstein["q_gamma"], wasserstein["sgd_lr"], wasserstein["q_alpha"]) == (10.0, 3.0, 0.8)


def test_a_missing_dataset_named_by_data_root_ends_with_one_line_naming_it(capsys, tmp_path):
    code = main(["run", "wvq_table1", "--scale", "paper", "--set", "data_root=/nonexistent", "--out", str(tmp_path)])
    out = capsys.readouterr()
    assert code == 2 and "/nonexistent" in out.err and len(out.err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # stopped before anything ran or was written


@pytest.mark.parametrize(
    "damage, what",
    [
        (lambda text: text[: len(text) - 7], "cut off"),
        (lambda text: "garbage\n\x01\x02 ;;\n", "no 'experiment', 'scale', 'config_id' and 9 more columns"),
    ],
)
def test_a_damaged_result_table_stops_the_run_with_one_line_and_is_left_in_place(tmp_path, capsys, damage, what):
    tables = tmp_path / "tables"
    run_experiment(TABLE4, "smoke", tables=tables, figures=tmp_path / "figures")
    path = result_path(TABLE4.name, "smoke", tables)
    path.write_text(damage(path.read_text()))
    before = path.read_bytes()
    with pytest.raises(ResultFileError, match=what):
        run_experiment(TABLE4, "smoke", tables=tables, figures=tmp_path / "figures")
    capsys.readouterr()
    code = main(["run", "wvq_table4", "--scale", "smoke", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(path) in err and "move it aside" in err
    assert path.read_bytes() == before


def test_a_second_run_of_the_same_table_is_refused_while_the_first_holds_its_lock(tmp_path):
    tables = tmp_path / "tables"
    lock = result_path(TABLE4.name, "smoke", tables, "lock")
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        lock.write_text(f"{holder.pid}@{socket.gethostname()}\n")
        with pytest.raises(ReplicateError, match="another run is writing these tables"):
            run_experiment(TABLE4, "smoke", tables=tables, figures=tmp_path / "figures")
        assert read_csv(result_path(TABLE4.name, "smoke", tables)) is None
    finally:
        holder.kill()
        holder.wait(timeout=10)
    # the holder is gone: its lock is stale, taken over, and removed at the end
    outcome = run_experiment(TABLE4, "smoke", tables=tables, figures=tmp_path / "figures")
    assert outcome.status == "ran" and not lock.exists()
    assert len(pd.read_csv(result_path(TABLE4.name, "smoke", tables))) == 8


def test_sigterm_outside_a_training_loop_stops_at_once_releasing_its_lock_with_the_requeue_status(tmp_path):
    run = subprocess.Popen(
        [sys.executable, "-m", "replicate", "run", "wvq_fig12", "--scale", "smoke", "--set", "steps=100000"]
        + ["--out", str(tmp_path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = result_path("wvq_fig12", "smoke", tmp_path / "tables", "lock")
    try:
        for _ in range(600):  # wait for the run to take its lock (imports take a few seconds)
            if lock.exists() or run.poll() is not None:
                break
            time.sleep(0.1)
        run.terminate()
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 75 and "preempted (SIGTERM)" in err and not lock.exists()


@dataclasses.dataclass(frozen=True)
class _Inner:
    a: int = 1
    machine: str = dataclasses.field(default="here", metadata=RUN_OPTION)


@dataclasses.dataclass(frozen=True)
class _Outer:
    inner: _Inner
    b: float = 2.0


def test_a_nested_configuration_gives_prefixed_columns_and_its_own_id_without_run_options():
    config = _Outer(_Inner())
    assert config_id(config) == "inner=(a=1),b=2.0"
    assert config_id(_Outer(_Inner(machine="there"))) == config_id(config)
    assert configuration_fields(config) == {"inner_a": 1, "b": 2.0}
