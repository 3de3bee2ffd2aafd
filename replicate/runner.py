"""Run an experiment at a scale: resolve and validate its configurations, skip those already in
tables/E_S.csv (unless forced), run the rest with a progress bar, and after each configuration rewrite the
result CSVs atomically, so an interrupted run loses at most the configuration in progress. Then write the
comparison with the published numbers and the figures."""

from __future__ import annotations

import dataclasses
import os
import time
import typing
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from replicate import distributed
from replicate.configs import with_changes
from replicate.errors import ConfigError, MissingDataError
from replicate.report.compare import compare, curves_for, load_published, render
from replicate.report.noise import judged_claims, noise_of
from replicate.report.plotting import save
from replicate.results import (
    EXTRA_TABLES,
    FIGURES,
    RUNS,
    TABLES,
    Workspace,
    config_id,
    config_key,
    figure_path,
    file_lock,
    identity,
    provenance,
    read_csv,
    read_results,
    result_path,
    write_atomic,
    write_csv,
)
from replicate.spec import SCALES, Claim, Experiment, Tables


@dataclass
class Outcome:
    experiment: str
    status: str  # "ran", "skipped" or "failed"
    reason: str = ""
    new_rows: int = 0
    outputs: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    claims: list[Claim] = field(default_factory=list)  # checked on every committed row, printed in the summary


def parse_overrides(pairs: list[str], option: str = "--set") -> dict[str, str]:
    """["K=1024", "seed=3"] -> {"K": "1024", "seed": "3"}."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} expects key=value, got {pair!r}")
        overrides[key.strip()] = value.strip()
    return overrides


def resolve_configs(
    experiment: Experiment,
    scale: str,
    overrides: dict[str, str] | None = None,
    where: dict[str, str] | None = None,
) -> list:
    """The experiment's configurations at `scale` that match `where` (every field equal to one of its
    comma-separated values), with overrides applied to every one and validated."""
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    configs = experiment.configs(scale)
    if where:
        configs = [c for c in configs if matches(c, where)]
        if not configs:
            shown = ", ".join(f"{k}={v}" for k, v in where.items())
            raise ConfigError(f"no configuration of {experiment.name} at scale {scale} has {shown}")
    if not overrides:
        return configs
    return list({config_id(c): c for c in (apply_overrides(c, overrides) for c in configs)}.values())


def check_data(configs: list) -> None:
    """Stop with one line (MissingDataError) when an image dataset that `configs` read is not where they look for it:
    a named experiment fails before anything runs or trains. Each (dataset, data_root) is opened once."""
    from replicate.data.images import image_dataset  # image code only where images are read

    for name, root in dict.fromkeys(source for config in configs for source in data_sources(config)):
        image_dataset(name, "train", root=root, resolution=32, train_augment=False, seed=0)


ROW_COUNTS = ("N", "K", "train_samples", "val_samples", "batch", "kmeans_vectors")  # rows a run holds at once
ROW_WIDTHS = ("d", "dim", "code_dim")  # the width of those rows


def largest_tensor_bytes(config) -> int:
    """A lower bound on the largest tensor a configuration allocates, in bytes: float32 rows of its width (d) for
    each count of features or codes (N, K, samples per step, a batch), and for an image model its first activation
    (a batch of `channels` maps at full resolution); nested configurations (a generator's tokenizer) count too."""
    width = next((getattr(config, name) for name in ROW_WIDTHS if isinstance(getattr(config, name, None), int)), 1)
    sizes = [4 * width * getattr(config, n) for n in ROW_COUNTS if isinstance(getattr(config, n, None), int)]
    model = getattr(config, "model", None)
    if hasattr(config, "batch_size") and hasattr(model, "channels") and hasattr(model, "resolution"):
        sizes.append(4 * config.batch_size * model.channels * model.resolution**2)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            sizes.append(largest_tensor_bytes(value))
    return max(sizes, default=0)


def free_memory_bytes(device: torch.device) -> int:
    """What the device can still hold: free GPU memory, or the host's available memory (Linux's MemAvailable)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(name: str, configs: list, device: torch.device) -> None:
    """Refuse, in one line and before anything is allocated, a configuration whose largest tensor alone exceeds
    what the device can hold (e.g. --set N=1000000000000)."""
    free = free_memory_bytes(device)
    for config in configs:
        needed = largest_tensor_bytes(config)
        if needed > free:
            raise ConfigError(
                f"{name}: a configuration needs at least {needed / 2**30:,.1f} GiB for its largest tensor alone, more "
                f"than the {free / 2**30:,.1f} GiB free on {device}: lower the sizes set with --set"
            )


def data_sources(config) -> list[tuple[str, str | None]]:
    """The (dataset, data_root) pairs of a configuration and of the configurations nested in it (a generator's
    tokenizer); none for a synthetic one."""
    found = [(config.dataset, config.data_root)] if hasattr(config, "dataset") and hasattr(config, "data_root") else []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            found += data_sources(value)
    return found


def matches(config, where: dict[str, str]) -> bool:
    """Whether every field named in `where` equals one of its comma-separated values (a tuple field's value is
    one whole tuple, written "1,1,2"; a nested configuration's field is named with a dot, "tokenizer.dataset");
    an unknown field fails with one line, as --set."""
    for key, text in where.items():
        owner, name = nested_field(config, key)
        hint = typing.get_type_hints(type(owner))[name]
        choices = [text] if typing.get_origin(hint) is tuple else text.split(",")
        if getattr(owner, name) not in [_parse(key, choice.strip(), hint) for choice in choices]:
            return False
    return True


def nested_field(config, key: str) -> tuple[object, str]:
    """The configuration that holds the field a dotted key names, and the field's name: a generator's
    "tokenizer.dataset" is (its tokenizer, "dataset")."""
    *path, name = key.split(".")
    for part in path:
        check_fields(config, [part])
        config = getattr(config, part)
        if not dataclasses.is_dataclass(config):
            raise ConfigError(f"{key}: {part} is not a configuration with fields")
    check_fields(config, [name])
    return config, name


def check_fields(config, names) -> None:
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(names) - fields)
    if unknown:
        raise ConfigError(
            f"unknown configuration field(s) {unknown} for {type(config).__name__}; valid: {sorted(fields)}"
        )


def apply_overrides(config, overrides: dict[str, str]):
    """A copy of a configuration dataclass with fields set from text values, parsed by their type hints; a nested
    configuration's field is named with a dot, as in `where` ("tokenizer.data_root"). An unknown field or a value of
    the wrong type fails with one line."""
    values = {}
    for key, text in overrides.items():
        owner, name = nested_field(config, key)
        values[key] = _parse(key, text, typing.get_type_hints(type(owner))[name])
    return with_changes(config, values)


def _parse(key: str, text: str, hint) -> object:
    """Text to a value of the hinted type: bool, int, float, str, an optional one ("none"), or a tuple of
    numbers written "1,1,2"."""
    options = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) is not tuple else []
    if options and text.lower() == "none":
        return None
    kind = options[0] if options else hint
    try:
        if typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            return tuple(item(part) for part in text.split(",") if part)
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        return kind(text)
    except (ValueError, TypeError):
        name = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"{key}={text!r} is not a valid {name}") from None


def run_experiment(
    experiment: Experiment,
    scale: str,
    *,
    force: bool = False,
    overrides: dict[str, str] | None = None,
    where: dict[str, str] | None = None,
    device: torch.device | None = None,
    tables: Path = TABLES,
    figures: Path = FIGURES,
    runs: Path = RUNS,
    tf32: bool | None = None,
) -> Outcome:
    """Run every configuration (of those matching `where`) not yet in the result table (every one with `force`,
    retraining from scratch everything it depends on: its run folders under `runs` are emptied), then write the
    comparison and the figures. Rank 0 holds the table's lock while it runs. tf32: CUDA matmuls in TF32; None = on
    at paper scale, as the official code (recorded in every row's provenance)."""
    started = time.time()
    configs = resolve_configs(experiment, scale, overrides, where)
    reason = experiment.missing(scale) if experiment.missing else None
    if reason:  # REPORT.md lists it as not run; a comparison is rewritten only from rows already there
        outputs = write_report(experiment, scale, tables) if distributed.rank() == 0 else []
        return Outcome(experiment.name, "skipped", reason, outputs=outputs)
    load_published(experiment)  # a damaged published file stops the run before it trains (one line)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    journal = result_path(experiment.name, scale, tables, "force")
    if not force and journal.exists():
        raise ConfigError(
            f"{result_path(experiment.name, scale, tables)} is part-way through a --force recompute ({journal}): "
            "rerun with --force to finish it, or delete the journal to keep the table as it stands"
        )
    workspace = Workspace(device, runs, force, journal)
    distributed.set_tf32(scale == "paper" if tf32 is None else tf32)
    lock_path = result_path(experiment.name, scale, tables, "lock")
    lock = file_lock(lock_path, "these tables") if distributed.rank() == 0 else nullcontext()
    with lock:
        store = ResultStore(experiment, scale, tables)
        done = set() if store.results is None else set(store.results["config_key"])
        done = done & workspace.recomputed if force else done  # a forced run resumes after what it has redone
        todo = [c for c in configs if config_key(config_id(c)) not in done]
        finished = []
        new_rows = 0
        try:
            for config in tqdm(
                todo, desc=f"{experiment.name} [{scale}]", unit="config", disable=not todo or distributed.rank() != 0
            ):
                config_started = time.time()
                try:
                    result = experiment.run(config, workspace)
                except MissingDataError as error:
                    store.save()
                    outputs = write_report(experiment, scale, tables) if distributed.rank() == 0 else []
                    return Outcome(experiment.name, "skipped", str(error), new_rows, outputs, time.time() - started)
                absent = [m for m in experiment.metrics if m not in result.metrics]
                if absent:  # a defect of the experiment's code, not of any input: its rows would not read back
                    raise RuntimeError(f"{experiment.name}'s run gave no {absent}, which its Experiment.metrics lists")
                row = identity(experiment.name, scale, config, experiment.data(config))
                seconds = round(time.time() - config_started, 3)
                finished.append(row["config_key"])
                if store.add(row, {**result.metrics, **provenance(device), "seconds": seconds}, result.extra_tables):
                    workspace.done(finished)  # saved: a forced run's journal may say so
                new_rows += 1
        finally:
            store.save()
            workspace.done(finished)
        workspace.finish()
        outputs, claims = store.paths(), []
        if distributed.rank() == 0:
            outputs += write_outputs(experiment, scale, tables=tables, figures=figures)
            claims = judged_claims(experiment, store.results, scale, tables)
    return Outcome(experiment.name, "ran", "", new_rows, outputs, time.time() - started, claims)


class ResultStore:
    """The result table and its extra tables (curves, points, ...) of one experiment at one scale. New rows
    replace a configuration's old ones; files are rewritten atomically at most every SAVE_EVERY seconds and
    on exit, so an interruption loses at most that much finished work."""

    SAVE_EVERY = 10.0  # seconds

    def __init__(self, experiment: Experiment, scale: str, tables: Path) -> None:
        self.experiment, self.scale, self.tables = experiment, scale, tables
        self.results = read_results(experiment, self.path())
        self.extra: dict[str, pd.DataFrame | None] = {}
        self.saved_at, self.dirty = time.time(), set()

    def path(self, table: str = "") -> Path:
        return result_path(self.experiment.name, self.scale, self.tables, table)

    def paths(self) -> list[Path]:
        return [p for p in [self.path(), *(self.path(t) for t in self.extra)] if p.exists()]

    def add(self, identity: dict, metrics: dict, extra_tables: dict[str, list[dict]]) -> bool:
        """Add a configuration's rows; whether the tables were written now."""
        key = identity["config_key"]
        self.results = _replace_rows(self.results, pd.DataFrame([{**identity, **metrics}]), key)
        self.dirty.add("")
        for table, rows in extra_tables.items():
            if table not in self.extra:
                self.extra[table] = read_csv(self.path(table))
            # an extra row names its configuration by key only: the result row holds the configuration
            frame = pd.DataFrame([{"config_key": key, **row} for row in rows])
            self.extra[table] = _replace_rows(self.extra[table], frame, key)
            self.dirty.add(table)
        if time.time() - self.saved_at >= self.SAVE_EVERY:
            self.save()
            return True
        return False

    def save(self) -> None:
        if distributed.rank() != 0:  # under torchrun every rank trains; rank 0 writes
            self.dirty.clear()
            return
        # the extra tables first: a row in the result table is what marks its configuration done, so its curves and
        # points must be on disk before it (a kill between the two then reruns the configuration)
        for table in sorted(self.dirty, key=lambda name: (name == "", name)):
            write_csv(self.path(table), self.results if table == "" else self.extra[table])
        self.dirty.clear()
        self.saved_at = time.time()


def _replace_rows(table: pd.DataFrame | None, rows: pd.DataFrame, key: str) -> pd.DataFrame:
    """Drop a configuration's old rows (a forced rerun), found by its config_key, and append its new ones."""
    if table is None:
        return rows
    return pd.concat([table[table["config_key"] != key], rows], ignore_index=True)


def read_tables(experiment: Experiment, scale: str, tables: Path = TABLES) -> Tables:
    """The experiment's result tables that exist, by kind ("" the results, "curves", "points"), and its published
    numbers ("published")."""
    found = {kind: read_csv(result_path(experiment.name, scale, tables, kind)) for kind in EXTRA_TABLES}
    found[""] = read_results(experiment, result_path(experiment.name, scale, tables))
    found["published"] = load_published(experiment)
    return {kind: frame for kind, frame in found.items() if frame is not None}


def write_outputs(experiment: Experiment, scale: str, *, tables: Path = TABLES, figures: Path = FIGURES) -> list[Path]:
    """Everything downstream of the result CSVs: the comparison and the figures."""
    return write_report(experiment, scale, tables) + write_figures(experiment, scale, tables, figures)


def write_report(experiment: Experiment, scale: str, tables: Path = TABLES) -> list[Path]:
    """tables/E_S.md and tables/E_S_comparison.csv from the result CSV; never trains. Nothing for a scale without
    result rows: REPORT.md lists such an artifact as not run."""
    results = read_results(experiment, result_path(experiment.name, scale, tables))
    if results is None or not len(results):
        return []
    comparison = compare(experiment, results, scale, curves_for(experiment, scale, tables))
    noise = noise_of(experiment, results, scale, tables)
    claims = judged_claims(experiment, results, scale, tables, noise)
    outputs = [result_path(experiment.name, scale, tables, "md")]
    write_atomic(outputs[0], render(experiment, scale, results, comparison, claims, noise))
    if len(noise):
        outputs.append(result_path(experiment.name, scale, tables, "noise"))
        write_csv(outputs[-1], noise)
    if len(comparison):
        outputs.append(result_path(experiment.name, scale, tables, "comparison"))
        write_csv(outputs[-1], comparison)
    return outputs


def write_figures(experiment: Experiment, scale: str, tables: Path = TABLES, figures: Path = FIGURES) -> list[Path]:
    """figures/E*_S.png from the result CSVs; never trains."""
    found = read_tables(experiment, scale, tables)
    if experiment.figures is None or "" not in found:
        return []
    drawn = experiment.figures(found, scale)
    return [save(fig, figure_path(experiment.name, scale, figures, name)) for name, fig in drawn.items()]
