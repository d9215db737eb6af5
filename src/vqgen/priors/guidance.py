"""Requests over attributes and classifier-free guidance (Ho & Salimans 2022).

A request gives each of the data's attributes as absent (0), present (1) or UNSPECIFIED; the
request that specifies nothing is the unconditional model. Training drops the whole request of
some grids, so that the model learns the unconditional distribution too, and part of it for
others, so that partial requests ("glasses", and nothing else) are in distribution. Sampling
mixes the conditional logits c with the unconditional ones u as u + s (c - u): s = 1 is the
conditional model unguided, s > 1 pushes the draws further towards the request (the convention
of LlamaGen and diffusers; VAR and Halton-MaskGIT write w = s - 1). The scale is constant over
the steps (or token positions), or ramps linearly from 1 to s, which costs less variety (MAR).

Guidance reweights only the codes the conditional model finds plausible (`min_p`, after min-p
sampling, Nguyen et al. 2024): where c and u are both far below the likeliest code, c - u is noise
that s multiplies, and u + s (c - u) would lift codes neither model would draw to the top of the
guided distribution. Unguided draws (s = 1, or no request) are not filtered.
"""

from __future__ import annotations

import math

import torch

from vqgen.config import SCHEDULES
from vqgen.models.transformer import UNSPECIFIED


def dropped(
    attributes: torch.Tensor, whole: float, partial: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The training request (B, A) of 0/1 attributes (B, A): with probability `whole` a grid's request is
    dropped entirely; otherwise, with probability `partial`, each of its attributes is kept with a
    probability drawn uniformly for the grid; else it is kept whole."""
    b, a = attributes.shape

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=attributes.device)

    keep = torch.where(rand(b) < partial, rand(b), 1.0)  # (B,)
    keep = torch.where(rand(b) < whole, 0.0, keep)
    kept = rand(b, a) < keep[:, None]
    return torch.where(kept, attributes.long(), UNSPECIFIED)


def scale(guidance: float, schedule: str, progress: float) -> float:
    """The guidance scale of the step (or token) that ends `progress` (0 to 1) of the way: `guidance`
    throughout ('constant'), or rising linearly from 1 to `guidance` ('linear')."""
    if schedule not in SCHEDULES:
        raise ValueError(f"guidance_schedule is {schedule!r}; use one of {', '.join(SCHEDULES)}.")
    return guidance if schedule == "constant" else 1 + (guidance - 1) * progress


def guide(cond: torch.Tensor, uncond: torch.Tensor, s: float, min_p: float = 0.0) -> torch.Tensor:
    """Guided logits u + s (c - u), -inf on the codes less than `min_p` times as likely as the likeliest
    under the conditional logits c (0: none)."""
    guided = uncond + s * (cond - uncond)
    if not min_p:
        return guided
    return guided.masked_fill(cond < cond.amax(-1, keepdim=True) + math.log(min_p), float("-inf"))


def doubled(request: torch.Tensor) -> torch.Tensor:
    """The request (2B, A) of a guided batch: the request, then the null request of the same rows."""
    return torch.cat([request, torch.full_like(request, UNSPECIFIED)])
