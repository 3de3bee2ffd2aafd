"""Stopping on SIGTERM (a job scheduler preempting the job, `kill`) without losing work. Outside a training loop
the signal stops the run at once, as Ctrl-C does (finally blocks save the finished configurations). Inside one,
the loop is asked to stop: it finishes its step, checkpoints where it stands and raises Preempted, and the command
exits with REQUEUE_STATUS, which the Slurm script (scripts/slurm.sh) takes as "requeue me"; the requeued command
resumes from that checkpoint. A stop between two steps, never inside one, keeps the resumed run bit-exact."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

REQUEUE_STATUS = 75  # sysexits.h EX_TEMPFAIL: a temporary failure, to be retried


class Preempted(KeyboardInterrupt):
    """The run stopped on SIGTERM; everything up to the last step is saved."""


class ResumeCheck(Exception):
    """A training loop stopped after its first step, checkpointed, for the dry run to resume (stopping_fresh_runs)."""


_loops = 0  # training loops running in this process
_requested = False
_stop_fresh_runs = False  # the dry run's resume check (stopping_fresh_runs)


def on_sigterm(signum, frame) -> None:
    """The SIGTERM handler: ask a running training loop to stop after its step, else stop now."""
    global _requested
    if _loops:
        _requested = True
    else:
        raise Preempted


@contextmanager
def stoppable() -> Iterator[None]:
    """While a training loop runs: SIGTERM only sets the request that `requested` reports."""
    global _loops, _requested
    _loops += 1
    try:
        yield
    finally:
        _loops -= 1
        if not _loops:
            _requested = False


def requested() -> bool:
    """Whether a stop was asked for (this rank's view; the loop agrees on it across ranks)."""
    return _requested


@contextmanager
def stopping_fresh_runs() -> Iterator[None]:
    """While active, a training loop that starts from scratch stops after its first step as if preempted (checkpoint,
    ResumeCheck), so that the next call resumes it: the dry run's check that every checkpoint resumes."""
    global _stop_fresh_runs
    _stop_fresh_runs = True
    try:
        yield
    finally:
        _stop_fresh_runs = False


def stops_fresh_runs() -> bool:
    return _stop_fresh_runs
