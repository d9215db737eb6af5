"""What every prior over token grids is: a transformer with its training loss and its sampler.

A prior samples grids from nothing, or completes given tokens under any mask (`known`, True
where a token is given; given tokens are never changed), and returns its trajectory when asked.
A prior trained with attributes samples under a request (see `guidance`), guided, and keeps the
attribute vectors of its training grids: drawn from, they are the requests of its unconditional
samples (`data_requests`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from vqgen.models.transformer import Transformer, TransformerConfig
from vqgen.priors.guidance import doubled, guide

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
        self.attributes: list[str] = []  # the names of the attributes a request gives, in order
        self.data_attributes: torch.Tensor | None = None  # (N, A) 0/1 of its training grids, if conditioned

    @classmethod
    def defaults(cls) -> dict:
        """The sampler's keyword defaults, by setting: params.yaml's defaults (a test checks it)."""
        parameters = inspect.signature(cls.sample).parameters
        return {name: parameters[name].default for name in cls.settings}

    @classmethod
    def create(
        cls,
        codebook_size: int,
        grid: tuple[int, int],
        options: dict | None = None,
        attributes: list[str] | tuple[str, ...] = (),
        **sizes,
    ) -> Prior:
        """A freshly initialised prior, conditioned on `attributes` if any; `sizes` are TransformerConfig
        fields, `options` the prior's own."""
        cfg = TransformerConfig(
            vocab_size=codebook_size + cls.extra_ids,
            out_size=codebook_size,
            block_size=grid[0] * grid[1] + cls.prefix,
            causal=cls.causal,
            num_attributes=len(attributes),
            **sizes,
        )
        prior = cls(Transformer(cfg), grid, **(options or {}))
        prior.attributes = list(attributes)
        return prior

    def options(self) -> dict:
        """The prior's own training options, recorded in its checkpoint."""
        return {}

    def metadata(self) -> dict:
        """What a checkpoint records besides the transformer: the prior, its grid, its training options,
        the sampler settings it is sampled with by default and the attributes it is conditioned on."""
        return {
            "prior": self.name,
            "grid": list(self.grid),
            "options": self.options(),
            "sampling": self.sampling,
            "attributes": self.attributes,
        }

    def extras(self) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint records besides the transformer: the training grids' attributes, packed."""
        return {} if self.data_attributes is None else {"data_attributes": pack(self.data_attributes)}

    def data_requests(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """(n, A) requests drawn uniformly from the attribute vectors of the training grids, so that the
        conditional model under them draws from the data's distribution; None for an unconditioned prior."""
        if self.data_attributes is None:
            return None
        device = generator.device if generator is not None else "cpu"
        rows = torch.randint(len(self.data_attributes), (n,), generator=generator, device=device).cpu()
        return self.data_attributes[rows].long()

    def loss(self, tokens: torch.Tensor, request: torch.Tensor | None = None) -> torch.Tensor:
        """Mean training loss (nats) on (B, h, w) grids, under the requests (B, A) if given."""
        raise NotImplementedError

    def sample(
        self,
        n: int | None = None,
        given: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
        *,
        request: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        trajectory: bool = False,
        **settings,
    ) -> Draw:
        """n grids from nothing, or one completion per row of `given` (B, h, w) where `known` (B, h, w) is
        False; under `request` (A,) or (B, A), guided as the settings `guidance` and `guidance_schedule` say."""
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

    def _request(self, request: torch.Tensor | None, b: int) -> torch.Tensor | None:
        """A request (A,) or (B, A) as (B, A) on the model's device; None stays None."""
        if request is None:
            return None
        request = torch.as_tensor(request).long().to(self.device)
        a = self.model.cfg.num_attributes
        if not a:
            raise ValueError(f"this {self.name} prior was trained without attributes; it takes no request.")
        if request.shape[-1] != a or request.dim() not in (1, 2) or (request.dim() == 2 and len(request) != b):
            raise ValueError(f"a request of shape {tuple(request.shape)}; give ({a},) or ({b}, {a}).")
        return request.expand(b, a)

    def guided(
        self, x: torch.Tensor, request: torch.Tensor | None, s: float, net=None, min_p: float = 0.0
    ) -> torch.Tensor:
        """The logits (B, T, K) of the model's inputs x (B, T): unconditional without a request, else
        u + s (c - u), with both halves in one doubled batch (one pass, the conditional one, at s = 1),
        -inf on the codes less than `min_p` times as likely as the likeliest under c (`guidance.guide`);
        in float32 whatever the passes' precision. `net(x, request)` computes a pass's logits in place
        of the model (a `vqgen.graphs.Replayed` model)."""
        net = net or self.model_logits
        if request is None or s == 1:
            return net(x, request).float()
        cond, uncond = net(torch.cat([x, x]), doubled(request)).float().chunk(2)
        return guide(cond, uncond, s, min_p)

    def model_logits(self, x: torch.Tensor, request: torch.Tensor | None) -> torch.Tensor:
        """The model's logits (B, T, K) of the inputs x (B, T) under `request` (B, A) or None."""
        return self.model(x, request=request)[0]

    def _grids(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(len(x), *self.grid)


def pack(attributes: torch.Tensor) -> torch.Tensor:
    """(N, A) 0/1 -> (N, ceil(A / 8)) uint8, eight attributes a byte."""
    return torch.from_numpy(np.packbits(attributes.numpy().astype(bool), axis=1))


def unpack(packed: torch.Tensor, count: int) -> torch.Tensor:
    """The inverse of `pack`: (N, ceil(A / 8)) uint8 -> (N, A) int8 of 0/1, for A = `count`."""
    return torch.from_numpy(np.unpackbits(packed.numpy(), axis=1, count=count).astype(np.int8))


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
