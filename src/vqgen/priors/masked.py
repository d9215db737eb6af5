"""Masked (absorbing-state) discrete diffusion with confidence-based parallel decoding
(MaskGIT, Chang et al. 2022; the absorbing process of D3PM, Austin et al. 2021).

Training hides a fraction of the tokens, drawn from a cosine schedule, behind a [MASK] id and
scores the predictions at the hidden positions. Sampling starts fully masked; each step draws
every masked position and keeps the most confident draws, so that a cosine share stays masked.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vqgen.priors.base import UNDECIDED, Draw, Prior


def schedule(fraction: torch.Tensor | float) -> torch.Tensor:
    """Share of tokens masked at time `fraction` in [0, 1]: cos(pi/2 * fraction), from all to none."""
    return torch.cos(torch.as_tensor(fraction, dtype=torch.float64) * math.pi / 2)


def ranks(scores: torch.Tensor) -> torch.Tensor:
    """The rank of each entry within its row, 0 for the smallest."""
    return scores.argsort(1).argsort(1)


class MaskedDiffusion(Prior):
    name = "masked"
    causal = False
    extra_ids = 1  # id `codebook_size` is [MASK]
    settings = ("temperature", "steps", "confidence_noise")

    def hide(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) of (B, h, w) grids: a share cos(pi/2 * r), r ~ U(0, 1), of each grid's tokens
        (at least one) is [MASK] in the inputs; targets are the hidden tokens, -100 (ignored) elsewhere."""
        x = tokens.flatten(1).long()  # (B, T)
        b, t = x.shape
        count = (schedule(torch.rand(b, device=x.device)) * t).ceil().clamp(1, t).to(x.device)  # (B,)
        hidden = ranks(torch.rand(b, t, device=x.device)) < count[:, None]
        return x.masked_fill(hidden, self.codebook_size), x.masked_fill(~hidden, -100)

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the hidden tokens."""
        inputs, targets = self.hide(tokens)
        return self.model(inputs, targets=targets)[1]

    @torch.no_grad()
    def sample(self, n=None, given=None, known=None, *, temperature: float = 1.0, steps: int = 12,
               confidence_noise: float = 4.5, generator=None, trajectory: bool = False) -> Draw:
        """Parallel decoding in `steps` passes. Draws at `temperature`; a draw's confidence is its
        log-probability plus Gumbel noise of scale `confidence_noise`, annealed linearly to 0 over the steps."""
        given, known = self._inputs(n, given, known)
        b, t = given.shape
        mask = self.codebook_size
        x = torch.where(known, given, mask)
        unknown = (~known).sum(1)  # (B,)
        frames = [self._grids(x.masked_fill(x == mask, UNDECIDED))] if trajectory else None
        used = torch.zeros(b, dtype=torch.long, device=x.device)
        for step in range(steps):
            masked = x == mask
            if not masked.any():
                break
            probs = F.softmax(self.model(x)[0].float() / temperature, -1)  # (B, T, K)
            draw = torch.multinomial(probs.view(b * t, -1), 1, generator=generator).view(b, t)
            u = torch.rand(x.shape, generator=generator, device=x.device).clamp(1e-20, 1 - 1e-7)
            confidence = probs.gather(2, draw[..., None])[..., 0].clamp_min(1e-30).log()
            confidence = confidence - confidence_noise * (1 - (step + 1) / steps) * (-u.log()).log()  # + scaled Gumbel noise
            confidence = confidence.masked_fill(~masked, float("inf"))  # decided positions stay decided
            left = (unknown * schedule((step + 1) / steps)).floor().long()  # still masked after this step
            left = torch.minimum(left, masked.sum(1) - 1).clamp_min(0)  # and at least one decided per step
            x = torch.where(masked & (ranks(confidence) >= left[:, None]), draw, x)
            used += masked.any(1)
            if trajectory:
                frames.append(self._grids(x.masked_fill(x == mask, UNDECIDED)))
        return Draw(self._grids(x), used, frames)
