"""Damaged inputs, second pass (issue 38): every file the project reads back is checked against its contract, and
each bad input ends with one line on stderr and exit status 2, the damaged file byte-identical afterwards and no
result file rewritten."""

import dataclasses
import io
import os
import shutil
import socket

import pandas as pd
import pytest
import torch

from replicate import results
from replicate.cli import main, print_summary
from replicate.errors import ReplicateError
from replicate.registry import EXPERIMENTS
from replicate.report import compare
from replicate.results import PUBLISHED, TABLES, recovery, result_path
from replicate.runner import Outcome, run_experiment
from replicate.spec import Claim
from replicate.train.checkpoint import RunState, load_part, save_checkpoint

TABLE4 = EXPERIMENTS["wvq_table4"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def snapshot(folder) -> dict:
    """Every file under folder with its bytes: what a refused command must leave as it was."""
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def cut_inside_a_quoted_field(text: str) -> str:
    second_line = text.index("\n") + 1
    return text[: text.index('"', second_line) + 10] + "\n"


def edited(change):
    """A damage done through pandas: the file read, changed, written back as CSV."""
    return lambda text: change(pd.read_csv(io.StringIO(text))).to_csv(index=False)


PUBLISHED_DAMAGE = {
    "cut mid-line": (lambda text: text[: len(text) // 2], "cut off"),
    "random bytes": (lambda text: "\x89\xfe\x00\x13\x07garbage\xff\n", "damaged"),
    "empty": (lambda text: "", "empty"),
    "no value column": (edited(lambda frame: frame.drop(columns="value")), "'value'"),
    "no key column": (edited(lambda frame: frame.drop(columns="distribution")), "'distribution'"),
    "cut inside a quoted field": (cut_inside_a_quoted_field, "not a CSV table"),
    "text in value": (edited(lambda frame: frame.assign(value=["n/a", *frame["value"][1:]])), "holds text"),
}


@pytest.fixture
def report_folder(tmp_path, monkeypatch):
    """--out holding a copy of the committed wvq_table4 paper tables, and data/published copied to tmp_path (the
    damage is done to the copy; the checkout is never touched)."""
    published = tmp_path / "published"
    shutil.copytree(PUBLISHED, published)
    monkeypatch.setattr(compare, "PUBLISHED", published)
    out = tmp_path / "out"
    (out / "tables").mkdir(parents=True)
    for table in ("", "md"):
        shutil.copy(
            result_path(TABLE4.name, "paper", TABLES, table), result_path(TABLE4.name, "paper", out / "tables", table)
        )
    return out, published / TABLE4.published


@pytest.mark.parametrize("damage", PUBLISHED_DAMAGE, ids=list(PUBLISHED_DAMAGE))
def test_a_damaged_published_file_is_one_line_naming_it_and_nothing_is_rewritten(damage, report_folder, capsys):
    out, path = report_folder
    change, reason = PUBLISHED_DAMAGE[damage]
    path.write_bytes(change(path.read_text()).encode("latin-1"))
    before = snapshot(out) | {path: path.read_bytes()}
    for argv in (["report", TABLE4.name, "--scale", "paper"], ["report", "--all"]):
        assert main([*argv, "--out", str(out)]) == 2
        err = one_error_line(capsys)
        assert f"published data file {path} is damaged" in err and reason in err and "restore it" in err
    assert snapshot(out) | {path: path.read_bytes()} == before and not (out / "REPORT.md").exists()


@pytest.fixture(scope="module")
def smoke_table4(tmp_path_factory):
    """wvq_table4's smoke tables, written once; each test damages its own copy."""
    out = tmp_path_factory.mktemp("table4")
    run_experiment(TABLE4, "smoke", tables=out / "tables", figures=out / "figures", runs=out / "runs")
    return out


RESULT_DAMAGE = {
    "no metric column": (lambda frame: frame.drop(columns="utilization"), "no 'utilization' column"),
    "no data column": (lambda frame: frame.drop(columns="data"), "no 'data' column"),
    "text in a metric column": (lambda frame: frame.assign(perplexity="high"), "column 'perplexity' holds text"),
}


@pytest.mark.parametrize("damage", RESULT_DAMAGE, ids=list(RESULT_DAMAGE))
@pytest.mark.parametrize("command", ["report", "run"])
def test_a_result_table_without_its_contract_columns_is_damaged_for_report_and_run(
    damage, command, smoke_table4, tmp_path, capsys
):
    out = tmp_path / "out"
    shutil.copytree(smoke_table4, out)
    path = result_path(TABLE4.name, "smoke", out / "tables")
    change, reason = RESULT_DAMAGE[damage]
    change(pd.read_csv(path)).to_csv(path, index=False)
    before = snapshot(out)
    assert main([command, TABLE4.name, "--scale", "smoke", "--out", str(out)]) == 2
    err = one_error_line(capsys)
    assert f"result table {path} is damaged ({reason}" in err and "move it aside" in err
    assert snapshot(out) == before


def test_a_result_table_without_psnr_is_damaged_not_reported_as_not_run(tmp_path, capsys):
    """Before: exit 0, and the comparison rewritten to say every PSNR row was "not run at this scale"."""
    out = tmp_path / "out"
    (out / "tables").mkdir(parents=True)
    for table in ("", "md"):
        shutil.copy(
            result_path("wvq_table6", "cpu", TABLES, table), result_path("wvq_table6", "cpu", out / "tables", table)
        )
    path = result_path("wvq_table6", "cpu", out / "tables")
    pd.read_csv(path).drop(columns="psnr").to_csv(path, index=False)
    before = snapshot(out)
    assert main(["report", "wvq_table6", "--scale", "cpu", "--out", str(out)]) == 2
    assert "no 'psnr' column" in one_error_line(capsys) and snapshot(out) == before


def test_a_damaged_tracked_file_is_restored_from_version_control_an_untracked_one_moved_aside(tmp_path):
    tracked = result_path(TABLE4.name, "paper", TABLES)
    assert recovery(tracked) == f"restore it from version control (git checkout -- {tracked}) and rerun"
    assert "move it aside" in recovery(tmp_path / "table.csv")
    assert "move it aside" not in recovery(tmp_path / "published.csv", recomputed=False)


class Tiny(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, width)


def tiny_parts(width: int) -> dict:
    model = Tiny(width)
    return {"model": model, "optimizer": torch.optim.Adam(model.parameters())}


@pytest.mark.parametrize(
    "saved, difference",
    [
        (lambda parts: {"model": parts["model"].state_dict()}, "it has no 'optimizer' entry"),
        (
            lambda parts: {n: p.state_dict() for n, p in tiny_parts(4).items()},
            "layer.bias is (4,) saved, (3,) now",
        ),
    ],
    ids=["no optimizer entry", "a tensor of another shape"],
)
def test_a_checkpoint_that_does_not_fit_the_model_is_refused_naming_the_folder(saved, difference, tmp_path):
    parts = tiny_parts(3)
    path = tmp_path / "run" / "checkpoint.pt"
    config = TABLE4.configs("smoke")[0]
    state = {"config_id": results.config_id(config), **saved(parts), "run": dataclasses.asdict(RunState())}
    save_checkpoint(path, state)
    before = path.read_bytes()
    with pytest.raises(ReplicateError) as error:
        RunState.restore(path, config, parts)
    message = str(error.value)
    assert "\n" not in message and str(path.parent) in message and difference in message and "--force" in message
    assert path.read_bytes() == before


def test_load_part_names_a_key_the_model_lacks(tmp_path):
    saved = {"model": {**Tiny(3).state_dict(), "extra.weight": torch.zeros(1)}}
    with pytest.raises(ReplicateError, match="the checkpoint has extra.weight, the model does not"):
        load_part(Tiny(3), saved, "model", tmp_path)


def test_a_size_beyond_the_machines_memory_is_refused_before_anything_is_allocated(tmp_path, capsys):
    argv = ["run", TABLE4.name, "--scale", "smoke", "--set", "N=1000000000000", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = one_error_line(capsys)
    assert "needs at least 29,802.3 GiB for its largest tensor alone" in err and "--set" in err
    assert not (tmp_path / "out").exists()


def test_out_naming_a_regular_file_is_one_line(tmp_path, capsys):
    out = tmp_path / "results.txt"
    out.write_text("a user's file\n")
    for argv in (["run", TABLE4.name, "--scale", "smoke"], ["report", "--all"], ["train", "--config", "cifar10-ema"]):
        assert main([*argv, "--out", str(out)]) == 2
        assert f"--out {out} is a file" in one_error_line(capsys)
    assert out.read_text() == "a user's file\n"


def test_a_second_training_of_the_same_run_folder_is_refused_while_the_first_holds_its_lock(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "lock").write_text(f"{os.getpid()}@{socket.gethostname()}\n")  # a live holder: this process
    argv = ["train", "--config", "cifar10-wasserstein", "--scale", "smoke", "--set", "dataset=shapes"]
    assert main([*argv, "--run-dir", str(run_dir), "--out", str(tmp_path / "out")]) == 2
    assert f"another run is writing run folder {run_dir}" in one_error_line(capsys)
    assert sorted(p.name for p in run_dir.iterdir()) == ["lock"]


@pytest.mark.parametrize("content", [b"\x8c\xfe\x00garbage\xff\n", b"garbage\n"], ids=["bytes", "text"])
def test_a_damaged_lock_file_is_one_line_and_left_as_it_is(content, tmp_path, capsys):
    """A lock that names no process (bytes, or text that is not pid@host) cannot be judged stale: refused."""
    tables = tmp_path / "out" / "tables"
    tables.mkdir(parents=True)
    lock = result_path(TABLE4.name, "smoke", tables, "lock")
    lock.write_bytes(content)
    assert main(["run", TABLE4.name, "--scale", "smoke", "--out", str(tmp_path / "out")]) == 2
    assert f"lock file {lock} is damaged" in one_error_line(capsys)
    assert snapshot(tables) == {lock: content}


def test_a_damaged_published_file_stops_a_run_before_it_trains(tmp_path, monkeypatch, capsys):
    published = tmp_path / "published"
    shutil.copytree(PUBLISHED, published)
    monkeypatch.setattr(compare, "PUBLISHED", published)
    (published / TABLE4.published).write_text("")
    assert main(["run", TABLE4.name, "--scale", "smoke", "--out", str(tmp_path / "out")]) == 2
    assert "is damaged (empty)" in one_error_line(capsys)
    assert not list((tmp_path / "out").rglob("*.csv*"))


def test_extra_tables_are_saved_before_the_result_rows_that_mark_them_done(tmp_path, monkeypatch):
    """A kill between two writes must never leave a finished row without its curves (the row is what a resumed
    run skips; found by scripts/damaged_inputs.py: 16 of 80 curve rows lost after a kill -9)."""
    from replicate import runner

    written = []
    monkeypatch.setattr(runner, "write_csv", lambda path, frame: written.append(path.name))
    store = runner.ResultStore(TABLE4, "smoke", tmp_path)
    store.add({"config_key": "k"}, {"utilization": 1.0}, {"curves": [{"step": 0}], "points": [{"x": 0.0}]})
    store.save()
    assert written == [
        f"{TABLE4.name}_smoke_curves.csv",
        f"{TABLE4.name}_smoke_points.csv.gz",
        f"{TABLE4.name}_smoke.csv",
    ]


def test_an_interrupted_forced_run_resumes_and_a_plain_rerun_is_refused_until_it_completes(
    smoke_table4, tmp_path, capsys
):
    out = tmp_path / "out"
    shutil.copytree(smoke_table4, out)
    folders = dict(tables=out / "tables", figures=out / "figures", runs=out / "runs")
    calls, interrupted = [], []

    def run(config, workspace):
        calls.append(config)
        if len(calls) == 3 and not interrupted:  # Ctrl-C during the third configuration of the first forced run
            interrupted.append(True)
            raise KeyboardInterrupt
        return TABLE4.run(config, workspace)

    counted = dataclasses.replace(TABLE4, run=run)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(counted, "smoke", force=True, **folders)
    journal = result_path(TABLE4.name, "smoke", folders["tables"], "force")
    assert journal.exists()
    table = result_path(TABLE4.name, "smoke", folders["tables"])
    before = table.read_bytes()
    with pytest.raises(ReplicateError, match="part-way through a --force recompute"):
        run_experiment(counted, "smoke", **folders)
    assert table.read_bytes() == before
    calls.clear()
    run_experiment(counted, "smoke", force=True, **folders)  # resumes at the interrupted configuration
    assert len(calls) == len(TABLE4.configs("smoke")) - 2 and not journal.exists()
    calls.clear()
    run_experiment(counted, "smoke", force=True, **folders)  # completed: a new --force recomputes everything
    assert len(calls) == len(TABLE4.configs("smoke"))


def test_the_run_summary_ends_with_one_closing_tally(capsys):
    claims = [Claim("a", True), Claim("b", False), Claim("c", None)]
    outcomes = [
        Outcome("wvq_table4", "ran", claims=claims),
        Outcome("wvq_fig3", "skipped", "no data"),
        Outcome("wvq_fig12", "failed", "ValueError: x"),
    ]
    print_summary(outcomes, "smoke")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == "Total: 1 ran, 1 skipped, 1 failed; claims holding: 1 of 2 checked"


def test_train_refuses_a_checkpoint_whose_model_changed_under_the_same_configuration(tmp_path, capsys):
    from replicate.runner import apply_overrides
    from replicate.train.configs import train_config
    from replicate.train.tokenizer import build_model

    settings = {"dataset": "shapes", "max_train_images": "64", "batch_size": "16"}
    config = apply_overrides(train_config("cifar10-wasserstein", "smoke"), settings)
    other = build_model(dataclasses.replace(config, K=config.K * 2))  # the codebook of other code, same config_id
    run_dir = tmp_path / "run"
    state = {"config_id": results.config_id(config), "model": other.state_dict(), "run": dataclasses.asdict(RunState())}
    save_checkpoint(run_dir / "checkpoint.pt", state)
    before = snapshot(run_dir)
    argv = ["train", "--config", "cifar10-wasserstein", "--scale", "smoke", "--run-dir", str(run_dir)]
    overrides = [part for name, value in settings.items() for part in ("--set", f"{name}={value}")]
    assert main([*argv, *overrides, "--out", str(tmp_path / "out")]) == 2
    err = one_error_line(capsys)
    assert f"the checkpoint in {run_dir} does not fit this code" in err and "saved" in err and "--force" in err
    assert snapshot(run_dir) == before
