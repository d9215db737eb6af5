"""Uniform-noise discrete diffusion that predicts the clean grid (multinomial diffusion, Hoogeboom
et al. 2021; the uniform process of D3PM, Austin et al. 2021, with its x_0 parameterisation).

At noise level t in [0, 1] a token of x is kept with probability alpha(t) = cos(pi/2 t) and
otherwise replaced by a uniform random code. The transformer reads the noise level (one token
before the grid) and the noisy grid, and predicts x_0 at every position. Sampling starts from uniform random
tokens and steps t down to 0 through the posterior q(x_{t-1} | x_t, x_0) averaged over the
predicted x_0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vqgen.priors.base import Draw, Prior
from vqgen.priors.diffusion import corrupt


def alpha(t: float | torch.Tensor) -> torch.Tensor:
    """Share of tokens left untouched at noise level t: 1 at t = 0, 0 at t = 1."""
    return torch.cos(torch.as_tensor(t, dtype=torch.float32) * math.pi / 2).clamp(0, 1)


LEVELS = 64  # noise levels the transformer tells apart: input ids codebook_size + round(t * (LEVELS - 1))


class MultinomialDiffusion(Prior):
    name = "multinomial"
    causal = False
    settings = ("temperature", "steps")
    extra_ids = LEVELS
    prefix = 1  # the noise-level token

    def _forward(self, x: torch.Tensor, t: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, K) of x_0 given x_t (B, T) at levels t (B,), and their loss against `targets`."""
        level = self.codebook_size + (t * (LEVELS - 1)).round().long()
        if targets is not None:
            targets = torch.cat([torch.full_like(targets[:, :1], -100), targets], 1)
        logits, loss = self.model(torch.cat([level[:, None], x], 1), targets=targets)
        return logits[:, 1:], loss

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of x_0 at every position of x_t, t ~ U(0, 1)."""
        x = tokens.flatten(1).long()  # (B, T)
        t = torch.rand(x.shape[0], device=x.device)
        return self._forward(corrupt(x, 1 - alpha(t), self.codebook_size), t, targets=x)[1]

    @torch.no_grad()
    def sample(self, n=None, given=None, known=None, *, temperature: float = 1.0, steps: int = 12,
               generator=None, trajectory: bool = False) -> Draw:
        """`steps` ancestral steps from t = 1 (uniform random tokens) to t = 0; x_0 is predicted at
        `temperature`. Given tokens are held clean throughout."""
        given, known = self._inputs(n, given, known)
        b, t = given.shape
        k = self.codebook_size
        x = torch.where(known, given, torch.randint(0, k, given.shape, generator=generator, device=given.device))
        frames = [self._grids(x)] if trajectory else None
        for s in range(steps, 0, -1):
            now, before = float(alpha(s / steps)), float(alpha((s - 1) / steps))
            keep = now / before  # one step's chance of leaving a token alone
            level = torch.full((b,), s / steps, device=x.device)
            x0 = F.softmax(self._forward(x, level)[0].float() / temperature, -1)  # (B, T, K) predicted clean grid
            stay = F.one_hot(x, k).float()
            posterior = (keep * stay + (1 - keep) / k) * (before * x0 + (1 - before) / k)
            x = torch.multinomial(posterior.view(b * t, k), 1, generator=generator).view(b, t)
            x = torch.where(known, given, x)
            if trajectory:
                frames.append(self._grids(x))
        used = torch.full((b,), steps, dtype=torch.long, device=x.device) * (~known).any(1)
        return Draw(self._grids(x), used, frames)
