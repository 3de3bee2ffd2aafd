"""Command line: python -m replicate {list,run,report,figures,bench}.

  python -m replicate list
  python -m replicate run [EXPERIMENT ...] [--only A,B] [--scale smoke|cpu|paper] [--force] [--set key=value]
      [--where key=value[,value]]
  python -m replicate report EXPERIMENT [--scale S]      # comparison with the paper, from the CSVs
  python -m replicate report --all                       # REPORT.md: every artifact, its verdict, the findings
  python -m replicate figures EXPERIMENT [--scale S]     # figures, from the CSVs
  python -m replicate train --config NAME [--scale S]      # one image tokenizer; torchrun ... -m replicate train
  python -m replicate bench [--json]                     # nearest-code search and atomic training steps
  python -m replicate plan [EXPERIMENT ...] [--scale S] [--set k=v] [--where k=v] [--probe]  # what a run costs
  python -m replicate prepare DATASET --from FOLDER      # check and link ffhq, imagenet, imagenet100, odir
Bad input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading
import traceback
from pathlib import Path

import torch

from replicate import distributed, preemption
from replicate.errors import ReplicateError, unknown_name
from replicate.metrics.image import OFFLINE_ENV
from replicate.registry import EXPERIMENTS
from replicate.report.compare import claim_mark
from replicate.report.summary import claim_tally
from replicate.results import ROOT
from replicate.runner import (
    Outcome,
    check_data,
    check_memory,
    parse_overrides,
    resolve_configs,
    run_experiment,
    write_figures,
    write_report,
)
from replicate.spec import SCALES

OFFLINE_HELP = "never download weights (as $VQ_OFFLINE=1): a metric without its weights file stays NaN with a note"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def default_scale() -> str:
    """paper where CUDA is present, otherwise cpu (the largest scale that finishes on a 2-core CPU)."""
    return "paper" if torch.cuda.is_available() else "cpu"


def select(names: list[str], only: str | None) -> list[str]:
    chosen = [n for group in [*names, *(only.split(",") if only else [])] for n in group.split(",") if n]
    for name in chosen:
        if name not in EXPERIMENTS:
            raise unknown_name("experiment", name, EXPERIMENTS)
    return chosen or list(EXPERIMENTS)


def command_list(args) -> int:
    for name, experiment in EXPERIMENTS.items():
        scales = ",".join(scale for scale in SCALES if not (experiment.missing and experiment.missing(scale)))
        print(f"{name:<18} [{scales}] {experiment.title}  [{experiment.source}]")
    return 0


def command_run(args) -> int:
    scale = args.scale or default_scale()
    names = select(args.experiments, args.only)
    overrides, where = parse_overrides(args.set), parse_overrides(args.where, "--where")
    named = bool(args.experiments or args.only)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for name in names:  # validate everything before anything runs or writes
        configs = resolve_configs(EXPERIMENTS[name], scale, overrides, where)
        check_memory(name, configs, device)
        missing = EXPERIMENTS[name].missing(scale) if EXPERIMENTS[name].missing else None
        if named and not missing and not args.dry_run:  # a named experiment whose images are absent stops it at once
            check_data(configs)
    if args.dry_run:
        return dry_run_all(names, scale, overrides, where, device, args.dry_run_batch)
    distributed.setup()  # under torchrun: join the process group; rank 0 writes every file
    outcomes = []
    for name in names:
        try:
            outcomes.append(
                run_experiment(
                    EXPERIMENTS[name],
                    scale,
                    force=args.force,
                    overrides=overrides,
                    where=where,
                    tf32=None if args.tf32 == "auto" else args.tf32 == "on",
                    tables=args.out / "tables",
                    figures=args.out / "figures",
                    runs=args.out / "runs",
                )
            )
        except ReplicateError:
            raise
        except Exception as error:  # a bug in one experiment must not stop the others
            traceback.print_exc()
            outcomes.append(Outcome(name, "failed", f"{type(error).__name__}: {error}"))
    if distributed.rank() == 0:
        print_summary(outcomes, scale)
    distributed.teardown()
    if any(o.status == "failed" for o in outcomes):
        return 1
    # an experiment the user named that could not run (missing data or scale) is bad input: exit 2, after the others
    return 2 if named and any(o.status == "skipped" for o in outcomes) else 0


def dry_run_all(names, scale: str, overrides, where, device: torch.device, batch: int | None) -> int:
    """`run --dry-run`: every selected image configuration for two steps at full size (replicate/dry_run.py); the
    synthetic studies are skipped (their paper scale runs on a CPU as it is). Exit 1 when one fails."""
    from replicate.configs import GeneratorTraining, TokenizerTraining
    from replicate.dry_run import dry_run

    passed, failed = 0, []
    for name in names:
        experiment = EXPERIMENTS[name]
        missing = experiment.missing(scale) if experiment.missing else None
        configs = [] if missing else resolve_configs(experiment, scale, overrides, where)
        if not configs or not all(isinstance(c, (TokenizerTraining, GeneratorTraining)) for c in configs):
            reason = missing or "no image training (a synthetic study runs as it is)"
            print(f"skipped {name}: {reason}")
            continue
        try:
            passed += len(dry_run(experiment, scale, configs, device=device, batch=batch))
        except ReplicateError:
            raise
        except Exception:  # a failing model must not hide the others
            traceback.print_exc()
            failed.append(name)
    if distributed.rank() == 0:
        failures = f"; failed: {', '.join(failed)}" if failed else ""
        print(f"Dry run (scale {scale}): {passed} configuration(s) passed{failures}; no result written")
    distributed.teardown()
    return 1 if failed else 0


def print_summary(outcomes: list[Outcome], scale: str) -> None:
    print(f"\nSummary (scale {scale}):")
    for outcome in outcomes:
        if outcome.status == "ran":
            detail = f"{outcome.new_rows} new configuration(s), {outcome.seconds:.1f} s"
        else:
            detail = outcome.reason
        print(f"  {outcome.status:<8} {outcome.experiment:<18} {detail}")
        for path in outcome.outputs:
            print(f"           -> {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        for claim in outcome.claims:
            detail = f" ({claim.detail})" if claim.detail else ""
            print(f"           {claim_mark(EXPERIMENTS[outcome.experiment], claim)}: {claim.text}{detail}")
    print("Comparisons with the papers: tables/*_" + scale + ".md; figures: figures/*_" + scale + ".png")
    counts = {status: sum(o.status == status for o in outcomes) for status in ("ran", "skipped", "failed")}
    tally = ", ".join(f"{n} {status}" for status, n in counts.items())
    print(f"Total: {tally}; claims holding: {claim_tally([c for o in outcomes for c in o.claims])} checked")


def command_report(args) -> int:
    if args.all:
        from replicate.report.summary import write_summary

        print(write_summary(args.out))
        return 0
    for name in select(args.experiments, None):
        for path in write_report(EXPERIMENTS[name], args.scale or default_scale(), args.out / "tables"):
            print(path)
    return 0


def command_figures(args) -> int:
    for name in select(args.experiments, None):
        scale = args.scale or default_scale()
        for path in write_figures(EXPERIMENTS[name], scale, args.out / "tables", args.out / "figures"):
            print(path)
    return 0


def command_plan(args) -> int:
    from replicate.plan import plan_lines

    probe = torch.device("cuda" if torch.cuda.is_available() else "cpu") if args.probe else None
    overrides, where = parse_overrides(args.set), parse_overrides(args.where, "--where")
    for name in select(args.experiments, args.only):
        scale = args.scale or default_scale()
        print(plan_lines(EXPERIMENTS[name], scale, args.out / "tables", args.tflops, probe, overrides, where))
    return 0


def command_prepare(args) -> int:
    from replicate.prepare import prepare

    prepare(args.dataset, args.source, partial=args.partial)
    return 0


def command_train(args) -> int:
    import pandas as pd

    from replicate.results import Workspace, identity, provenance, result_path, write_csv
    from replicate.runner import apply_overrides, check_memory
    from replicate.train.configs import train_config
    from replicate.train.tokenizer import describe_data, tokenizer_folder, train_tokenizer

    scale = args.scale or default_scale()
    config = apply_overrides(train_config(args.config, scale), parse_overrides(args.set))
    # the folder `run` uses for the same configuration: `train` and the experiments share checkpoints
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    check_memory(f"train {args.config}", [config], device)
    if args.run_dir and args.force and distributed.rank() == 0:
        shutil.rmtree(args.run_dir, ignore_errors=True)
    run_dir = args.run_dir or tokenizer_folder(config, Workspace(device, args.out / "runs", args.force))
    distributed.set_tf32(scale == "paper")  # as the official training
    history = train_tokenizer(config, run_dir, device=args.device)
    if distributed.rank() != 0:
        distributed.teardown()
        return 0
    name = f"train_{args.config}"
    row = {**identity(name, scale, config, describe_data(config)), **provenance(device)}
    table = pd.DataFrame([{**row, **evaluation} for evaluation in history.to_dict("records")])
    path = result_path(name, scale, args.out / "tables")
    write_csv(path, table)
    print(f"wrote {path} ({len(table)} evaluation row(s)); run folder {run_dir}")
    distributed.teardown()
    return 0


def command_bench(args) -> int:
    from replicate import bench

    return bench.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m replicate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands.add_parser("list", help="list the registered experiments").set_defaults(handler=command_list)

    run = commands.add_parser("run", help="run experiments and write tables/ and figures/")
    run.add_argument("experiments", nargs="*", help="experiment names (default: all)")
    run.add_argument("--only", help="comma-separated experiment names")
    run.add_argument("--scale", choices=SCALES, help="default: paper with CUDA, else cpu")
    run.add_argument("--force", action="store_true", help="rerun configurations already in the result table")
    run.add_argument("--offline", action="store_true", help=OFFLINE_HELP)
    run.add_argument(
        "--tf32",
        choices=("auto", "on", "off"),
        default="auto",
        help="TF32 CUDA matmuls (auto: on at paper scale, as the official training); recorded in every row",
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a configuration field in every configuration (repeatable)",
    )
    run.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE[,VALUE]",
        help="run only the configurations whose field has one of these values, e.g. method=mmd,vanilla; a nested "
        "configuration's field with a dot, e.g. tokenizer.dataset=odir (repeatable)",
    )
    run.add_argument(
        "--out", type=Path, default=ROOT, help="folder for tables/, figures/ and runs/ (default: the repo)"
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="run every selected image configuration for two steps at full size on generated images (data loader, "
        "training, one evaluation, a checkpoint resumed); nothing is written",
    )
    run.add_argument(
        "--dry-run-batch",
        type=int,
        metavar="B",
        help="with --dry-run: the batch of each process (default: the configuration's per-GPU batch)",
    )
    run.set_defaults(handler=command_run)

    plan = commands.add_parser("plan", help="what a run would do and cost: configurations, data, FLOPs, GPU-hours")
    plan.add_argument("experiments", nargs="*", help="experiment names (default: all)")
    plan.add_argument("--only", help="comma-separated experiment names")
    plan.add_argument("--scale", choices=SCALES, help="default: paper with CUDA, else cpu")
    plan.add_argument("--tflops", type=float, default=100.0, help="sustained TFLOP/s of one GPU (default 100)")
    plan.add_argument("--out", type=Path, default=ROOT, help="folder holding tables/ (default: the repo)")
    plan.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as run's --set")
    plan.add_argument("--where", action="append", default=[], metavar="KEY=VALUE[,VALUE]", help="as run's --where")
    plan.add_argument(
        "--probe",
        action="store_true",
        help="also time two training steps of each distinct model at its full batch and size on this machine",
    )
    plan.set_defaults(handler=command_plan)

    prepare = commands.add_parser("prepare", help="check a dataset folder and link it where the loaders look")
    prepare.add_argument(
        "dataset",
        choices=("ffhq", "imagenet", "imagenet100", "odir", "cifar10", "svhn"),
        help="the first four are checked and linked; cifar10 and svhn are downloaded by torchvision",
    )
    prepare.add_argument("--from", dest="source", type=Path, metavar="FOLDER", help="the downloaded dataset")
    prepare.add_argument(
        "--partial", action="store_true", help="accept fewer (or more) images than the full release has"
    )
    prepare.set_defaults(handler=command_prepare)

    for name, handler, text in (
        ("report", command_report, "write the comparison with the paper from the CSVs"),
        ("figures", command_figures, "draw the figures from the CSVs"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("experiments", nargs="*", help="experiment names (default: all)")
        sub.add_argument("--scale", choices=SCALES, help="default: paper with CUDA, else cpu")
        sub.add_argument("--out", type=Path, default=ROOT, help="folder holding tables/ and figures/ (default: repo)")
        if name == "report":
            sub.add_argument("--all", action="store_true", help="write REPORT.md: one line per artifact, findings")
        sub.set_defaults(handler=handler)

    from replicate.train.configs import TRAIN_CONFIGS

    train = commands.add_parser("train", help="train one image tokenizer (resumable; torchrun for DDP)")
    train.add_argument(
        "--config",
        required=True,
        choices=sorted(TRAIN_CONFIGS),
        metavar="NAME",
        help=f"one of: {', '.join(sorted(TRAIN_CONFIGS))}",
    )
    train.add_argument("--scale", choices=SCALES, help="default: paper with CUDA, else cpu")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field")
    train.add_argument("--run-dir", type=Path, help="checkpoint folder (default: runs/tokenizers/<hash of the config>)")
    train.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    train.add_argument("--force", action="store_true", help="empty the run folder first: train from scratch")
    train.add_argument("--offline", action="store_true", help=OFFLINE_HELP)
    train.add_argument("--out", type=Path, default=ROOT, help="folder for tables/ and runs/ (default: the repo)")
    train.set_defaults(handler=command_train)

    from replicate.bench import add_arguments

    bench = commands.add_parser("bench", help="benchmark nearest-code search and atomic training steps")
    add_arguments(bench)
    bench.set_defaults(handler=command_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "offline", False):
        os.environ[OFFLINE_ENV] = "1"  # read where weights are looked for (metrics/image.py weights_file)
    out = getattr(args, "out", None)
    if out is not None and out.exists() and not out.is_dir():
        print(f"error: --out {out} is a file, not a folder: name a folder (it may not exist yet)", file=sys.stderr)
        return 2
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, preemption.on_sigterm)  # a training loop checkpoints first
    try:
        return args.handler(args)
    except ReplicateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except preemption.Preempted:
        print(
            f"preempted (SIGTERM): the work so far is saved (a training run at its last step); rerun the same command "
            f"to resume (exit status {preemption.REQUEUE_STATUS}: requeue)",
            file=sys.stderr,
        )
        return preemption.REQUEUE_STATUS
    except KeyboardInterrupt:
        print(
            "interrupted: finished configurations are saved; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
