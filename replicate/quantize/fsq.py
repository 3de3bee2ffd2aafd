"""Finite Scalar Quantization (Mentzer et al., "Finite Scalar Quantization: VQ-VAE Made Simple", arXiv 2309.15505,
Sec. 3): each of the d channels is bounded, f(z) = floor(L/2) tanh(z), and rounded, z_hat = round(f(z)), with the
straight-through estimator; the implicit codebook is the product grid of the channels' L_1 x ... x L_d values, and
a code's index is its mixed-radix number. No codebook to learn, no auxiliary loss, nothing to update.

Bound for every L (the authors' code, google-research fsq/fsq.ipynb, linked from the paper): with
half_l = (L - 1)(1 - eps) / 2 and offset = 1/2 for even L (0 for odd), f(z) = half_l tanh(z + shift) - offset,
shift = atanh(offset / half_l) so that f(0) = 0; rounding then takes exactly L values, -floor(L/2) .. ceil(L/2) - 1
(for odd L and eps = 0 this is the paper's floor(L/2) tanh(z); for even L the plain formula would give L + 1 values).
Codes are renormalised by floor(L/2) to [-1, 1], as that code does. Channel 0 is the least significant digit.

Features of another dimension than the levels' (the synthetic study's latents): a dense projection to the levels'
channels before the bound and one back after rounding (paper Sec. 3: the encoder's last layer projects to d; here
two Linear maps, trained with the model); the codebook is then the projected grid, in the features' space.

Levels: the paper's Table 1 for the codebook size K; a K it does not list needs `levels` set. Cost is O(d) a vector
whatever K: there is no search. The grid (K x d, at most 64,000 x 6 here) is built once, for codebook() and
evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from replicate.errors import ConfigError
from replicate.quantize.base import Quantizer, QuantizerConfig, QuantizerOutput, straight_through

# FSQ paper, Table 1 ("recommended sets of FSQ levels L to approximately reach a given codebook size |C|"): the
# grids have 240, 1,000, 4,375, 15,360 and 64,000 codes, so 2^12's exceeds its target. Checked 2026-12-04 against
# the table as quoted by independent summaries of the paper (the arXiv PDF itself was not reachable from here).
TABLE1_LEVELS: dict[int, tuple[int, ...]] = {
    2**8: (8, 6, 5),
    2**10: (8, 5, 5, 5),
    2**12: (7, 5, 5, 5, 5),
    2**14: (8, 8, 8, 6, 5),
    2**16: (8, 8, 8, 5, 5, 5),
}
# Not in Table 1: Wasserstein VQ's Table 6 codebook size. Our choice by the paper's own rule (Sec. 3, "L_i >= 5 for
# all i", levels <= 8 as in Table 1): the largest product <= 2^13, 8 x 8 x 5 x 5 x 5 = 8,000, so d = 5.
LEVELS: dict[int, tuple[int, ...]] = {**TABLE1_LEVELS, 2**13: (8, 8, 5, 5, 5)}


def _as_levels(value) -> tuple[int, ...]:
    """Levels as a tuple of ints, from a tuple or list, or the text "8,5,5,5" (how a result table and a
    `quantizer` setting write a tuple)."""
    parts = value.split(",") if isinstance(value, str) else value
    try:
        return tuple(int(str(part).strip()) for part in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"fsq levels must be integers such as 8,5,5,5, got {value!r}") from None


@dataclass(frozen=True)
class FSQConfig(QuantizerConfig):
    """num_codes is the target size K (a key of Table 1); the grid has prod(levels) codes, near K but not equal (the
    quantizer's num_codes, a generator's vocabulary: 4,375 for K = 4,096); dim != len(levels) adds the projections
    (module docstring)."""

    levels: tuple[int, ...] | None = None  # None: LEVELS[num_codes] (FSQ Table 1); resolved here, so rows show it
    bound_eps: float = 1e-3  # shrinks the bound away from the outer rounding edges; the authors' code: eps = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.levels is None:
            if self.num_codes not in LEVELS:
                sizes = ", ".join(str(k) for k in sorted(LEVELS))
                raise ConfigError(f"fsq has no recommended levels for K={self.num_codes} (sizes: {sizes}); set levels")
            object.__setattr__(self, "levels", LEVELS[self.num_codes])
        levels = _as_levels(self.levels)
        object.__setattr__(self, "levels", levels)
        if not levels or min(levels) < 3:
            # L = 2 has no level at 0: f(0) = 0 cannot sit on a level's centre (shift = atanh(1) is infinite)
            raise ConfigError(f"fsq levels must each be >= 3, got {','.join(map(str, levels))}")
        # the outermost levels stay reachable only while half_l - offset > floor(L/2) - 1/2, i.e. eps < 1 / (L - 1)
        if not 0.0 <= self.bound_eps < 1.0 / (max(levels) - 1):
            raise ConfigError(f"bound_eps must be in [0, {1.0 / (max(levels) - 1):.4g}), got {self.bound_eps!r}")


@dataclass
class FSQOutput(QuantizerOutput):
    """FSQ's result: `losses` is empty, since the method has no auxiliary loss (paper Sec. 3), and `loss` is 0."""

    @property
    def loss(self) -> Tensor:
        return self.quantized.new_zeros(())


class FSQ(Quantizer):
    learned_codebook = False  # a fixed grid: a schedule's k-means initialisation leaves it as it is

    def __init__(self, config: FSQConfig) -> None:
        super().__init__(config)
        levels = torch.tensor(config.levels)
        projected = config.dim != len(config.levels)
        self.project_in = nn.Linear(config.dim, len(config.levels)) if projected else nn.Identity()
        self.project_out = nn.Linear(len(config.levels), config.dim) if projected else nn.Identity()
        half_l = (levels - 1).double() * (1 - config.bound_eps) / 2
        offset = (levels % 2 == 0).double() / 2
        # Derived constants, not state: non-persistent buffers follow .to(device) and stay out of checkpoints.
        self.register_buffer("levels", levels, persistent=False)
        self.register_buffer("half_width", (levels // 2).float(), persistent=False)
        self.register_buffer("half_l", half_l.float(), persistent=False)
        self.register_buffer("offset", offset.float(), persistent=False)
        # atanh, so that f(0) = 0 exactly; the authors' code writes tan, equal to third order (4e-6 at L = 8)
        self.register_buffer("shift", torch.atanh(offset / half_l).float(), persistent=False)
        basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.long), levels[:-1]]), 0)
        self.register_buffer("basis", basis, persistent=False)
        self.register_buffer("grid", self.indices_to_codes(torch.arange(math.prod(config.levels))), persistent=False)

    @property
    def num_codes(self) -> int:
        """The grid's size prod(levels), not the configured K: usage counts and code distances are over the grid."""
        return self.grid.shape[0]

    def bound(self, z: Tensor) -> Tensor:
        """f(z) in level units, f(0) = 0: each channel inside the rounding cells of -floor(L/2) .. ceil(L/2) - 1."""
        return torch.tanh(z + self.shift) * self.half_l - self.offset

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Grid codes (..., d) in [-1, 1] of mixed-radix indices (...)."""
        digits = torch.div(indices.unsqueeze(-1), self.basis, rounding_mode="floor") % self.levels
        return (digits - self.half_width) / self.half_width

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Mixed-radix indices (...) of grid codes (..., d); the inverse of indices_to_codes."""
        digits = torch.round(codes * self.half_width + self.half_width).long()
        return (digits * self.basis).sum(-1)

    def codebook(self) -> Tensor:
        """The grid in the features' space (projected back where the dimensions differ)."""
        return self.project_out(self.grid)

    def lookup(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Flatten z to (n, dim), project, round each bounded channel (no nearest-code search); the codes in the
        features' space."""
        if z.shape[-1] != self.dim:
            raise ConfigError(f"features have dimension {z.shape[-1]}, FSQ's {self.dim}")
        flat = z.reshape(-1, self.dim)
        grid_codes = torch.round(self.bound(self.project_in(flat).detach())) / self.half_width
        return flat, self.codes_to_indices(grid_codes), self.project_out(grid_codes)

    def losses(self, flat: Tensor, codes: Tensor) -> dict[str, Tensor]:
        return {}

    def forward(self, z: Tensor) -> FSQOutput:
        flat = z.reshape(-1, self.dim)
        level = self.bound(self.project_in(flat))
        grid_codes = torch.round(level.detach()) / self.half_width
        indices = self.codes_to_indices(grid_codes)
        # straight-through on the bounded value: the gradient is f'(z) / floor(L/2), round's taken as identity
        quantized = self.project_out(straight_through(level / self.half_width, grid_codes))
        codes = self.project_out(grid_codes)
        return FSQOutput(quantized.reshape(z.shape), codes.reshape(z.shape), indices.reshape(z.shape[:-1]), {})

    @torch.no_grad()
    def set_codebook(self, codes: Tensor) -> None:
        """The grid is fixed: accepts only the codebook itself (as a data-parallel broadcast sends it)."""
        own = self.codebook()
        if codes.shape != own.shape or not torch.equal(codes.to(own), own):
            raise ConfigError("fsq's codebook is its fixed grid; it cannot be set (no k-means initialisation)")
