"""Masked (absorbing-state) discrete diffusion with confidence-based parallel decoding
(MaskGIT, Chang et al. 2022; the absorbing process of D3PM, Austin et al. 2021).

Training hides a fraction of the tokens, drawn from a cosine schedule, behind a [MASK] id and
scores the predictions at the hidden positions. Sampling starts fully masked; each step draws
every masked position and keeps a cosine share of them: the next ones in a fixed order that a 2-D
Halton sequence spreads over the grid (Besnier et al. 2025), or the most confident draws.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vqgen import graphs
from vqgen.config import ORDERS, Diffusion
from vqgen.priors.base import UNDECIDED, Draw, Prior, categorical
from vqgen.priors.guidance import scale


def schedule(fraction: torch.Tensor | float) -> torch.Tensor:
    """Share of tokens masked at time `fraction` in [0, 1]: cos(pi/2 * fraction), from all to none."""
    return torch.cos(torch.as_tensor(fraction, dtype=torch.float64) * math.pi / 2)


def still_masked(unknown: torch.Tensor, steps: int) -> torch.Tensor:
    """(steps + 1, B) how many of each row's `unknown` (B,) tokens are masked before the first step and
    after each: a cosine share of them, and at least one fewer each step until none. The schedule fixes
    the counts, so the sampler knows them before it starts (and never asks the device how many are left)."""
    counts = [unknown]
    for step in range(steps):
        share = (unknown * schedule((step + 1) / steps)).floor().long()
        counts.append(torch.minimum(share, counts[-1] - 1).clamp_min(0))
    return torch.stack(counts)


def ranks(scores: torch.Tensor) -> torch.Tensor:
    """The rank of each entry within its row, 0 for the smallest."""
    return scores.argsort(1).argsort(1)


def halton_turns(h: int, w: int) -> torch.Tensor:
    """(h * w,) each position's turn in the order a 2-D Halton sequence (bases 2 and 3) first visits the
    cells of an h x w grid: at every stage the visited cells are spread evenly, so the tokens decided
    in one step are as far apart, and as independent, as the grid allows."""

    def radical_inverse(i: int, base: int) -> float:
        out, scale = 0.0, 1.0
        while i:
            scale /= base
            out += scale * (i % base)
            i //= base
        return out

    turns, i = torch.full((h * w,), -1, dtype=torch.long), 1
    for turn in range(h * w):
        while turns[cell := int(radical_inverse(i, 2) * h) * w + int(radical_inverse(i, 3) * w)] >= 0:
            i += 1
        turns[cell] = turn
    return turns


def noised(b: int, t: int, device: torch.device | None = None) -> torch.Tensor:
    """(B, T) True on a random share cos(pi/2 * r), r ~ U(0, 1), of each row's positions (at least one):
    the positions a training grid has corrupted."""
    count = (schedule(torch.rand(b, device=device)) * t).ceil().clamp(1, t).to(device)  # (B,)
    return ranks(torch.rand(b, t, device=device)) < count[:, None]


def confident_draws(logits: torch.Tensor, temperature: float, noise: float, generator=None):
    """A code drawn at `temperature` at every position of logits (B, T, K), and each draw's confidence:
    its log-probability under the model at temperature 1 plus Gumbel noise of scale `noise / temperature`.
    The temperature sets what is drawn, not how surely the draw is kept; what a lower temperature takes
    out of the draws' randomness, the noise puts back into the order in which they are kept."""
    b, t, _ = logits.shape
    logp = F.log_softmax(logits.float(), -1)
    draw = categorical(F.softmax(logp / temperature, -1), generator)
    u = torch.rand((b, t), generator=generator, device=logits.device).clamp(1e-20, 1 - 1e-7)
    return draw, logp.gather(2, draw[..., None])[..., 0] - noise / temperature * (-u.log()).log()


def annealed(temperature: float, noise: float, progress: float) -> tuple[float, float]:
    """The temperature and confidence noise of the decoding step that ends `progress` (0 to 1) of the
    way: the temperature goes from 1 to `temperature`, so that the first tokens, which set a grid's
    layout, are drawn with the model's full diversity and the temperature sharpens the last ones,
    the details; the noise goes from `noise` to 0."""
    return 1 + (temperature - 1) * progress, noise * (1 - progress)


class MaskedDiffusion(Prior):
    name = "masked"
    causal = False
    extra_ids = 1  # id `codebook_size` is [MASK]
    settings = ("temperature", "min_p", "steps", "confidence_noise", "order", "guidance", "guidance_schedule")

    def hide(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) of (B, h, w) grids: the `noised` share of each grid's tokens is [MASK] in the
        inputs; targets are the hidden tokens, -100 (ignored) elsewhere."""
        x = tokens.flatten(1).long()  # (B, T)
        hidden = noised(*x.shape, device=x.device)
        return x.masked_fill(hidden, self.codebook_size), x.masked_fill(~hidden, -100)

    def loss(self, tokens: torch.Tensor, request: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy of the hidden tokens."""
        inputs, targets = self.hide(tokens)
        return self.model(inputs, targets=targets, request=request)[1]

    @torch.no_grad()
    def sample(
        self,
        n=None,
        given=None,
        known=None,
        *,
        request=None,
        temperature: float = Diffusion.temperature,
        min_p: float = Diffusion.min_p,
        steps: int = Diffusion.steps,
        confidence_noise: float = Diffusion.confidence_noise,
        order: str = Diffusion.order,
        guidance: float = Diffusion.guidance,
        guidance_schedule: str = Diffusion.guidance_schedule,
        generator=None,
        trajectory: bool = False,
    ) -> Draw:
        """Parallel decoding in `steps` passes. Draws (guided ones among the codes at least `min_p` times as
        likely as the likeliest under the request: `guidance.guide`) at a temperature going from 1 to
        `temperature`, and keeps them in the `order` of `halton_turns` ('halton') or of their confidence
        ('confidence'): a draw's log-probability plus Gumbel noise of scale `confidence_noise` (divided by the
        temperature), annealed to 0 over the steps (see `annealed` and `confident_draws`)."""
        given, known = self._inputs(n, given, known)
        b, t = given.shape
        request = self._request(request, b)
        mask = self.codebook_size
        if order not in ORDERS:
            raise ValueError(f"order is {order!r}; use one of {', '.join(ORDERS)}.")
        if order == "halton":
            first = -halton_turns(*self.grid).to(given.device).float().expand(b, t)  # the earliest turn ranks highest
        x = torch.where(known, given, mask)
        left = still_masked((~known).sum(1).cpu(), steps)  # (steps + 1, B)
        passes = int((left[:-1] > 0).any(1).sum())  # the steps until every row is decided
        left = left.to(x.device)  # read step by step without waiting on the device
        frames = [self._grids(x.masked_fill(x == mask, UNDECIDED))] if trajectory else None
        net = graphs.Replayed(self.model_logits)  # on a GPU, each pass one CUDA graph
        for step in range(passes):
            masked = x == mask
            heat, shake = annealed(temperature, confidence_noise, (step + 1) / steps)
            logits = self.guided(x, request, scale(guidance, guidance_schedule, (step + 1) / steps), net, min_p)
            draw, confidence = confident_draws(logits, heat, shake, generator)
            if order == "halton":
                confidence = first
            confidence = confidence.masked_fill(~masked, float("inf"))  # decided positions stay decided
            x = torch.where(masked & (ranks(confidence) >= left[step + 1, :, None]), draw, x)
            if trajectory:
                frames.append(self._grids(x.masked_fill(x == mask, UNDECIDED)))
        return Draw(self._grids(x), (left[:passes] > 0).sum(0), frames)
