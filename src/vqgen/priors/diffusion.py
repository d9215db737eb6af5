"""Discrete diffusion prior: tokens are corrupted by uniform resampling and a bidirectional
transformer learns to undo one small corruption step, as in the blog post this project
grew from (a crude form of VQ-Diffusion, Gu et al. 2022). Sampling starts from uniform
random tokens and applies the model repeatedly."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqgen.models.transformer import Transformer, TransformerConfig


def make_model(codebook_size: int, grid: tuple[int, int], **kwargs) -> Transformer:
    cfg = TransformerConfig(vocab_size=codebook_size, out_size=codebook_size,
                            block_size=grid[0] * grid[1], causal=False, **kwargs)
    return Transformer(cfg)


def corrupt(tokens: torch.Tensor, fraction: torch.Tensor | float, codebook_size: int,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each token, with probability `fraction` (scalar or one per row), by a uniform random code."""
    fraction = torch.as_tensor(fraction, dtype=torch.float32, device=tokens.device)
    fraction = fraction.view(-1, *([1] * (tokens.dim() - 1))) if fraction.dim() else fraction
    hit = torch.rand(tokens.shape, generator=generator, device=tokens.device) < fraction
    noise = torch.randint(0, codebook_size, tokens.shape, generator=generator, device=tokens.device)
    return torch.where(hit, noise, tokens)


def loss(model: Transformer, tokens: torch.Tensor, extra_noise: float = 0.1) -> torch.Tensor:
    """Cross-entropy of g(x_b) against x_a, where x_a re-randomises a uniformly drawn fraction of
    the tokens of x and x_b a further `extra_noise` of them."""
    x = tokens.flatten(1).long()  # (B, T)
    k = model.cfg.out_size
    x_a = corrupt(x, torch.rand(x.shape[0], device=x.device), k)
    x_b = corrupt(x_a, extra_noise, k)
    _, nll = model(x_b, targets=x_a)
    return nll


@torch.no_grad()
def sample(model: Transformer, grid: tuple[int, int], n: int, steps: int, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Reverse diffusion from uniform random tokens: the trajectory, steps + 1 grids of (n, h, w)."""
    device = next(model.parameters()).device
    k = model.cfg.out_size
    x = torch.randint(0, k, (n, grid[0] * grid[1]), generator=generator, device=device)
    trajectory = [x.view(n, *grid)]
    for _ in range(steps):
        logits, _ = model(x)  # (n, T, K)
        probs = F.softmax(logits / temperature, dim=-1)
        x = torch.multinomial(probs.view(-1, k), 1, generator=generator).view(n, -1)
        trajectory.append(x.view(n, *grid))
    return trajectory
