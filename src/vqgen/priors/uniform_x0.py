"""Uniform-noise discrete diffusion that predicts the clean grid, sampled by confidence: the noise
of the blog's process with the decoding of masked diffusion.

Training replaces a cosine-scheduled share of each grid's tokens by uniform random codes (as
`masked` hides them) and scores the predicted clean grid at every position: the transformer is
never told which tokens are noise. Sampling starts from uniform random tokens; each step draws
every position from the predicted clean grid, keeps the most confident draws and re-randomises
the rest, so that the same cosine share is noise after each step and none after the last.
Kept tokens are drawn again at every step, so an early mistake can still be undone.
"""

from __future__ import annotations

import torch

from vqgen.priors.base import Draw, Prior
from vqgen.priors.masked import annealed, confident_draws, noised, ranks, schedule


class UniformX0Diffusion(Prior):
    name = "uniform_x0"
    causal = False
    settings = ("temperature", "steps", "confidence_noise")

    def corrupt(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) grids with the `noised` share of each one's tokens replaced by uniform random codes."""
        x = tokens.flatten(1).long()
        noise = torch.randint(0, self.codebook_size, x.shape, device=x.device)
        return torch.where(noised(*x.shape, device=x.device), noise, x)

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the clean grid at every position of the corrupted one."""
        return self.model(self.corrupt(tokens), targets=tokens.flatten(1).long())[1]

    @torch.no_grad()
    def sample(
        self,
        n=None,
        given=None,
        known=None,
        *,
        temperature: float = 1.0,
        steps: int = 12,
        confidence_noise: float = 4.5,
        generator=None,
        trajectory: bool = False,
    ) -> Draw:
        """`steps` passes from uniform random tokens, with the temperature and confidence noise of masked
        diffusion (`masked.annealed`): draws from 1 to `temperature`, noise from `confidence_noise` to 0."""
        given, known = self._inputs(n, given, known)
        k = self.codebook_size

        def noise() -> torch.Tensor:
            return torch.randint(0, k, given.shape, generator=generator, device=given.device)

        x = torch.where(known, given, noise())
        free = (~known).sum(1)  # (B,)
        frames = [self._grids(x.clone())] if trajectory else None
        for step in range(steps if free.any() else 0):
            heat, shake = annealed(temperature, confidence_noise, (step + 1) / steps)
            draw, confidence = confident_draws(self.model(x)[0], heat, shake, generator)
            left = (free * schedule((step + 1) / steps)).floor().long()  # noise after this step
            renoised = ranks(confidence.masked_fill(known, float("inf"))) < left[:, None]
            x = torch.where(known, given, torch.where(renoised, noise(), draw))
            if trajectory:
                frames.append(self._grids(x.clone()))
        return Draw(self._grids(x), steps * (~known).any(1).long(), frames)
