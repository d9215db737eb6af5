"""What every prior over token grids is: a transformer with its training loss and its sampler.

A prior samples grids from nothing, or completes given tokens under any mask (`known`, True
where a token is given; given tokens are never changed), and returns its trajectory when asked.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import ClassVar

import torch

from vqgen.models.transformer import Transformer, TransformerConfig

UNDECIDED = -1  # a position of a trajectory frame that holds no token yet


@dataclass
class Draw:
    tokens: torch.Tensor  # (B, h, w) the sampled grids
    steps: torch.Tensor  # (B,) network passes each grid took
    trajectory: list[torch.Tensor] | None = None  # (B, h, w) grids from the start to the end, UNDECIDED where empty


class Prior:
    """A transformer over raster-flattened (B, h*w) grids of codes in [0, codebook_size)."""

    name: ClassVar[str]
    causal: ClassVar[bool]
    extra_ids: ClassVar[int] = 0  # input ids after the codebook: the start token, the [MASK] token, noise levels
    prefix: ClassVar[int] = 0  # input positions before the grid: the noise level of `uniform_x0`
    settings: ClassVar[tuple[str, ...]] = ()  # the sampler's keyword arguments, named as in params.yaml

    def __init__(self, model: Transformer, grid: tuple[int, int]):
        self.model, self.grid = model, (int(grid[0]), int(grid[1]))
        self.codebook_size = model.cfg.out_size
        self.sampling = self.defaults()  # the settings its checkpoint records (see `restore`)

    @classmethod
    def defaults(cls) -> dict:
        """The sampler's keyword defaults, by setting: params.yaml's defaults (a test checks it)."""
        parameters = inspect.signature(cls.sample).parameters
        return {name: parameters[name].default for name in cls.settings}

    @classmethod
    def create(cls, codebook_size: int, grid: tuple[int, int], options: dict | None = None, **sizes) -> Prior:
        """A freshly initialised prior; `sizes` are TransformerConfig fields, `options` the prior's own."""
        cfg = TransformerConfig(
            vocab_size=codebook_size + cls.extra_ids,
            out_size=codebook_size,
            block_size=grid[0] * grid[1] + cls.prefix,
            causal=cls.causal,
            **sizes,
        )
        return cls(Transformer(cfg), grid, **(options or {}))

    def options(self) -> dict:
        """The prior's own training options, recorded in its checkpoint."""
        return {}

    def metadata(self) -> dict:
        """What a checkpoint records besides the transformer: the prior, its grid, its training options
        and the sampler settings it is sampled with by default."""
        return {"prior": self.name, "grid": list(self.grid), "options": self.options(), "sampling": self.sampling}

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean training loss (nats) on (B, h, w) grids."""
        raise NotImplementedError

    def sample(
        self,
        n: int | None = None,
        given: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        trajectory: bool = False,
        **settings,
    ) -> Draw:
        """n grids from nothing, or one completion per row of `given` (B, h, w) where `known` (B, h, w) is False."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _inputs(self, n: int | None, given: torch.Tensor | None, known: torch.Tensor | None):
        """(given, known) flattened to (B, T) on the model's device; nothing given without `given`."""
        t = self.grid[0] * self.grid[1]
        if given is None:
            given = torch.zeros(n, t, dtype=torch.long)
            known = torch.zeros(n, t, dtype=torch.bool)
        given = given.reshape(len(given), t).long().to(self.device)
        known = (
            torch.ones_like(given, dtype=torch.bool)
            if known is None
            else known.reshape(len(given), t).bool().to(self.device)
        )
        return given, known

    def _grids(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(len(x), *self.grid)


def categorical(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One code drawn from each row of probabilities (..., K) -> (...), by the inverse of the cumulative
    distribution: one uniform number per row, where torch.multinomial draws one exponential per code
    (on a CPU it is 10-30x slower at the samplers' sizes: bench/draws.py)."""
    cdf = probs.float().cumsum(-1)
    u = torch.rand((*cdf.shape[:-1], 1), generator=generator, device=cdf.device)
    return torch.searchsorted(cdf, u * cdf[..., -1:], right=True)[..., 0].clamp_max(cdf.shape[-1] - 1)


def prefix_mask(n: int, grid: tuple[int, int], keep: int) -> torch.Tensor:
    """(n, h, w) True on the first `keep` raster positions: completion from the first token rows."""
    known = torch.zeros(n, grid[0] * grid[1], dtype=torch.bool)
    known[:, :keep] = True
    return known.view(n, *grid)
