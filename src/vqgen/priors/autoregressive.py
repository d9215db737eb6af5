"""Autoregressive prior: next-token prediction over the raster-ordered token grid
(Esser et al. 2021, "Taming Transformers"), sampled with a key/value cache.

Completion under any mask is causal: a given token is kept where it stands, but what comes
before it is drawn without seeing it (the reason the diffusion priors exist). Guided sampling
runs the conditional and unconditional rows as one doubled batch with one cache, both halves fed
the token drawn from the guided logits (LlamaGen).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqgen import graphs
from vqgen.config import AR
from vqgen.priors.base import UNDECIDED, Draw, Prior, categorical
from vqgen.priors.guidance import doubled, guide, scale


def pick(logits: torch.Tensor, temperature: float, top_k: int, generator) -> torch.Tensor:
    """One draw per row of (B, V) logits at `temperature`, among the `top_k` most likely (0: all) -> (B,)."""
    logits = logits.float() if temperature == 1 else logits.float() / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return categorical(F.softmax(logits, dim=-1), generator)


class Autoregressive(Prior):
    name = "ar"
    causal = True
    extra_ids = 1  # id `codebook_size` is the start token
    settings = ("temperature", "top_k", "min_p", "guidance", "guidance_schedule")

    def loss(self, tokens: torch.Tensor, request: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy (nats/token) of every token given those before it (and the request)."""
        seq = tokens.flatten(1).long()  # (B, T)
        start = torch.full_like(seq[:, :1], self.codebook_size)
        inputs = torch.cat([start, seq[:, :-1]], dim=1)  # token i is read at position i
        return self.model(inputs, targets=seq, request=request)[1]

    @torch.no_grad()
    def sample(
        self,
        n=None,
        given=None,
        known=None,
        *,
        request=None,
        temperature: float = AR.temperature,
        top_k: int = AR.top_k,
        min_p: float = AR.min_p,
        guidance: float = AR.guidance,
        guidance_schedule: str = AR.guidance_schedule,
        generator=None,
        trajectory: bool = False,
        cache: bool = True,
    ) -> Draw:
        """Tokens drawn in raster order, guided ones among the codes at least `min_p` times as likely as the
        likeliest under the request (`guidance.guide`); `cache=False` recomputes every earlier position
        at every step (the same tokens, slower: the check of the cache)."""
        given, known = self._inputs(n, given, known)
        b, t = given.shape
        request = self._request(request, b)
        guided = request is not None and guidance != 1
        both = (lambda x: torch.cat([x, x])) if guided else (lambda x: x)  # the rows the model is run on
        request = doubled(request) if guided else request
        # the same at every step; of a model with attributes, the empty request's when none is given
        embedded = self.model.condition(request, b) if self.model.prefix else None
        out = given.clone()
        frames = [self._grids(torch.where(known, given, UNDECIDED))] if trajectory else None
        free = (~known).any(0).nonzero()
        first = int(free[0]) if len(free) else t  # positions before it are given in every row: read them at once
        if first == t:
            return Draw(self._grids(out), torch.zeros(b, dtype=torch.long), frames)
        caches = self.model.new_caches() if cache else None
        start = torch.full((b, 1), self.codebook_size, dtype=torch.long, device=given.device)
        logits = self.model(both(torch.cat([start, given[:, :first]], 1)), caches=caches, cond=embedded)[0][:, -1]
        kept = known.any(0).tolist()  # positions some row is given: read once, not at every step
        step = self._step(caches, embedded, given.device) if cache else None
        for pos in range(first, t):
            if guided:
                cond, uncond = logits.chunk(2)
                logits = guide(cond, uncond, scale(guidance, guidance_schedule, (pos + 1) / t), min_p)
            drawn = pick(logits, temperature, top_k, generator)
            out[:, pos] = torch.where(known[:, pos], given[:, pos], drawn) if kept[pos] else drawn
            if trajectory:
                frames.append(
                    self._grids(torch.where(known | (torch.arange(t, device=out.device) <= pos), out, UNDECIDED))
                )
            if pos + 1 < t and cache:
                logits = step(both(out[:, pos]), pos + 1)
            elif pos + 1 < t:
                logits = self.model(both(torch.cat([start, out[:, : pos + 1]], 1)), cond=embedded)[0][:, -1]
        return Draw(self._grids(out), (~known).sum(1), frames)  # one pass per token drawn

    def _step(self, caches, cond, device: torch.device):
        """The cached decoding step (ids (B,), position) -> logits (B, K): on a GPU one CUDA graph, its
        position a tensor, replayed at every position (`vqgen.graphs`); elsewhere the model's `decoder`."""
        decoder = self.model.decoder(caches, cond)
        if device.type != "cuda":
            return decoder
        positions = torch.arange(self.model.cfg.block_size, device=device)
        graph = graphs.Replayed(decoder)
        return lambda idx, pos: graph(idx, positions[pos])
