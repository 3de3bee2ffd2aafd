"""Deferred Quantization (arXiv 2603.17052), V2 Tables 1-4: MaskGIT and VAR tokenizers and generators on
ImageNet-100 (128 px, K = 16,384) and ODIR, with and without shrinkage. Not reproducible in this repository:
it needs ImageNet-100 / ODIR and MaskGIT / VAR generators (days on 2 A100s), which are outside its scope. The
experiment exists so that every published number is in data/published/ and listed, as not run, in
tables/dq_tables_<scale>.md."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from replicate.errors import MissingDataError
from replicate.spec import Experiment, RunResult

REASON = (
    "needs ImageNet-100 or ODIR and the MaskGIT / VAR tokenizers and generators, which this repository "
    "does not implement"
)


@dataclass(frozen=True)
class Config:
    dataset: str
    tokenizer: str
    schedule: str  # "early" (shrinkage, the baseline) or "deferred"
    method: str = "vq"


def configs(scale: str) -> list[Config]:
    rows = [("imagenet100", t, s) for t in ("maskgit", "var") for s in ("early", "deferred")]
    return [Config(*row) for row in rows + [("odir", "var", s) for s in ("early", "deferred")]]


def run(config: Config, device: torch.device) -> RunResult:
    raise MissingDataError(REASON)


EXPERIMENT = Experiment(
    name="dq_tables",
    title="MaskGIT / VAR tokenizers and generators on ImageNet-100 and ODIR (not reproducible here)",
    source="Deferred Quantization, arXiv 2603.17052, V2 Tables 1-4",
    configs=configs,
    run=run,
    data=lambda config: f"{config.dataset} (not available)",
    published="dq_tables.csv",
    keys=("dataset", "tokenizer", "schedule"),
    notes="MSE and LPIPS carry an unstated scale factor in the paper (values 1.6-8.8 cannot be raw LPIPS).",
    missing=lambda scale: REASON,
)
