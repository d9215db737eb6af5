"""Uniform-noise discrete diffusion, as in the blog post this project grew from (a crude form of
VQ-Diffusion, Gu et al. 2022): tokens are corrupted by uniform resampling, and a bidirectional
transformer learns to undo one small corruption step. Sampling starts from uniform random tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqgen.config import Diffusion
from vqgen.models.transformer import Transformer
from vqgen.priors.base import Draw, Prior, categorical
from vqgen.priors.guidance import scale


def corrupt(
    tokens: torch.Tensor, fraction: torch.Tensor | float, codebook_size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each token, with probability `fraction` (scalar or one per row), by a uniform random code."""
    fraction = torch.as_tensor(fraction, dtype=torch.float32, device=tokens.device)
    fraction = fraction.view(-1, *([1] * (tokens.dim() - 1))) if fraction.dim() else fraction
    hit = torch.rand(tokens.shape, generator=generator, device=tokens.device) < fraction
    noise = torch.randint(0, codebook_size, tokens.shape, generator=generator, device=tokens.device)
    return torch.where(hit, noise, tokens)


class UniformDiffusion(Prior):
    name = "uniform"
    causal = False
    settings = ("temperature", "steps", "tolerance", "guidance", "guidance_schedule")

    def __init__(self, model: Transformer, grid: tuple[int, int], extra_noise: float = 0.1):
        super().__init__(model, grid)
        self.extra_noise = extra_noise

    def options(self) -> dict:
        return {"extra_noise": self.extra_noise}

    def loss(self, tokens: torch.Tensor, request: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy of g(x_b) against x_a, where x_a re-randomises a uniformly drawn fraction of
        the tokens of x and x_b a further `extra_noise` of them."""
        x = tokens.flatten(1).long()  # (B, T)
        x_a = corrupt(x, torch.rand(x.shape[0], device=x.device), self.codebook_size)
        x_b = corrupt(x_a, self.extra_noise, self.codebook_size)
        return self.model(x_b, targets=x_a, request=request)[1]

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
        tolerance: float = Diffusion.tolerance,
        guidance: float = Diffusion.guidance,
        guidance_schedule: str = Diffusion.guidance_schedule,
        generator=None,
        trajectory: bool = False,
    ) -> Draw:
        """Reverse diffusion from uniform random tokens. Each step, a token changes with the model's
        probability of it not being kept, into a code drawn at `temperature` from the other codes; a
        grid stops once a step changes fewer than `tolerance` of its free tokens (or after `steps`),
        then one clean-up pass sets every free token to its most likely code."""
        given, known = self._inputs(n, given, known)
        b, k = len(given), self.codebook_size
        request = self._request(request, b)
        x = torch.where(known, given, torch.randint(0, k, given.shape, generator=generator, device=given.device))
        frames = [self._grids(x.clone())] if trajectory else None
        free = (~known).sum(1).clamp_min(1)
        active = (~known).any(1)
        used = torch.zeros(b, dtype=torch.long, device=x.device)
        for step in range(steps):
            rows = active.nonzero()[:, 0]  # settled grids are left alone, and cost nothing
            if not len(rows):
                break
            now = x[rows]
            s = scale(guidance, guidance_schedule, (step + 1) / steps)
            logits = self.guided(now, None if request is None else request[rows], s).float()  # (R, T, K)
            keep = F.softmax(logits, -1).gather(2, now[..., None])[..., 0]  # (R, T)
            change = (torch.rand(now.shape, generator=generator, device=x.device) >= keep) & ~known[rows]
            other = (logits / temperature).scatter(2, now[..., None], float("-inf"))
            new = categorical(F.softmax(other, -1), generator)
            x[rows] = torch.where(change, new, now)
            used[rows] += 1
            active[rows] = change.sum(1) >= tolerance * free[rows]
            if trajectory:
                frames.append(self._grids(x.clone()))
        x = torch.where(known, given, self.guided(x, request, guidance).argmax(-1))  # the clean-up pass
        if trajectory:
            frames.append(self._grids(x))
        return Draw(self._grids(x), used + 1, frames)
