"""Uniform-noise discrete diffusion that predicts the clean grid, sampled by confidence: the noise
of the blog's process with the decoding of masked diffusion.

Training replaces a cosine-scheduled share of each grid's tokens by uniform random codes (as
`masked` hides them) and scores the predicted clean grid at every position. The transformer is
never told which tokens are noise, only how many: the noise share, rounded to one of 16 levels,
is an input id before the grid (as a diffusion model is told its time step). Sampling starts
from uniform random tokens; each step draws every position from the predicted clean grid, keeps
the most confident draws and re-randomises the rest, so that the same cosine share is noise
after each step and none after the last. Kept tokens are drawn again at every step, so an early
mistake can still be undone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqgen.config import Diffusion
from vqgen.priors.base import Draw, Prior
from vqgen.priors.guidance import scale
from vqgen.priors.masked import annealed, confident_draws, noised, ranks, schedule


class UniformX0Diffusion(Prior):
    name = "uniform_x0"
    causal = False
    settings = ("temperature", "steps", "confidence_noise", "guidance", "guidance_schedule")
    levels = 16
    extra_ids = levels  # id `codebook_size + i` says that a share i / 15 of the grid is noise
    prefix = 1

    def inputs(self, x: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
        """The model's inputs (B, 1 + T) for (B, T) grids of which a share (B,) of the tokens is noise."""
        level = self.codebook_size + (share * (self.levels - 1)).round().long()
        return torch.cat([level[:, None], x], 1)

    def logits(self, x: torch.Tensor, share: torch.Tensor, request=None, s: float = 1.0) -> torch.Tensor:
        """Logits (B, T, K) of the clean grid, given (B, T) grids of which a share (B,) of the tokens is
        noise, under `request` guided with scale s."""
        return self.guided(self.inputs(x, share), request, s)[:, self.prefix :]

    def corrupt(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) grids with the `noised` share of each one's tokens replaced by uniform random codes, and
        that share (B,)."""
        x = tokens.flatten(1).long()
        hidden = noised(*x.shape, device=x.device)
        noise = torch.randint(0, self.codebook_size, x.shape, device=x.device)
        return torch.where(hidden, noise, x), hidden.float().mean(1)

    def loss(self, tokens: torch.Tensor, request: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy of the clean grid at every position of the corrupted one."""
        logits = self.model(self.inputs(*self.corrupt(tokens)), request=request)[0][:, self.prefix :]
        return F.cross_entropy(logits.flatten(0, 1), tokens.flatten().long())

    @torch.no_grad()
    def sample(
        self,
        n=None,
        given=None,
        known=None,
        *,
        request=None,
        temperature: float = Diffusion.temperature,
        steps: int = Diffusion.steps,
        confidence_noise: float = Diffusion.confidence_noise,
        guidance: float = Diffusion.guidance,
        guidance_schedule: str = Diffusion.guidance_schedule,
        generator=None,
        trajectory: bool = False,
    ) -> Draw:
        """`steps` passes from uniform random tokens, with the temperature and confidence noise of masked
        diffusion (`masked.annealed`): draws from 1 to `temperature`, noise from `confidence_noise` to 0."""
        given, known = self._inputs(n, given, known)
        k = self.codebook_size
        request = self._request(request, len(given))

        def noise() -> torch.Tensor:
            return torch.randint(0, k, given.shape, generator=generator, device=given.device)

        x = torch.where(known, given, noise())
        free = (~known).sum(1)  # (B,)
        share = free / x.shape[1]  # of the grid that is noise
        frames = [self._grids(x.clone())] if trajectory else None
        for step in range(steps if free.any() else 0):
            heat, shake = annealed(temperature, confidence_noise, (step + 1) / steps)
            s = scale(guidance, guidance_schedule, (step + 1) / steps)
            draw, confidence = confident_draws(self.logits(x, share, request, s), heat, shake, generator)
            left = (free * schedule((step + 1) / steps)).floor().long()  # noise after this step
            renoised = ranks(confidence.masked_fill(known, float("inf"))) < left[:, None]
            share = left / x.shape[1]
            x = torch.where(known, given, torch.where(renoised, noise(), draw))
            if trajectory:
                frames.append(self._grids(x.clone()))
        return Draw(self._grids(x), steps * (~known).any(1).long(), frames)
