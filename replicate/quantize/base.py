"""Shared mechanics of every quantizer: exact nearest-code search in bounded memory, the straight-through
estimator, codebook initialisation, and the common interface with its named result."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from replicate.errors import ConfigError


@functools.cache
def faiss_module():
    """faiss, imported on the first CPU search (listing and reporting search nothing); None where not installed."""
    try:
        import faiss
    except ImportError:  # the torch path below serves GPUs and machines without faiss
        return None
    # faiss's exact flat search takes a slow non-BLAS path below this many queries (default 128,000 in
    # faiss-cpu 1.15); measured on 2 cores: 10,000 queries x 16,384 codes 0.22 s -> 0.006 s at 1.
    faiss.cvar.distance_compute_blas_threshold = 1
    return faiss


DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes: the largest distance block the torch search may hold at once
SEARCH_BACKENDS = ("auto", "faiss", "torch", "naive")


def check_finite(x: Tensor, what: str = "features") -> None:
    """Raise a one-line error for NaN or Inf input instead of letting it corrupt argmin silently."""
    if not bool(torch.isfinite(x).all()):
        raise ConfigError(f"{what} contain NaN or Inf values (shape {tuple(x.shape)})")


@torch.compiler.disable  # under torch.compile (TokenizerTraining.compile) the search runs as it is, between graphs
def nearest_code(
    queries: Tensor,
    keys: Tensor,
    *,
    farthest: bool = False,
    backend: str = "auto",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Tensor:
    """Index of the nearest (or farthest) row of `keys` (M, d) for every row of `queries` (N, d), squared L2.

    Exact: the same indices as brute force up to floating-point ties. Memory stays bounded: faiss works in
    fixed BLAS blocks; the torch path holds at most `memory_budget` bytes of distances at a time.
    backend: "auto" (faiss for float32 on CPU when installed, else torch), "faiss", "torch", or "naive"
    (the full N x M matrix at once, as the official code does; for benchmarks only).
    """
    if backend not in SEARCH_BACKENDS:
        raise ConfigError(f"unknown search backend {backend!r}; valid: {', '.join(SEARCH_BACKENDS)}")
    if queries.ndim != 2 or keys.ndim != 2 or queries.shape[1] != keys.shape[1]:
        raise ConfigError(f"search needs (N, d) and (M, d) tensors, got {tuple(queries.shape)} and {tuple(keys.shape)}")
    if keys.shape[0] == 0:
        raise ConfigError("search over an empty codebook")
    check_finite(queries, "features")
    check_finite(keys, "codes")
    queries, keys = queries.detach(), keys.detach()
    use_faiss = backend == "faiss" or (
        backend == "auto"
        and faiss_module() is not None
        and queries.device.type == "cpu"
        and queries.dtype == torch.float32
    )
    if use_faiss:
        return _faiss_search(queries, keys, farthest)
    if backend == "naive":
        return _torch_search(queries, keys, farthest, rows_per_block=queries.shape[0])
    rows = max(1, memory_budget // (keys.shape[0] * queries.element_size()))
    return _torch_search(queries, keys, farthest, rows_per_block=rows)


def _faiss_search(queries: Tensor, keys: Tensor, farthest: bool) -> Tensor:
    faiss = faiss_module()
    if faiss is None:
        raise ConfigError("search backend 'faiss' requested but faiss is not installed (pip install faiss-cpu)")
    q, k = queries.float().cpu(), keys.float().cpu()
    metric = faiss.METRIC_L2
    if farthest:
        # argmax_k ||q - k||^2 = argmax_k <[-2q, 1], [k, ||k||^2]>: a maximum-inner-product search.
        q = torch.cat([-2 * q, torch.ones(len(q), 1)], 1)
        k = torch.cat([k, k.square().sum(1, keepdim=True)], 1)
        metric = faiss.METRIC_INNER_PRODUCT
    _, index = faiss.knn(q.contiguous().numpy(), k.contiguous().numpy(), 1, metric=metric)
    return torch.from_numpy(index[:, 0]).to(queries.device)


def _torch_search(queries: Tensor, keys: Tensor, farthest: bool, rows_per_block: int) -> Tensor:
    # ||q - k||^2 = ||q||^2 + (||k||^2 - 2 q.k); the first term does not change the arg-min over k.
    key_sq = keys.square().sum(1)
    out = torch.empty(queries.shape[0], dtype=torch.long, device=queries.device)
    for start in range(0, queries.shape[0], rows_per_block):
        scores = torch.addmm(key_sq, queries[start : start + rows_per_block], keys.T, alpha=-2)
        out[start : start + rows_per_block] = scores.argmax(1) if farthest else scores.argmin(1)
    return out


def straight_through(features: Tensor, codes: Tensor) -> Tensor:
    """Straight-through estimator: forward value `codes`, gradient passed to `features` unchanged."""
    return features + (codes - features).detach()


def init_codebook(num_codes: int, dim: int, init: str, scale: float) -> Tensor:
    """Initial code vectors: "normal" = N(0, scale^2), "uniform" = U(-scale, scale), drawn from torch's global RNG."""
    if init == "normal":
        return torch.randn(num_codes, dim) * scale
    if init == "uniform":
        return (torch.rand(num_codes, dim) * 2 - 1) * scale
    raise ConfigError(f"unknown codebook init {init!r}; valid: normal, uniform")


@dataclass(frozen=True)
class QuantizerConfig:
    """Fields every quantizer has. Subclasses add their method's settings, each with the official default."""

    num_codes: int
    dim: int

    def __post_init__(self) -> None:
        for name in ("num_codes", "dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")

    def replace(self, **changes) -> QuantizerConfig:
        """A copy with some fields changed; an unknown field name fails with the list of valid ones."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - valid
        if unknown:
            raise ConfigError(f"unknown {type(self).__name__} field(s) {sorted(unknown)}; valid: {sorted(valid)}")
        return dataclasses.replace(self, **changes)


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise a one-line error when `value` is outside the closed interval [low, high]."""
    if not low <= value <= high:
        raise ConfigError(f"{name} must be in [{low}, {high}], got {value!r}")


@dataclass
class QuantizerOutput:
    """What every quantizer returns for features z of shape (..., d)."""

    quantized: Tensor  # straight-through output: value of the codes, gradient to the features
    codes: Tensor  # the selected code vectors, with gradient to the codebook (or its projection)
    indices: Tensor  # code index of every feature vector, shape z.shape[:-1]
    losses: dict[str, Tensor]  # the method's loss terms by name, each already multiplied by its weight

    @property
    def loss(self) -> Tensor:
        return torch.stack(list(self.losses.values())).sum()


class Quantizer(nn.Module):
    """Common interface of the five methods.

    forward(z) -> QuantizerOutput; `update(z, out)` applies the method's non-gradient codebook update and is
    called by the training loop after the optimizer step; `codebook()` gives the effective code vectors.
    """

    config: QuantizerConfig
    search_backend: str = "auto"  # the benchmark sets "naive" to time the full-matrix reference
    learned_codebook: bool = True  # False: a fixed grid (FSQ), which no k-means initialisation may set

    def __init__(self, config: QuantizerConfig) -> None:
        super().__init__()
        self.config = config

    @property
    def num_codes(self) -> int:
        return self.config.num_codes

    @property
    def dim(self) -> int:
        return self.config.dim

    def codebook(self) -> Tensor:
        raise NotImplementedError

    def forward(self, z: Tensor) -> QuantizerOutput:
        flat, indices, codes = self.lookup(z)
        return self.output(z, flat, indices, codes, self.losses(flat, codes))

    def losses(self, flat: Tensor, codes: Tensor) -> dict[str, Tensor]:
        """The method's loss terms for features (n, d) and their selected codes (n, d), each already weighted.
        Apart from forward so that a wrapper that searches itself (multi-scale quantization) reuses them."""
        raise NotImplementedError

    def lookup(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Flatten z to (n, d), find each vector's nearest code, and gather the codes (with gradient)."""
        if z.shape[-1] != self.dim:
            raise ConfigError(f"features have dimension {z.shape[-1]}, the codebook {self.dim}")
        flat = z.reshape(-1, self.dim)
        codebook = self.codebook()
        indices = nearest_code(flat, codebook, backend=self.search_backend)
        return flat, indices, codebook.index_select(0, indices)

    def output(self, z: Tensor, flat: Tensor, indices: Tensor, codes: Tensor, losses: dict) -> QuantizerOutput:
        """Reshape back to z's layout and apply the straight-through estimator."""
        return QuantizerOutput(
            quantized=straight_through(flat, codes).reshape(z.shape),
            codes=codes.reshape(z.shape),
            indices=indices.reshape(z.shape[:-1]),
            losses=losses,
        )

    @torch.no_grad()
    def set_codebook(self, codes: Tensor) -> None:
        """Make `codes` (K, d) the effective codebook, e.g. a k-means initialisation."""
        self.weight.copy_(codes)

    @torch.no_grad()
    def update(self, z: Tensor, out: QuantizerOutput) -> None:
        """Non-gradient codebook update after the optimizer step (EMA averages, re-seeding). Default: none."""

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups for the quantizer's trainable parameters at the model's learning rate."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": lr}] if params else []


def vq_losses(flat: Tensor, codes: Tensor, *, alpha: float, beta: float) -> dict[str, Tensor]:
    """Codebook loss alpha * MSE(codes, sg(z)) and commitment loss beta * MSE(sg(codes), z), means over all
    elements as in the official VQ-VAE code (van den Oord et al. 2017, Eq. 3)."""
    return {
        "codebook": alpha * F.mse_loss(codes, flat.detach()),
        "commitment": beta * F.mse_loss(flat, codes.detach()),
    }
