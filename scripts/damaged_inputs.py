"""Damaged inputs (issue 38): 62 bad inputs tried on a fresh clone, one command each, every one checked for exit
status 2 where it is an error, exactly one line on stderr and no traceback, the damaged file byte-identical afterwards
and no result file rewritten.

A reconstruction of the issue's 62 inputs from its categories (damaged published data, result tables, curves, lock
files and checkpoints; absurd sizes, --out naming a file, unknown names; concurrent runs, kill -9 and resume,
--force); the original harness was not kept, so the inputs are not the original ones one for one. The scenarios
(concurrency, kill -9, --force) check their own outcome: the second run refused in one line and the first finishing,
the resumed cells equal to an uninterrupted run's, a lock of a dead process taken over. Not tried: wvq_generation
--force (a smoke generation arm takes minutes).

    git clone -q . /tmp/damage-clone
    .venv/bin/python scripts/damaged_inputs.py /tmp/damage-clone [--only SUBSTRING]

The clone must be clean (as cloned): every case damages it, runs `python -m replicate ...` there with the clone's
own code (cwd and PYTHONPATH the clone, $VQ_OFFLINE=1, 12 GB address space at most) and restores it (git checkout,
git clean, the smoke outputs made at the start copied back). Never point it at a checkout you work in. Prints one
line per case and "N of 62 handled as they should"; exit status 1 when one is not. About 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

WATCHED = ("tables", "figures", "data", "runs", "REPORT.md")  # what a refused command must leave as it was
PROVENANCE = {"date", "seconds", "git_rev", "device", "torch", "tf32", "train_seconds", "train_revisions"}
TRAIN = ["train", "--config", "cifar10-wasserstein", "--scale", "smoke"]
KEEP = (".venv", "__pycache__", "*.egg-info")  # never removed from the clone
MEMORY = 12 * 2**30  # address-space limit of every command: an allocation that slips through fails, the host lives


@dataclass
class Result:
    ok: bool
    what: str  # what happened, one line
    command: str = ""
    rc: int | None = None
    stderr: str = ""


@dataclass
class Case:
    """A bad input: `damage` changes the clone (returns the damaged files), then `argv` must be refused: exit 2,
    one line on stderr holding every text of `mention`, the clone's results byte-identical. A case with a
    `scenario` checks its own outcome instead."""

    name: str
    argv: list[str] = field(default_factory=list)
    damage: Callable[[Clone], list[Path]] | None = None
    mention: tuple[str, ...] = ()
    scenario: Callable[[Clone], Result] | None = None


# ---- the clone ---------------------------------------------------------------------------------------------------


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


class Clone:
    def __init__(self, root: Path, fixtures: Path) -> None:
        self.root, self.fixtures = root, fixtures
        self.env = {**os.environ, "PYTHONPATH": str(root), "VQ_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        self.head = self.git("rev-parse", "HEAD").strip()

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True, text=True).stdout

    def start(self, argv: list[str], stderr=subprocess.PIPE) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "replicate", *argv],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            errors="replace",
            preexec_fn=_limit_memory,
        )

    def run(self, argv: list[str], timeout: float = 300) -> tuple[int, str, str]:
        process = self.start(argv)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            return -9, out, err + f"\n(harness: killed after {timeout:.0f} s)"
        return process.returncode, out, err

    def path(self, relative: str) -> Path:
        return self.root / relative

    def snapshot(self) -> dict[str, str]:
        files = {}
        for name in WATCHED:
            top = self.root / name
            for path in [top] if top.is_file() else sorted(top.rglob("*")) if top.exists() else []:
                if path.is_file() and "__pycache__" not in path.parts:
                    files[str(path.relative_to(self.root))] = hashlib.sha1(path.read_bytes()).hexdigest()
        return files

    def keep_fixtures(self) -> None:
        """The untracked outputs made at the start (smoke tables, the smoke tokenizer's run folder), for restore."""
        listed = self.git("ls-files", "--others", "--ignored", "--exclude-standard", "-z").split("\0")
        for name in (n for n in listed if n and n.startswith(("tables/", "figures/", "runs/"))):
            (self.fixtures / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.root / name, self.fixtures / name)

    def restore(self) -> None:
        if self.git("rev-parse", "HEAD").strip() != self.head:
            self.git("reset", "-q", "--hard", self.head)
        self.git("checkout", "-q", "--", ".")
        self.clean()
        shutil.copytree(self.fixtures, self.root, dirs_exist_ok=True)

    def clean(self) -> None:
        """Remove every untracked and ignored file but a virtual environment and bytecode."""
        self.git("clean", "-fdxq", *(f"--exclude={keep}" for keep in KEEP))

    def run_folder(self) -> Path:
        """The run folder of the smoke cifar10-wasserstein tokenizer trained at the start."""
        (folder,) = (self.root / "runs" / "tokenizers").iterdir()
        return folder


def command_text(argv: list[str]) -> str:
    return "python -m replicate " + " ".join(argv)


def lines_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def head(stderr: str, count: int = 3) -> str:
    return " | ".join(line.strip()[:220] for line in lines_of(stderr)[:count]) or "(nothing)"


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(
        [f"+{p}" for p in after.keys() - before.keys()]
        + [f"-{p}" for p in before.keys() - after.keys()]
        + [f"~{p}" for p in before.keys() & after.keys() if before[p] != after[p]]
    )


def refused(clone: Clone, argv: list[str], mention=(), before=None, timeout: float = 300) -> Result:
    """Run argv and check the refusal: exit 2, one line without a traceback naming `mention`, and (unless `before`
    is False) the watched files as they were."""
    before = clone.snapshot() if before is None else before
    rc, _, err = clone.run(argv, timeout)
    lines = lines_of(err)
    changed = changes(before, clone.snapshot()) if before is not False else []
    problems = []
    if rc != 2:
        problems.append(f"exit {rc}")
    if "Traceback" in err:
        problems.append("a traceback")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr")
    missing = [text for text in mention if text not in err]
    if missing:
        problems.append(f"the line does not name {', '.join(missing)}")
    if changed:
        problems.append(f"files changed: {', '.join(changed[:4])}{' ...' if len(changed) > 4 else ''}")
    what = "; ".join(problems) if problems else "exit 2, one line"
    return Result(not problems, f"{what}: {head(err, 1)}", command_text(argv), rc, err)


# ---- damage ------------------------------------------------------------------------------------------------------


def random_bytes() -> bytes:
    return random.Random(38).randbytes(300) + b"\n"  # not UTF-8, not a zip, not gzip


def cut_mid_line(data: bytes) -> bytes:
    cut = data[: len(data) // 2]
    return cut[:-1] if cut.endswith(b"\n") else cut


def cut_in_quotes(data: bytes) -> bytes:
    text = data.decode()
    second_line = text.index("\n") + 1
    return (text[: text.index('"', second_line) + 10] + "\n").encode()


def edit_csv(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[bytes], bytes]:
    """A damage made the way a user with pandas would: read (every cell as text), changed, written back."""

    def apply(data: bytes) -> bytes:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
        return change(frame).to_csv(index=False).encode()

    return apply


def drop(column: str):
    return edit_csv(lambda frame: frame.drop(columns=column))


def text_in(column: str, text: str):
    return edit_csv(lambda frame: frame.assign(**{column: [text, *frame[column][1:]]}))


def file_damage(relative: str, change: Callable[[bytes], bytes]) -> Callable[[Clone], list[Path]]:
    def damage(clone: Clone) -> list[Path]:
        path = clone.path(relative)
        path.write_bytes(change(path.read_bytes()) if path.exists() else change(b""))
        return [path]

    return damage


def write(relative: str, data: bytes) -> Callable[[Clone], list[Path]]:
    return file_damage(relative, lambda _: data)


def checkpoint_damage(change: Callable[[dict], dict] | None = None, data: bytes | None = None):
    """Damage to the smoke tokenizer's checkpoint: its state changed and saved again, or its bytes replaced."""

    def damage(clone: Clone) -> list[Path]:
        path = clone.run_folder() / "checkpoint.pt"
        if data is not None:
            path.write_bytes(data if data != b"half" else path.read_bytes()[: path.stat().st_size // 2])
        else:
            import torch

            torch.save(change(torch.load(path, map_location="cpu", weights_only=False)), path)
        return [path]

    return damage


def without(entry: str) -> Callable[[dict], dict]:
    return lambda state: {k: v for k, v in state.items() if k != entry}


def wider_tensor(state: dict) -> dict:
    """The codebook twice as large: the model code changed under the same configuration."""
    model = dict(state["model"])
    name = "quantizer.weight" if "quantizer.weight" in model else next(n for n, t in model.items() if t.ndim)
    model[name] = model[name].new_zeros((2 * model[name].shape[0], *model[name].shape[1:]))
    return {**state, "model": model}


def run_folder_lock(data: bytes) -> Callable[[Clone], list[Path]]:
    def damage(clone: Clone) -> list[Path]:
        path = clone.run_folder() / "lock"
        path.write_bytes(data)
        return [path]

    return damage


def removed(*relatives: str) -> Callable[[Clone], list[Path]]:
    def damage(clone: Clone) -> list[Path]:
        for relative in relatives:
            for path in clone.root.glob(relative):
                path.unlink()
        return []

    return damage


def out_file(clone: Clone) -> list[Path]:
    path = clone.path("results.txt")
    path.write_text("a user's file\n")
    return [path]


# ---- scenarios: concurrency, kill -9 and resume, --force -----------------------------------------------------------


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, timeout: float = 240) -> bool:
    """Poll `condition` until it holds; False when the process ends first or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return condition()
        time.sleep(0.1)
    return False


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


def two_at_once(argv: list[str], lock: Callable[[Clone], Path | None], prepare=None) -> Callable[[Clone], Result]:
    """The same command twice: the second starts while the first holds its lock and must be refused in one line;
    the first must finish (exit 0)."""

    def scenario(clone: Clone) -> Result:
        if prepare:
            prepare(clone)
        first = clone.start(argv)
        if not wait_for(lambda: lock(clone) is not None, first):
            finish(first)
            return Result(False, "the first run never held a lock file", command_text(argv) + " (twice)")
        second = refused(clone, argv, ("another run",), before=False)  # the first writes meanwhile
        overlapped = first.poll() is None  # the first still ran when the second ended: they did run at once
        rc, _, err = finish(first)
        ok = second.ok and rc == 0
        what = f"second: {second.what}; first: exit {rc}"
        if not overlapped and not second.ok:
            what = f"not at once (the first ended before the second); {what}"
        if rc != 0:
            what += f": {head(err, 2)}"
        return Result(ok, what, command_text(argv) + " (twice, at once)", second.rc, second.stderr)

    return scenario


def table_lock(name: str) -> Callable[[Clone], Path | None]:
    return lambda clone: clone.path(f"tables/{name}.lock") if clone.path(f"tables/{name}.lock").exists() else None


def new_folder_lock(clone: Clone) -> Path | None:
    return next(iter(sorted((clone.root / "runs" / "tokenizers").glob("*/lock"))), None)


def compare_cells(left: Path, right: Path) -> tuple[int, int, str]:
    """Cells compared and cells that differ between two tables (provenance columns left out), matched on config_key
    where there is one, else row by row."""
    a, b = (pd.read_csv(p, dtype=str, keep_default_na=False) for p in (left, right))
    key = "config_key" if "config_key" in a.columns and "step" not in a.columns else None
    if key:
        a, b = a.set_index(key).sort_index(), b.set_index(key).sort_index()
    if list(a.columns) != list(b.columns) or len(a) != len(b) or (key and list(a.index) != list(b.index)):
        return 0, -1, f"shapes differ: {a.shape} vs {b.shape}"
    columns = [c for c in a.columns if c not in PROVENANCE]
    differ = int((a[columns].to_numpy() != b[columns].to_numpy()).sum())
    return a[columns].size, differ, ""


def fig12_rows(clone: Clone) -> int:
    """The configurations of wvq_fig12 at smoke scale: the rows of the table made at the start."""
    return len((clone.fixtures / "tables" / "wvq_fig12_smoke.csv").read_text().splitlines()) - 1


def configs_done(log: Path) -> int:
    """The configurations a run's progress bar (its stderr, in the file `log`) shows finished."""
    counts = re.findall(r"\|\s*(\d+)/\d+ \[", log.read_text(errors="replace"))
    return max(map(int, counts), default=0)


def kill_and_resume_run(clone: Clone) -> Result:
    """kill -9 a run of wvq_fig12 (smoke) once part of its table is written (or, where the run is too quick for
    its 10-second saves, 2 configurations before its end), rerun it: the same cells as the uninterrupted run made at
    the start."""
    argv = ["run", "wvq_fig12", "--scale", "smoke"]
    removed("tables/wvq_fig12_smoke*")(clone)
    table, total = clone.path("tables/wvq_fig12_smoke.csv"), fig12_rows(clone)
    with tempfile.NamedTemporaryFile("w+", suffix=".stderr") as log:

        def partial() -> bool:
            written = table.exists() and 1 <= len(table.read_text().splitlines()) - 1 < total
            return written or configs_done(Path(log.name)) >= total - 2

        process = clone.start(argv, stderr=log)
        if not wait_for(partial, process):
            finish(process)
            return Result(False, "the run ended before it could be killed", command_text(argv))
        process.send_signal(signal.SIGKILL)
        finish(process)
    rows = len(pd.read_csv(table)) if table.exists() else 0
    curves = clone.path("tables/wvq_fig12_smoke_curves.csv")
    with_curves = len(set(pd.read_csv(curves, dtype=str)["config_key"])) if curves.exists() else 0
    killed = f"killed with {rows} of {total} rows written, {with_curves} with curves"
    command = f"kill -9 during `{command_text(argv)}`, then the same command"
    rc, out, err = clone.run(argv)
    if rc != 0:
        return Result(False, f"{killed}; the rerun exits {rc}: {head(err)}", command, rc, err)
    compared, differ = 0, 0
    for name in ("wvq_fig12_smoke.csv", "wvq_fig12_smoke_curves.csv"):
        cells, wrong, note = compare_cells(clone.fixtures / "tables" / name, clone.path(f"tables/{name}"))
        if note:
            return Result(False, f"{killed}; resumed: {name}: {note}", command, rc, err)
        compared, differ = compared + cells, differ + wrong
    lock_left = clone.path("tables/wvq_fig12_smoke.lock").exists()
    ok = differ == 0 and not lock_left
    what = f"{killed}; resumed: {differ} of {compared} cells differ" + ("; lock left behind" if lock_left else "")
    return Result(ok, what, command, rc, err)


def kill_and_resume_train(clone: Clone) -> Result:
    """kill -9 a smoke tokenizer training after its first checkpoint (step 2 of 4), rerun it: the same evaluation
    as the uninterrupted training made at the start."""
    folder = clone.path("runs/killed")
    argv = [*TRAIN, "--run-dir", str(folder)]
    process = clone.start(argv)
    if not wait_for(lambda: (folder / "checkpoint.pt").exists(), process):
        finish(process)
        return Result(False, "the training ended before its first checkpoint", command_text(argv))
    finished_before_kill = (folder / "eval.csv").exists()
    process.send_signal(signal.SIGKILL)
    finish(process)
    if finished_before_kill:
        return Result(False, "the training finished before it could be killed", command_text(argv))
    rc, _, err = clone.run(argv)
    if rc != 0:
        return Result(False, f"the rerun exits {rc}: {head(err)}", command_text(argv), rc, err)
    compared, differ, note = compare_cells(
        clone.fixtures / clone.run_folder().relative_to(clone.root) / "eval.csv", folder / "eval.csv"
    )
    ok = not note and differ == 0
    what = note or f"killed after its step-2 checkpoint; resumed: {differ} of {compared} evaluation cells differ"
    return Result(ok, what, f"kill -9 during `{command_text(argv)}`, then the same command", rc, err)


def force_after_commit(clone: Clone) -> Result:
    """--force after a new commit recomputes every configuration and stamps the new revision in every row."""
    clone.git(
        "-c",
        "user.name=harness",
        "-c",
        "user.email=harness@localhost",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "a new revision",
    )
    revision = clone.git("rev-parse", "--short", "HEAD").strip()
    argv = ["run", "wvq_table4", "--scale", "smoke", "--force"]
    rc, out, err = clone.run(argv)
    table = pd.read_csv(clone.path("tables/wvq_table4_smoke.csv"), dtype=str)
    stamped = int((table["git_rev"] == revision).sum())
    journal = clone.path("tables/wvq_table4_smoke.force").exists()
    ok = rc == 0 and stamped == len(table) == 8 and not journal
    what = f"exit {rc}; {stamped} of {len(table)} rows stamped {revision}" + ("; journal left" if journal else "")
    return Result(ok, what, "git commit --allow-empty; " + command_text(argv), rc, err)


def interrupt_force(clone: Clone) -> tuple[bool, str]:
    """Ctrl-C a --force run of wvq_fig12 (smoke) once its progress bar shows 2 configurations done (its journal
    is written when it stops)."""
    journal = clone.path("tables/wvq_fig12_smoke.force")
    with tempfile.NamedTemporaryFile("w+", suffix=".stderr") as log:

        def two_done() -> bool:
            return configs_done(Path(log.name)) >= 2

        process = clone.start(["run", "wvq_fig12", "--scale", "smoke", "--force"], stderr=log)
        if not wait_for(two_done, process):
            rc, _, _ = finish(process)
            return (
                False,
                f"the forced run ended (exit {rc}) before 2 configurations: {head(Path(log.name).read_text())}",
            )
        process.send_signal(signal.SIGINT)
        rc, _, _ = finish(process)
    done = len(json.loads(journal.read_text())["recomputed"]) if journal.exists() else 0
    return journal.exists(), f"interrupted (exit {rc}) with {done} configuration(s) recomputed"


def plain_rerun_after_interrupted_force(clone: Clone) -> Result:
    interrupted, note = interrupt_force(clone)
    argv = ["run", "wvq_fig12", "--scale", "smoke"]
    if not interrupted:
        return Result(False, note, command_text(argv))
    result = refused(clone, argv, ("--force",))
    result.what = f"{note}; plain rerun: {result.what}"
    result.command = f"Ctrl-C during `{command_text([*argv, '--force'])}`, then `{command_text(argv)}`"
    return result


def forced_rerun_resumes(clone: Clone) -> Result:
    interrupted, note = interrupt_force(clone)
    argv = ["run", "wvq_fig12", "--scale", "smoke", "--force"]
    if not interrupted:
        return Result(False, note, command_text(argv))
    done = len(json.loads(clone.path("tables/wvq_fig12_smoke.force").read_text())["recomputed"])
    rc, out, err = clone.run(argv)
    match = re.search(r"(\d+) new configuration", out)
    redone = int(match.group(1)) if match else -1
    journal = clone.path("tables/wvq_fig12_smoke.force").exists()
    expected = fig12_rows(clone) - done
    ok = rc == 0 and redone == expected and not journal
    what = f"{note}; rerun with --force: exit {rc}, {redone} configuration(s) recomputed (expected {expected})"
    what += "; journal left" if journal else "; journal gone"
    return Result(ok, what, f"Ctrl-C during `{command_text(argv)}`, then the same command", rc, err)


def train_force_retrains(clone: Clone) -> Result:
    """train --force empties the run folder first: the training starts from scratch."""
    folder = clone.run_folder()
    (folder / "marker").write_text("left by the harness\n")
    argv = [*TRAIN, "--force"]
    rc, _, err = clone.run(argv)
    emptied = not (folder / "marker").exists()
    trained = (folder / "checkpoint.pt").exists() and "4/4" in err
    ok = rc == 0 and emptied and trained
    what = f"exit {rc}; run folder {'emptied' if emptied else 'not emptied'}; {'trained 4 steps' if trained else ''}"
    return Result(ok, what, command_text(argv), rc, err)


def stale_lock_taken_over(clone: Clone) -> Result:
    """A lock left by a process that has ended (a killed run) is taken over: exit 0, lock gone after."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock = clone.path("tables/wvq_table4_smoke.lock")
    lock.write_text(f"{dead.pid}@{socket.gethostname()}\n")
    argv = ["run", "wvq_table4", "--scale", "smoke"]
    rc, _, err = clone.run(argv)
    ok = rc == 0 and not lock.exists() and "Traceback" not in err
    what = f"exit {rc}; lock {'left' if lock.exists() else 'taken over and released'}: {head(err, 1)}"
    return Result(ok, what, f"a lock of dead process {dead.pid}, then {command_text(argv)}", rc, err)


def live_lock(clone: Clone) -> list[Path]:
    path = clone.path("tables/wvq_table4_smoke.lock")
    path.write_text(f"{os.getpid()}@{socket.gethostname()}\n")  # a live holder: the harness
    return [path]


# ---- the 62 inputs -----------------------------------------------------------------------------------------------

T4 = "data/published/wvq_table4.csv"
T6 = "tables/wvq_table6_cpu.csv"
SMOKE4 = "tables/wvq_table4_smoke.csv"
CURVES = "tables/wvq_fig12_cpu_curves.csv"
REPORT_T4 = ["report", "wvq_table4", "--scale", "cpu"]
REPORT_T6 = ["report", "wvq_table6", "--scale", "cpu"]
RUN_T4 = ["run", "wvq_table4", "--scale", "smoke"]
FIGURES_12 = ["figures", "wvq_fig12", "--scale", "cpu"]
RESTORE, ASIDE = "git checkout", "move it aside"


def damaged_file(name, relative, change, argv, recovery) -> Case:
    return Case(name, argv, file_damage(relative, change), (Path(relative).name, recovery))


CASES = [
    # published data: named, "restore it", REPORT.md and the comparison left as they are
    damaged_file("published wvq_table4.csv cut mid-line", T4, cut_mid_line, REPORT_T4, RESTORE),
    damaged_file("published wvq_table4.csv random bytes", T4, lambda _: random_bytes(), REPORT_T4, RESTORE),
    damaged_file("published wvq_table4.csv empty", T4, lambda _: b"", REPORT_T4, RESTORE),
    damaged_file("published wvq_table4.csv no value column", T4, drop("value"), REPORT_T4, RESTORE),
    damaged_file("published wvq_table4.csv no key column", T4, drop("spread"), REPORT_T4, RESTORE),
    damaged_file("published wvq_table4.csv cut inside a quoted field", T4, cut_in_quotes, REPORT_T4, RESTORE),
    damaged_file("published wvq_table4.csv text in value", T4, text_in("value", "twelve"), REPORT_T4, RESTORE),
    damaged_file(
        "published wvq_table6.csv cut mid-line, report --all",
        "data/published/wvq_table6.csv",
        cut_mid_line,
        ["report", "--all"],
        RESTORE,
    ),
    damaged_file(
        "published dq_tables.csv cut inside a quoted field",
        "data/published/dq_tables.csv",
        cut_in_quotes,
        ["report", "dq_generation", "--scale", "cpu"],
        RESTORE,
    ),
    Case(
        "published wvq_fig3.csv empty, run on a fresh clone (no smoke table yet)",
        ["run", "wvq_fig3", "--scale", "smoke"],
        lambda c: removed("tables/wvq_fig3_smoke*")(c) + write("data/published/wvq_fig3.csv", b"")(c),
        ("wvq_fig3.csv", RESTORE),
    ),
    # result tables: a committed one (restore from version control), a smoke one (move it aside)
    damaged_file("result table wvq_table6_cpu.csv truncated", T6, cut_mid_line, REPORT_T6, RESTORE),
    damaged_file("result table wvq_table6_cpu.csv random bytes", T6, lambda _: random_bytes(), REPORT_T6, RESTORE),
    damaged_file("result table wvq_table6_cpu.csv empty", T6, lambda _: b"", REPORT_T6, RESTORE),
    damaged_file("result table wvq_table6_cpu.csv no utilization column", T6, drop("utilization"), REPORT_T6, RESTORE),
    damaged_file("result table wvq_table6_cpu.csv no data column", T6, drop("data"), REPORT_T6, RESTORE),
    damaged_file("result table wvq_table6_cpu.csv no psnr column", T6, drop("psnr"), REPORT_T6, RESTORE),
    damaged_file(
        "result table wvq_table6_cpu.csv text in perplexity", T6, text_in("perplexity", "high"), REPORT_T6, RESTORE
    ),
    damaged_file(
        "result table wvq_table6_cpu.csv no psnr column, report --all", T6, drop("psnr"), ["report", "--all"], RESTORE
    ),
    damaged_file("smoke table wvq_table4_smoke.csv truncated", SMOKE4, cut_mid_line, RUN_T4, ASIDE),
    damaged_file("smoke table wvq_table4_smoke.csv random bytes", SMOKE4, lambda _: random_bytes(), RUN_T4, ASIDE),
    damaged_file("smoke table wvq_table4_smoke.csv no utilization column", SMOKE4, drop("utilization"), RUN_T4, ASIDE),
    damaged_file("smoke table wvq_table4_smoke.csv no data column", SMOKE4, drop("data"), RUN_T4, ASIDE),
    damaged_file(
        "smoke table wvq_table4_smoke.csv text in perplexity", SMOKE4, text_in("perplexity", "high"), RUN_T4, ASIDE
    ),
    damaged_file(
        "points wvq_fig3_cpu_points.csv.gz random bytes",
        "tables/wvq_fig3_cpu_points.csv.gz",
        lambda _: random_bytes(),
        ["figures", "wvq_fig3", "--scale", "cpu"],
        RESTORE,
    ),
    # curves
    damaged_file("curves wvq_fig12_cpu_curves.csv truncated", CURVES, cut_mid_line, FIGURES_12, RESTORE),
    damaged_file("curves wvq_fig12_cpu_curves.csv random bytes", CURVES, lambda _: random_bytes(), FIGURES_12, RESTORE),
    damaged_file(
        "curves wvq_fig12_cpu_curves.csv no config_key column", CURVES, drop("config_key"), FIGURES_12, RESTORE
    ),
    damaged_file(
        "curves wvq_fig12_smoke_curves.csv truncated, run",
        "tables/wvq_fig12_smoke_curves.csv",
        cut_mid_line,
        ["run", "wvq_fig12", "--scale", "smoke"],
        ASIDE,
    ),
    # lock files and the --force journal
    Case(
        "table lock random bytes",
        RUN_T4,
        write("tables/wvq_table4_smoke.lock", random_bytes()),
        ("wvq_table4_smoke.lock",),
    ),
    Case(
        "table lock holding text, not pid@host",
        RUN_T4,
        write("tables/wvq_table4_smoke.lock", b"garbage\n"),
        ("wvq_table4_smoke.lock",),
    ),
    Case("table lock of a live process", RUN_T4, live_lock, ("wvq_table4_smoke.lock", "another run")),
    Case("table lock of a dead process (a killed run)", scenario=stale_lock_taken_over),
    Case("run folder lock random bytes (train)", TRAIN, run_folder_lock(random_bytes()), ("lock",)),
    Case(
        "--force journal damaged",
        [*RUN_T4, "--force"],
        write("tables/wvq_table4_smoke.force", b"{not json\n"),
        ("wvq_table4_smoke.force",),
    ),
    # checkpoints of the smoke tokenizer (train)
    Case(
        "checkpoint without its optimizer entry",
        TRAIN,
        checkpoint_damage(without("optimizer")),
        ("runs/tokenizers/", "--force"),
    ),
    Case(
        "checkpoint with a tensor of another shape",
        TRAIN,
        checkpoint_damage(wider_tensor),
        ("runs/tokenizers/", "--force"),
    ),
    Case("checkpoint random bytes", TRAIN, checkpoint_damage(data=random_bytes()), ("checkpoint.pt",)),
    Case("checkpoint empty", TRAIN, checkpoint_damage(data=b""), ("checkpoint.pt",)),
    Case("checkpoint cut in half", TRAIN, checkpoint_damage(data=b"half"), ("checkpoint.pt",)),
    Case(
        "checkpoint of another configuration",
        TRAIN,
        checkpoint_damage(lambda state: {**state, "config_id": "method=other"}),
        ("runs/tokenizers/",),
    ),
    # configuration values
    Case("--set N=1000000000000 (run)", [*RUN_T4, "--set", "N=1000000000000"], mention=("--set",)),
    Case("--set K=1000000000000 (train)", [*TRAIN, "--set", "K=1000000000000"], mention=("--set",)),
    Case("--set N=abc", [*RUN_T4, "--set", "N=abc"], mention=("N",)),
    Case("--set of an unknown field", [*RUN_T4, "--set", "nosuchfield=1"], mention=("nosuchfield",)),
    Case("--where matching no configuration", [*RUN_T4, "--where", "method=nosuch"], mention=("nosuch",)),
    Case("--set batch_size=0 (train)", [*TRAIN, "--set", "batch_size=0"], mention=("batch_size",)),
    # names, values and --out
    Case("unknown experiment (run)", ["run", "nosuch", "--scale", "smoke"], mention=("nosuch",)),
    Case("unknown experiment (report)", ["report", "nosuch"], mention=("nosuch",)),
    Case("unknown scale", ["run", "wvq_table4", "--scale", "huge"], mention=("huge",)),
    Case("unknown train configuration", ["train", "--config", "nosuch", "--scale", "smoke"], mention=("nosuch",)),
    Case(
        "--only with one unknown name", ["run", "--only", "wvq_table4,nosuch", "--scale", "smoke"], mention=("nosuch",)
    ),
    Case("--out naming a file (run)", [*RUN_T4, "--out", "results.txt"], out_file, ("results.txt",)),
    Case("--out naming a file (report --all)", ["report", "--all", "--out", "results.txt"], out_file, ("results.txt",)),
    Case("--out naming a file (train)", [*TRAIN, "--out", "results.txt"], out_file, ("results.txt",)),
    # concurrency, kill -9 and resume, --force
    Case("two identical train runs at once", scenario=two_at_once([*TRAIN, "--set", "seed=7"], new_folder_lock)),
    Case(
        "two identical runs at once",
        scenario=two_at_once(
            ["run", "wvq_fig12", "--scale", "smoke"], table_lock("wvq_fig12_smoke"), removed("tables/wvq_fig12_smoke*")
        ),
    ),
    Case("kill -9 a run, then resume", scenario=kill_and_resume_run),
    Case("kill -9 a training, then resume", scenario=kill_and_resume_train),
    Case("--force after a new commit", scenario=force_after_commit),
    Case("interrupted --force, then a plain rerun", scenario=plain_rerun_after_interrupted_force),
    Case("interrupted --force, then --force again", scenario=forced_rerun_resumes),
    Case("train --force", scenario=train_force_retrains),
]


# ---- main --------------------------------------------------------------------------------------------------------


def try_case(clone: Clone, case: Case) -> Result:
    try:
        if case.scenario:
            return case.scenario(clone)
        damaged = case.damage(clone) if case.damage else []
        before = clone.snapshot()
        kept = {path: path.read_bytes() for path in damaged}
        result = refused(clone, case.argv, case.mention, before)
        altered = [
            str(p.relative_to(clone.root)) for p, data in kept.items() if not p.exists() or p.read_bytes() != data
        ]
        if altered and result.ok:
            result.ok, result.what = False, f"damaged file changed: {', '.join(altered)}; {result.what}"
        return result
    except Exception as error:  # a harness failure is reported as the case's failure, never hidden
        return Result(False, f"harness error: {type(error).__name__}: {error}")
    finally:
        clone.restore()


def prepare(clone: Clone) -> None:
    """The smoke outputs the cases damage or compare with: wvq_table4, wvq_fig3, wvq_fig12 and the
    cifar10-wasserstein tokenizer (4 steps)."""
    for argv in (RUN_T4, ["run", "wvq_fig3", "--scale", "smoke"], ["run", "wvq_fig12", "--scale", "smoke"], TRAIN):
        rc, _, err = clone.run(argv, timeout=600)
        if rc != 0:
            sys.exit(f"setup: {command_text(argv)} exits {rc}: {head(err)}")
    clone.keep_fixtures()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clone", type=Path, help="a fresh clone of the repository (it is damaged and restored)")
    parser.add_argument("--only", help="run only the cases whose name holds this text")
    args = parser.parse_args()
    root = args.clone.resolve()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
    if status.returncode != 0 or status.stdout.strip():
        sys.exit(f"{root} is not a clean git clone (git status: {status.stdout.strip()[:200] or status.stderr})")
    assert len(CASES) == 62, len(CASES)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="damaged-inputs-") as fixtures:
        clone = Clone(root, Path(fixtures))
        prepare(clone)
        print(f"setup: smoke outputs made in {time.time() - started:.0f} s", flush=True)
        chosen = [case for case in CASES if not args.only or args.only in case.name]
        failures = []
        for number, case in enumerate(chosen, 1):
            began = time.time()
            result = try_case(clone, case)
            verdict = "PASS" if result.ok else "FAIL"
            print(f"{verdict} {number:2d} {case.name} ({time.time() - began:.0f} s): {result.what}", flush=True)
            if not result.ok:
                failures.append((number, case, result))
        clone.restore()
        clone.clean()  # leave the clone as cloned
    for number, case, result in failures:
        lines = lines_of(result.stderr)
        print(
            f"\nFAIL {number} {case.name}\n  command: {result.command or command_text(case.argv)}\n  exit: {result.rc}"
        )
        print(f"  stderr ({len(lines)} lines), first: {head(result.stderr, 2)}")
        if len(lines) > 2:
            print(f"  stderr, last: {lines[-1].strip()[:300]}")
    print(f"\n{len(chosen) - len(failures)} of {len(chosen)} handled as they should ({time.time() - started:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
