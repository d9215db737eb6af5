"""Autoregressive prior: next-token prediction over the raster-ordered token grid
(Esser et al. 2021, "Taming Transformers"), with completion of partial grids."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqgen.models.transformer import Transformer, TransformerConfig


def make_model(codebook_size: int, grid: tuple[int, int], **kwargs) -> Transformer:
    """A causal transformer whose extra input id `codebook_size` is the start token."""
    cfg = TransformerConfig(vocab_size=codebook_size + 1, out_size=codebook_size,
                            block_size=grid[0] * grid[1], causal=True, **kwargs)
    return Transformer(cfg)


def loss(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats/token) of predicting every token of (B, h, w) grids from those before it."""
    seq = tokens.flatten(1).long()  # (B, T)
    start = torch.full_like(seq[:, :1], model.cfg.out_size)
    inputs = torch.cat([start, seq[:, :-1]], dim=1)  # token i is predicted from position i-1
    _, nll = model(inputs, targets=seq)
    return nll


def _pick(logits: torch.Tensor, temperature: float, top_k: int, generator) -> torch.Tensor:
    logits = logits / temperature  # (B, V)
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)  # (B, 1)


@torch.no_grad()
def sample(model: Transformer, grid: tuple[int, int], n: int | None = None, prefix: torch.Tensor | None = None,
           temperature: float = 1.0, top_k: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample (B, h, w) grids; with `prefix` (B, P) the first P raster tokens are kept and the rest completed."""
    device = next(model.parameters()).device
    total = grid[0] * grid[1]
    if prefix is None:
        prefix = torch.empty(n, 0, dtype=torch.long, device=device)
    prefix = prefix.long().to(device)
    b = prefix.shape[0]
    if prefix.shape[1] == total:
        return prefix.view(b, *grid)
    seq = torch.cat([torch.full((b, 1), model.cfg.out_size, device=device, dtype=torch.long), prefix], 1)
    caches = model.new_caches()
    logits, _ = model(seq, caches=caches)  # prefill the start token and the prefix
    nxt = _pick(logits[:, -1], temperature, top_k, generator)
    out = [prefix]
    for pos in range(prefix.shape[1] + 1, total + 1):
        out.append(nxt)
        if pos == total:
            break
        logits, _ = model(nxt, caches=caches, start=pos)
        nxt = _pick(logits[:, -1], temperature, top_k, generator)
    return torch.cat(out, 1).view(b, *grid)
