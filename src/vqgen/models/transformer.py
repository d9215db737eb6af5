"""A GPT-style transformer over flattened token grids, causal or bidirectional.

The autoregressive prior uses it causally, with a start token and a key/value cache for
sampling; the discrete-diffusion prior uses the same blocks without the causal mask. A model
with attributes is conditioned on a request: each attribute present, absent or unspecified.
The request is the sum of the learned embeddings of its specified attributes (one for present,
one for absent each; they start at zero), added to the input of every position and, with a
position of its own, read as one token before the sequence (as LlamaGen's class token). An
unspecified attribute adds nothing, so the empty request is the unconditional model, the null of
classifier-free guidance. (Both together measured better than either alone and than one prefix
token per attribute: see docs/priors.md.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class TransformerConfig:
    vocab_size: int = 257  # input ids (codebook + start token for the causal model)
    out_size: int = 256  # predicted ids (the codebook)
    block_size: int = 64  # sequence length
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 192
    dropout: float = 0.0
    causal: bool = True
    num_attributes: int = 0  # attributes a request may specify (0: an unconditional model)


UNSPECIFIED = -1  # an attribute a request leaves open; 0 is absent, 1 present


class Cache:
    """The keys and values of one attention layer at every position of a sequence of `size`, allocated at
    the first write and written in place as positions are computed (no copy of the earlier ones)."""

    def __init__(self, size: int):
        self.size = size
        self.k = self.v = None

    def extend(self, k: torch.Tensor, v: torch.Tensor, start: int):
        """Store (B, H, T, D) keys and values at positions start..start+T -> those of positions 0..start+T."""
        if self.k is None:
            b, h, _, d = k.shape
            self.k, self.v = (k.new_empty(b, h, self.size, d) for _ in "kv")
        end = start + k.shape[2]
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]

    def write(self, k: torch.Tensor, v: torch.Tensor, at: torch.Tensor):
        """Store the (B, H, 1, D) key and value of the position `at`, a 0-d tensor, in the cache allocated
        by an earlier `extend` -> every position's keys and values, and the mask of those up to
        `at` (1, size). The shapes do not change with the position, so one captured step serves them all."""
        self.k.index_copy_(2, at.view(1), k)
        self.v.index_copy_(2, at.view(1), v)
        return self.k, self.v, (torch.arange(self.size, device=at.device) <= at)[None]


def attend(q, k, v, mask: torch.Tensor | None = None, causal: bool = False, dropout: float = 0.0) -> torch.Tensor:
    """softmax(q kᵀ / √d + mask) v over (B, H, T, D) queries and (B, H, S, D) keys and values; `mask` is
    True where a query may look, `causal` lets each of T = S positions see itself and those before.
    In bf16 on a CPU, the operations written out (`written_out`); elsewhere torch's fused kernel."""
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        return written_out(q, k, v, mask, causal, dropout)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, dropout_p=dropout)


def written_out(q, k, v, mask: torch.Tensor | None = None, causal: bool = False, dropout: float = 0.0) -> torch.Tensor:
    """`attend` as three operations: scores, softmax, weighted sum. Torch's fused CPU kernel has no fast
    bf16 path: at the priors' head sizes and training batches of 8 to 64 this is 3-6x faster than it
    in bf16, and 1.4-2x slower in fp32 (`python bench/attention.py`)."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if causal:
        mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return F.dropout(scores.softmax(-1), dropout, training=dropout > 0) @ v


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cache: Cache | None = None, start: int = 0):
        b, t, c = x.shape
        h = self.cfg.n_head
        q, k, v = self.qkv(x).view(b, t, 3, h, c // h).permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        if cache is not None:
            k, v = cache.extend(k, v, start)
        # Queries after the first position come one at a time and may see everything before them.
        causal = self.cfg.causal and start == 0 and t > 1
        assert start == 0 or t == 1 or not self.cfg.causal, "a causal cache extends by one position at a time"
        y = attend(q, k, v, causal=causal, dropout=self.cfg.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(b, t, c)  # (B, T, C)
        return self.drop(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd),
            nn.GELU(),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(cfg.n_embd), Attention(cfg)
        self.ln2, self.mlp = nn.LayerNorm(cfg.n_embd), MLP(cfg)

    def forward(self, x, cache=None, start: int = 0):
        x = x + self.attn(self.ln1(x), cache, start)
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.prefix = 1 if cfg.num_attributes else 0  # the request's position, before the tokens
        if cfg.num_attributes:
            self.attr_emb = nn.Embedding(2 * cfg.num_attributes, cfg.n_embd)  # attribute a absent: 2a, present: 2a + 1
            self.cond_pos = nn.Embedding(1, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.out_size, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # scaled init of residual projections (GPT-2)
            if name.endswith("proj.weight") or name.endswith("net.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))
        if cfg.num_attributes:  # a sum of 40 embeddings at std 0.02 would drown the tokens' at the start
            nn.init.zeros_(self.attr_emb.weight)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def condition(self, request: torch.Tensor | None, n: int = 1) -> torch.Tensor:
        """(B, A) requests of 0 (absent), 1 (present) or UNSPECIFIED -> (B, 1, C), the sum of the
        embeddings of the specified attributes; None: the empty request of n rows."""
        if request is None:
            request = torch.full((n, self.cfg.num_attributes), UNSPECIFIED, device=self.attr_emb.weight.device)
        a = torch.arange(request.shape[1], device=request.device)
        specified = (request != UNSPECIFIED)[..., None]
        summed = (self.attr_emb(2 * a + request.clamp_min(0).long()) * specified).sum(1, keepdim=True)
        return summed

    def _condition(self, idx: torch.Tensor, request: torch.Tensor | None, cond: torch.Tensor | None) -> torch.Tensor:
        """(B, 1, C) `cond` if given, else the `condition` of `request`, else of the empty request."""
        return cond if cond is not None else self.condition(request, len(idx))

    def forward(self, idx, targets=None, caches: list[Cache] | None = None, start: int = 0, request=None, cond=None):
        """idx (B, T) -> logits (B, T, out_size), and the mean cross-entropy if targets are given.

        With `caches` (see `new_caches`) only the new positions start..start+T are computed. A model
        with attributes is conditioned on a `request` (B, A), or on its `condition` given as `cond`;
        on the empty request without either. The request's token is read at start 0 and kept in
        the caches from then on."""
        b, t = idx.shape
        assert start + t <= self.cfg.block_size, f"sequence of {start + t} exceeds block size {self.cfg.block_size}"
        x = self.tok_emb(idx) + self.pos_emb.weight[start : start + t]  # (B, T, C)
        if self.prefix:
            cond = self._condition(idx, request, cond)
            x = x + cond
            if start == 0:
                x = torch.cat([cond + self.cond_pos.weight, x], 1)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i], start + self.prefix if start else 0)
        logits = self.head(self.ln_f(x[:, -t:]))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss

    def decode(
        self, idx: torch.Tensor, caches: list[Cache], start: int | torch.Tensor, cond: torch.Tensor | None = None
    ):
        """The logits (B, out_size) of the next token after the ids idx (B,) at position `start` > 0, every
        earlier position read from `caches`: `forward(idx[:, None], caches=caches, start=start, cond=cond)`
        in eval mode, the same numbers. A sampler takes its `decoder` once and calls it at every step."""
        return self.decoder(caches, cond)(idx, start)

    def decoder(self, caches: list[Cache], cond: torch.Tensor | None = None) -> Decoder:
        """The sampler's step over `caches`, conditioned on `cond` (B, 1, C), the `condition` of its requests."""
        return Decoder(self, caches, cond)

    def new_caches(self) -> list[Cache]:
        """Empty key/value caches of every block, for sequences up to the block size."""
        return [Cache(self.cfg.block_size + self.prefix) for _ in self.blocks]


class Decoder:
    """`Transformer.decode` as a sampler calls it, position after position: the model's weights and
    caches gathered once, so that a step is its tensor operations and nothing else. At a small batch
    a step costs per-operation overhead, not arithmetic, and a module call or an attribute lookup
    costs about what an operation does. At a 0-d tensor `start` (for a CUDA graph, `vqgen.graphs`)
    it attends over the whole cache, the later positions masked: the same up to rounding."""

    def __init__(self, model: Transformer, caches: list[Cache], cond: torch.Tensor | None = None):
        self.model, self.cfg = model, model.cfg
        self.cond = cond
        self.tok, self.pos = model.tok_emb.weight, model.pos_emb.weight
        # per block: its two layer norms, the transposed weights and biases of its four linear maps, its cache
        self.blocks = [
            (
                (b.ln1.normalized_shape, b.ln1.weight, b.ln1.bias, b.ln1.eps),
                (b.ln2.normalized_shape, b.ln2.weight, b.ln2.bias, b.ln2.eps),
                *(w for m in (b.attn.qkv, b.attn.proj, b.mlp.net[0], b.mlp.net[2]) for w in (m.weight.t(), m.bias)),
                cache,
            )
            for b, cache in zip(model.blocks, caches)
        ]
        ln = model.ln_f
        self.final = (ln.normalized_shape, ln.weight, ln.bias, ln.eps)
        self.head = model.head.weight.t()

    def __call__(self, idx: torch.Tensor, start: int | torch.Tensor) -> torch.Tensor:
        """The logits (B, out_size) of the next token after the ids idx (B,) at position `start`."""
        with torch.inference_mode():  # 5% fewer instructions a step: no version counters, no views tracked
            b, c, h = len(idx), self.cfg.n_embd, self.cfg.n_head
            at, indexed = start + self.model.prefix, isinstance(start, int)
            # indexing by a tensor would read it back to the host
            pos = self.pos[start] if indexed else F.embedding(start, self.pos)
            x = torch.embedding(self.tok, idx) + pos  # (B, C)
            if self.model.prefix:
                x = x + self.model._condition(idx, None, self.cond)[:, 0]
            for norm1, norm2, w_qkv, b_qkv, w_proj, b_proj, w_up, b_up, w_down, b_down, cache in self.blocks:
                q, k, v = torch.addmm(b_qkv, torch.layer_norm(x, *norm1), w_qkv).view(b, 3, h, 1, -1).unbind(1)
                if indexed:
                    y = attend(q, *cache.extend(k, v, at))  # (B, H, 1, D)
                else:
                    k, v, seen = cache.write(k, v, at)
                    y = attend(q, k, v, mask=seen)
                x = x + torch.addmm(b_proj, y.view(b, c), w_proj)
                x = x + torch.addmm(b_down, F.gelu(torch.addmm(b_up, torch.layer_norm(x, *norm2), w_up)), w_down)
            return torch.layer_norm(x, *self.final) @ self.head
