"""Result files: one path rule for every table and figure, the identity of a configuration (its fields and the
resolved settings of its quantizer), provenance of every row, validated reads, atomic writes and a lock per
table (a crash never leaves half a file; two runs never write the same table at once)."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from replicate.errors import ReplicateError
from replicate.spec import ROW_COLUMNS

if TYPE_CHECKING:
    import torch

    from replicate.spec import Experiment

ROOT = Path(__file__).resolve().parent.parent
TABLES = ROOT / "tables"
FIGURES = ROOT / "figures"
RUNS = ROOT / "runs"  # run folders: checkpoints, token caches, trained proxies (git-ignored)
PUBLISHED = ROOT / "data" / "published"
EXTRA_TABLES = ("curves", "points", "images")  # the extra tables an experiment may write beside its results
RUN_OPTION = {"run_option": True}  # field metadata: a machine setting (data folder, workers), not the configuration


class ResultFileError(ReplicateError):
    """A result table that cannot be read as one."""


# ---- one path rule ---------------------------------------------------------------------------------------------


def result_path(name: str, scale: str, tables: Path = TABLES, table: str = "") -> Path:
    """tables/E_S.csv, or tables/E_S_<table>.csv for an extra table ("curves", "comparison"); scatter points and
    PNG-encoded images, megabytes of figure data, go to tables/E_S_points.csv.gz and tables/E_S_images.csv.gz; the
    Markdown comparison is tables/E_S.md (table "md"), the lock of a run writing them tables/E_S.lock ("lock") and
    the journal of a forced run tables/E_S.force ("force")."""
    if table in ("md", "lock", "force"):
        return tables / f"{name}_{scale}.{table}"
    suffix = ".csv.gz" if table in ("points", "images") else ".csv"
    return tables / f"{name}_{scale}{'_' + table if table else ''}{suffix}"


def figure_path(name: str, scale: str, figures: Path = FIGURES, figure: str = "") -> Path:
    """figures/E_S.png, or figures/E_<figure>_S.png for a named figure of the experiment."""
    return figures / f"{name}{'_' + figure if figure else ''}_{scale}.png"


def run_folder(kind: str, identity: str, runs: Path = RUNS) -> Path:
    """runs/<kind>/<config_key(identity)>/: the folder of one trained thing ("tokenizers", "generators", "proxies"),
    named by the id of what it depends on, so that every experiment and `train` that trains the same configuration
    shares one folder."""
    return runs / kind / config_key(identity)


@dataclass
class Workspace:
    """Where one invocation runs: its device and its run folders under `runs` (out/runs with --out). With `force`,
    a folder is emptied the first time it is asked for, so that everything a recomputed configuration depends on
    (its tokenizer, its proxy classifier) is recomputed. Under torchrun every rank asks for a folder at the same
    point (rank 0 empties it, the others wait).

    A forced run keeps a journal (tables/E_S.force) of the folders it has emptied and the configurations it has
    recomputed at this code revision: rerunning an interrupted --force resumes it (an emptied folder is not emptied
    again, so its training resumes from its checkpoint) instead of starting over. The journal goes when the
    forced run completes."""

    device: torch.device
    runs: Path = RUNS
    force: bool = False
    journal: Path | None = None
    cleared: set[Path] = field(default_factory=set)
    recomputed: set[str] = field(default_factory=set)  # config_keys

    def __post_init__(self) -> None:
        if self.force and self.journal is not None:
            state = read_journal(self.journal)
            if state and state["revision"] == git_revision():
                self.cleared = {self.runs / folder for folder in state["cleared"]}
                self.recomputed = set(state["recomputed"])

    def folder(self, kind: str, identity: str) -> Path:
        path = run_folder(kind, identity, self.runs)
        if self.force and path not in self.cleared:
            from replicate import distributed  # torch.distributed: only where training runs

            if distributed.rank() == 0:
                shutil.rmtree(path, ignore_errors=True)
            distributed.barrier()
            self.cleared.add(path)
            self._write_journal()
        return path

    def done(self, keys: list[str]) -> None:
        """Configurations (config_keys) this forced run has recomputed and saved."""
        if self.force and not self.recomputed.issuperset(keys):
            self.recomputed.update(keys)
            self._write_journal()

    def finish(self) -> None:
        """The forced run completed: nothing left to resume."""
        if self.force and self.journal is not None:
            self.journal.unlink(missing_ok=True)

    def _write_journal(self) -> None:
        from replicate import distributed

        if self.journal is not None and distributed.rank() == 0:
            folders = sorted(str(path.relative_to(self.runs)) for path in self.cleared)
            state = {"revision": git_revision(), "cleared": folders, "recomputed": sorted(self.recomputed)}
            write_atomic(self.journal, json.dumps(state, indent=1) + "\n")


def read_journal(path: Path) -> dict | None:
    """The journal of a forced run that has not completed (Workspace), None where there is none."""
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        if not {"revision", "cleared", "recomputed"} <= set(state):
            raise ValueError("a key is missing")
    except (OSError, ValueError) as error:
        raise damaged("journal of a forced run", path, f"{type(error).__name__}") from None
    return state


# ---- what a configuration is -----------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """A configuration value as written in a result table: tuples as "1,1,2" (the form --set reads)."""
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


def _fields(config) -> dict[str, Any]:
    """The fields that make a configuration what it is: all but run options (machine settings) and the
    `quantizer` changes, which enter through their resolved values (_quantizer_settings). A part (field metadata
    configs.PART: the model, the GAN loss, the optimisation) gives its own fields under their own names."""
    fields = {}
    for f in dataclasses.fields(config):
        if f.metadata.get("run_option") or f.name == "quantizer":
            continue
        inner = _fields(getattr(config, f.name)) if f.metadata.get("part") else {f.name: getattr(config, f.name)}
        clash = fields.keys() & inner.keys()
        if clash:  # a programming error: two settings would share a column
            raise ValueError(f"{type(config).__name__}: field(s) {sorted(clash)} named twice")
        fields |= inner
    return fields


def _quantizer_settings(config) -> dict[str, Any]:
    """Every setting of the quantizer a configuration trains, resolved (defaults included), as q_<name>; empty for
    configurations without one. A later change of a default shows in the data, not only in git_rev."""
    if not hasattr(config, "quantizer_config"):
        return {}
    resolved = config.quantizer_config()
    skip = ("num_codes", "dim")  # the K and d columns
    return {f"q_{f.name}": getattr(resolved, f.name) for f in dataclasses.fields(resolved) if f.name not in skip}


def configuration_fields(config) -> dict[str, Any]:
    """The configuration's columns of a result row. A nested configuration (a generator's tokenizer) gives its own
    columns and resolved quantizer settings under its field's name: tokenizer_method, tokenizer_q_beta, ..."""
    columns = {}
    for name, value in _fields(config).items():
        if dataclasses.is_dataclass(value):
            nested = {**configuration_fields(value), **quantizer_columns(value)}
            columns |= {f"{name}_{key}": cell for key, cell in nested.items()}
        else:
            columns[name] = _cell(value)
    return columns


def quantizer_columns(config) -> dict[str, Any]:
    """The resolved quantizer settings' columns of a result row (q_beta, q_decay, ...)."""
    return {name: _cell(value) for name, value in _quantizer_settings(config).items()}


def config_id(config) -> str:
    """A stable text id of a configuration: its fields and resolved quantizer settings as key=value (tuples, and a
    nested configuration's own id, in parentheses, so that the commas between settings stay unambiguous)."""
    settings = {**_fields(config), **_quantizer_settings(config)}
    return ",".join(f"{k}=({config_id(v)})" if dataclasses.is_dataclass(v) else f"{k}={v}" for k, v in settings.items())


def config_key(config_id: str) -> str:
    """The short key of a configuration (12 hex digits of the SHA-1 of its config_id): the extra tables (curves,
    points, images) carry it instead of the whole configuration, which their result row holds."""
    return hashlib.sha1(config_id.encode()).hexdigest()[:12]


def with_configuration(extra: pd.DataFrame, results: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """An extra table with the named configuration columns of its result rows, joined on config_key."""
    configuration = results[["config_key", *columns]]
    return extra.merge(configuration, on="config_key", how="left", validate="many_to_one")


def identity(name: str, scale: str, config, data: str) -> dict[str, Any]:
    """The leading columns of every result row: experiment, scale, config_id and its config_key, the configuration,
    the resolved quantizer settings and the data label."""
    identifier = config_id(config)
    return {
        "experiment": name,
        "scale": scale,
        "config_id": identifier,
        "config_key": config_key(identifier),
        **configuration_fields(config),
        **quantizer_columns(config),
        "data": data,
    }


# ---- provenance ------------------------------------------------------------------------------------------------


@functools.cache
def git_revision() -> str:
    """Short commit hash of the checkout, with "-dirty" when tracked files other than the generated outputs
    (tables/, figures/) have uncommitted changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!tables", ":!figures"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def provenance(device: torch.device) -> dict[str, Any]:
    """Where and with what a result was produced; stored beside every result row. `tf32`: whether CUDA matmuls
    (the nearest-code distances among them) ran in TF32, as the official training's. A CPU is named by its thread
    count and the vector instructions torch's kernels use (AVX2, AVX512): those set the speed (the `seconds`
    column) and the summation order, so rows from different CPUs may differ in their last digits."""
    import torch

    cuda = device.type == "cuda"
    threads, capability = torch.get_num_threads(), torch.backends.cpu.get_cpu_capability()
    name = torch.cuda.get_device_name(device) if cuda else f"cpu ({threads} threads, {capability})"
    return {
        "git_rev": git_revision(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "device": name,
        "tf32": bool(cuda and torch.backends.cuda.matmul.allow_tf32),
    }


# ---- reading and writing ---------------------------------------------------------------------------------------


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write text (or bytes) to path through a temporary file in the same folder and an atomic rename;
    gzip-compressed (reproducibly: no timestamp) where the name ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; results are shared files
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Atomic CSV; floats with 10 significant digits (far beyond any metric's precision, and diffable)."""
    write_atomic(path, frame.to_csv(index=False, float_format="%.10g"))


def recovery(path: Path, recomputed: bool = True) -> str:
    """The one-step way back from a damaged file: a tracked file is restored from version control; any other is
    moved aside, so that the run recomputes it, or, where nothing recomputes it (`recomputed` False: the papers'
    numbers), restored from the repository."""
    try:
        tracked = (
            subprocess.run(["git", "ls-files", "--error-unmatch", str(path)], cwd=ROOT, capture_output=True).returncode
            == 0
        )
    except OSError:
        tracked = False
    if tracked:
        return f"restore it from version control (git checkout -- {path}) and rerun"
    if not recomputed:
        return "restore it from a copy of the repository (it is not computed here) and rerun"
    return f"it is left in place for inspection: move it aside (mv {path} {path}.damaged) and rerun to recompute it"


def damaged(what: str, path: Path, reason: str, recomputed: bool = True) -> ResultFileError:
    return ResultFileError(f"{what} {path} is damaged ({reason}); {recovery(path, recomputed)}")


def read_table(path: Path, what: str, required=(), numeric=(), recomputed: bool = True) -> pd.DataFrame | None:
    """A CSV file this project reads back (None when absent), checked against its contract: the `required` columns
    are there and the `numeric` ones hold numbers (empty = NaN, "not computed"). Anything else is a one-line error
    naming the file, what is wrong and the way back; the file is never touched. The revision and config_key columns
    stay text (a hash such as 14e8245 would parse as a float). Every committed table and published file reads the
    same with only empty cells as missing as with pandas' default missing-value strings (checked 2026-12-03)."""
    if not path.exists():
        return None

    def fail(reason: str) -> ResultFileError:
        return damaged(what, path, reason, recomputed)

    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise fail(f"unreadable: {type(error).__name__}") from None
    if not raw.strip():
        raise fail("empty")
    if not raw.endswith(b"\n"):  # every table this project writes (and every published file) ends with a newline
        raise fail("cut off: its last line is incomplete")
    try:
        # Only an empty cell is missing ("not computed"): "n/a" or "NA" in a number column is damage, not NaN
        text_columns = {"git_rev": str, "config_key": str}
        frame = pd.read_csv(
            io.BytesIO(raw), dtype=text_columns, low_memory=False, keep_default_na=False, na_values=[""]
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise fail(f"not a CSV table: {str(error).splitlines()[0]}") from None
    absent = [repr(column) for column in required if column not in frame.columns]
    if absent:
        more = f" and {len(absent) - 3} more columns" if len(absent) > 3 else " column" + "s" * (len(absent) > 1)
        raise fail(f"no {', '.join(absent[:3])}{more}")
    for column in (c for c in numeric if c in frame.columns):
        values = pd.to_numeric(frame[column], errors="coerce")
        text = values.isna() & frame[column].notna()
        if text.any():
            row = int(text.to_numpy().nonzero()[0][0])
            raise fail(f"column {column!r} holds text, {frame[column].iloc[row]!r} on line {row + 2}")
        frame[column] = values
    return frame


def read_csv(path: Path, required=(), numeric=()) -> pd.DataFrame | None:
    """A result table (keyed by config_id) or an extra table (keyed by config_key), read by read_table."""
    frame = read_table(path, "result table", required, numeric)
    if frame is None:
        return None
    key = "config_id" if "config_id" in frame.columns else "config_key"
    if key not in frame.columns:
        raise damaged("result table", path, "no config_id or config_key column")
    if frame[key].isna().any():
        raise damaged("result table", path, f"{int(frame[key].isna().sum())} row(s) without a {key}")
    if "config_key" not in frame.columns:  # a result table written before config keys: the key follows from the id
        frame.insert(frame.columns.get_loc("config_id") + 1, "config_key", frame["config_id"].map(config_key))
    return frame


def read_results(experiment: Experiment, path: Path) -> pd.DataFrame | None:
    """An experiment's result table, checked against its contract: the columns of every row (ROW_COLUMNS), the
    experiment's keys and its metrics, the metrics numbers. A table missing a metric column is damaged, never "not
    run"."""
    return read_csv(path, (*ROW_COLUMNS, *experiment.keys, *experiment.metrics), experiment.metrics)


@contextmanager
def file_lock(path: Path, what: str) -> Iterator[None]:
    """Hold the lock file `path` while a run writes `what` (tables/E_S.lock for E_S's tables, <run folder>/lock for
    a training run): a second run is refused with a clear message; a lock left by a process that no longer exists
    (a killed run) is taken over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    me = f"{os.getpid()}@{socket.gethostname()}"
    for _ in range(2):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if holder and _alive(holder):
                raise ReplicateError(
                    f"another run is writing {what} (process {holder}, lock file {path}): wait for it to "
                    "finish, or delete the lock file if that process is gone"
                ) from None
            path.unlink(missing_ok=True)  # stale: its process has ended
            continue
        with os.fdopen(handle, "w") as file:
            file.write(me + "\n")
        break
    else:
        raise ReplicateError(f"could not take the lock file {path}; delete it if no run is in progress")
    try:
        yield
    finally:
        if path.exists() and path.read_text().strip() == me:
            path.unlink()


def _lock_holder(path: Path) -> str:
    """The "pid@host" a lock file names; a lock file that is not one (bytes that are no text, another line) is
    damaged: refused with one line, never taken over, since the run holding it cannot be known."""
    try:
        holder = path.read_text().strip() if path.exists() else ""
    except UnicodeDecodeError:
        holder = None
    if holder is not None and (not holder or re.fullmatch(r"\d+@\S+", holder)):
        return holder
    raise ReplicateError(
        f"lock file {path} is damaged (not 'pid@host'); delete it if no run is in progress, then rerun"
    )


def _alive(holder: str) -> bool:
    """Whether the process "pid@host" of a lock file still runs (one on another host is assumed to)."""
    pid, _, host = holder.partition("@")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True
