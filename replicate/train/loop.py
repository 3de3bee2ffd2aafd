"""The epoch loop that tokenizer and generator training share (train/tokenizer.py, train/generator.py): resume from
the run folder's checkpoint, this rank's batches of every epoch, a progress bar, a checkpoint every
`checkpoint_every` steps and after every epoch, one history row per epoch (also written to the folder's log) and the
code revisions that trained the run. What a step does, and what an epoch's end adds to its row, is the caller's.

Determinism: the batches of an epoch are a permutation seeded by (seed, epoch), cut into global batches, each split
evenly over the ranks; a run stopped at any checkpoint resumes at the next batch with the same state, so that it ends
where an uninterrupted run ends.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from replicate import distributed, preemption
from replicate.errors import ConfigError
from replicate.results import file_lock, write_csv
from replicate.train.checkpoint import RunState

SHOW_EVERY = 10  # steps between progress-bar updates of the step's values


@dataclass(frozen=True)
class Loop:
    """What the scaffold needs to know of a run."""

    folder: Path  # the run folder: checkpoint.pt, config.json and the log
    config: Any  # the configuration the checkpoint must belong to (its config_id), written to config.json
    examples: int  # training examples an epoch draws its batches from
    epochs: int
    batch_size: int  # global batch, split evenly over the ranks
    seed: int
    checkpoint_every: int  # steps within an epoch
    log: str  # the per-epoch log's file name in the folder ("eval.csv", "train.csv")
    progress: bool = True
    max_steps: int | None = None  # the dry run's: the epoch holding this step ends there, and training with it
    share: int = 1  # > 1: an epoch draws every share-th example of its permutation (independent_replicas)

    @classmethod
    def of(
        cls, config, folder: Path, *, examples: int, epochs: int, log: str, progress: bool = True, share: int = 1
    ) -> Loop:
        """The loop of a tokenizer or generator configuration: its batch_size, seed and checkpoint_every."""
        return cls(
            folder,
            config,
            examples,
            epochs,
            config.batch_size,
            config.seed,
            config.checkpoint_every,
            log,
            progress,
            config.max_steps,
            share,
        )

    @property
    def epoch_examples(self) -> int:
        """The examples an epoch draws from: all, or a DistributedSampler's rank-0 share of them (rounded up)."""
        return -(-self.examples // self.share)

    @property
    def steps_per_epoch(self) -> int:
        return self.epoch_examples // self.batch_size

    @property
    def last_epoch(self) -> int:
        """The epochs trained: all of them, or with max_steps up to the one that holds that step."""
        return self.epochs if self.max_steps is None else min(self.epochs, -(-self.max_steps // self.steps_per_epoch))

    def steps_in(self, epoch: int) -> int:
        """The steps of an epoch (from 0): all of them, or with max_steps those before it."""
        if self.max_steps is None:
            return self.steps_per_epoch
        return min(self.steps_per_epoch, self.max_steps - epoch * self.steps_per_epoch)


# A step: (this rank's batch, global step from 0, 1-based epoch, whether the bar shows this step) -> (the values
# averaged over the epoch into its row as train_<name>, the bar's extra text).
Step = Callable[[Any, int, int, bool], tuple[dict[str, float], dict[str, str]]]
# An epoch's end: the state after its last step -> the row's further columns, or None for no row this epoch.
EpochEnd = Callable[[RunState], dict | None]


def rank_batches(loop: Loop, epoch: int, context: distributed.Context) -> list[list[int]]:
    """This rank's batches of an epoch: a permutation seeded by (seed, epoch) (with a share, every share-th of it),
    cut into global batches (the incomplete last one dropped), each split evenly over the ranks."""
    per_rank = loop.batch_size // context.world_size
    generator = torch.Generator().manual_seed(loop.seed * 100_003 + epoch)
    order = torch.randperm(loop.examples, generator=generator).tolist()[:: loop.share]
    starts = range(context.rank * per_rank, loop.steps_per_epoch * loop.batch_size, loop.batch_size)
    return [order[start : start + per_rank] for start in starts]


def train_epochs(
    loop: Loop,
    parts: dict[str, Any],
    context: distributed.Context,
    *,
    batches: Callable[[int, list[list[int]]], Iterable],
    step: Step,
    epoch_end: EpochEnd,
) -> pd.DataFrame:
    """Train (or resume) to `loop.epochs`; returns the history (one row per recorded epoch) with the revisions that
    trained the run. `parts` (model, optimizers, anything with a state_dict) are checkpointed under their names; the
    caller may replace one in the dict (a fresh optimizer) and the next checkpoint saves the new one.
    `batches(epoch, index_lists)` turns this rank's index lists into the batches `step` receives. Rank 0 holds the
    run folder's lock throughout: a second run of the same folder is refused. On SIGTERM the run checkpoints after
    the step in progress and raises preemption.Preempted."""
    lock = file_lock(loop.folder / "lock", f"run folder {loop.folder}") if context.is_main else nullcontext()
    with lock, preemption.stoppable():
        if loop.share > 1 and context.world_size > 1:
            raise ConfigError(
                f"independent_replicas {loop.share} trains the rank-0 replica alone: run it in one process, "
                "without torchrun (or set independent_replicas=1 to average gradients over the ranks)"
            )
        if loop.batch_size % context.world_size:
            raise ConfigError(f"batch_size {loop.batch_size} is not divisible by {context.world_size} processes")
        if loop.steps_per_epoch == 0:
            raise ConfigError(f"{loop.examples} training examples give no batch of {loop.batch_size}")
        checkpoint = loop.folder / "checkpoint.pt"
        run = RunState.restore(checkpoint, loop.config, parts)
        if context.is_main:
            loop.folder.mkdir(parents=True, exist_ok=True)
            config = json.dumps(dataclasses.asdict(loop.config), indent=1, default=str)
            (loop.folder / "config.json").write_text(config)
        fresh = run.epoch == 0 and run.step == 0
        if run.epoch < loop.last_epoch:
            run.note_revision()  # training goes on, maybe under other code: the result row names every revision
        while run.epoch < loop.last_epoch:
            remaining = rank_batches(loop, run.epoch, context)[run.step : loop.steps_in(run.epoch)]
            bar = tqdm(
                batches(run.epoch, remaining),
                desc=f"epoch {run.epoch + 1}/{loop.epochs}",
                initial=run.step,
                total=loop.steps_in(run.epoch),
                unit="batch",
                disable=not (loop.progress and context.is_main),
            )
            for batch in bar:
                show = run.step % SHOW_EVERY == 0
                values, shown = step(batch, run.epoch * loop.steps_per_epoch + run.step, run.epoch + 1, show)
                run.add(values)
                # SIGTERM (or the dry run's resume check): checkpoint between two steps, stop (preemption.py)
                preempted = stop_requested(context, run.step)
                if preempted or (fresh and preemption.stops_fresh_runs()):
                    run.save(checkpoint, loop.config, parts, context)
                    raise preemption.Preempted if preempted else preemption.ResumeCheck
                if show:
                    bar.set_postfix({name: f"{value:.4f}" for name, value in values.items()} | shown)
                if run.step % loop.checkpoint_every == 0 and run.step < loop.steps_per_epoch:
                    run.save(checkpoint, loop.config, parts, context)
            means = epoch_means(run, context)
            extra = distributed.broadcast_object(epoch_end(run))  # rank 0 evaluates; every rank keeps the row
            if extra is not None:
                row = {"epoch": run.epoch + 1, "step": run.epoch * loop.steps_per_epoch + run.step, **means, **extra}
                run.history.append(row | {"train_seconds": round(run.tick(), 1)})  # over every resumed segment
                if context.is_main:
                    write_csv(loop.folder / loop.log, pd.DataFrame(run.history))
            run = run.next_epoch()
            run.save(checkpoint, loop.config, parts, context)  # the other ranks wait here for rank 0's evaluation
        history = pd.DataFrame(run.history)
        history["train_revisions"] = "+".join(run.revisions)  # the code revisions that trained this run
        return history


def stop_requested(context: distributed.Context, step: int) -> bool:
    """Whether SIGTERM arrived: this process's flag alone, or under torchrun every SHOW_EVERY steps the flags of
    all ranks summed, so that every rank stops at the same step (one small all-reduce, not a sync every step)."""
    if context.world_size == 1:
        return preemption.requested()
    if step % SHOW_EVERY:
        return False
    flag = torch.tensor([float(preemption.requested())], device=context.device)
    return bool(distributed.all_reduce_sum_(flag).item())


def epoch_means(run: RunState, context: distributed.Context) -> dict[str, float]:
    """The epoch's mean of each step value over every rank's steps, as train_<name> (in the step's order)."""
    names = list(run.sums)
    totals = torch.tensor([*(run.sums[n] for n in names), run.steps], dtype=torch.float64, device=context.device)
    *sums, count = distributed.all_reduce_sum_(totals).tolist()
    return {f"train_{name}": total / max(count, 1) for name, total in zip(names, sums, strict=True)}
