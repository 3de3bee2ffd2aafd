"""Explicit, optional data parallelism (torch.distributed), in one place. Without torchrun every helper is a
no-op for a single process; under torchrun: NCCL on GPUs, gloo on CPUs, rank 0 does all file I/O."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str | None = None) -> Context:
    """Initialise the process group when launched by torchrun (WORLD_SIZE set); pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if world_size > 1 and not is_distributed():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank() if is_distributed() else 0
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return Context(rank, world_size, torch.device("cuda", local_rank))
    if world_size > 1:  # share this host's cores among its processes (on several hosts, each has its own cores)
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        torch.set_num_threads(max(1, host_cores() // local_processes))
    return Context(rank, world_size, torch.device("cpu"))


def host_cores() -> int:
    """The cores this process may run on: its CPU affinity (what Slurm or taskset grants), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def all_reduce_sum_(tensor: Tensor) -> Tensor:
    """Sum a tensor over all ranks, in place (identity in a single process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_(tensor: Tensor, source: int = 0) -> Tensor:
    """Overwrite a tensor with rank `source`'s copy, in place (identity in a single process)."""
    if is_distributed():
        dist.broadcast(tensor, source)
    return tensor


def broadcast_object(value: object, source: int = 0) -> object:
    """Rank `source`'s value (anything picklable) on every rank: the value itself in a single process."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, source)
    return holder[0]


def all_gather_rows(tensor: Tensor) -> Tensor:
    """Concatenate every rank's (n, ...) tensor along the first dimension (same n on every rank)."""
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def teardown() -> None:
    if is_distributed():
        dist.destroy_process_group()


def set_tf32(enabled: bool) -> None:
    """TF32 for CUDA matmuls and convolutions (the official training sets allow_tf32 = True); no effect on CPU."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
