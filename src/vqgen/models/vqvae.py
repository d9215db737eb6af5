"""VQ-VAE: convolutional encoder and decoder around a nearest-code vector quantizer,
plus the patch discriminator whose features give the perceptual loss.

An image (B, 3, S, S) in [-1, 1] becomes a grid of token ids (B, S/f, S/f), and back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from vqgen import distributed
from vqgen.models import perceptual


@dataclass
class VQVAEConfig:
    channels: int = 32  # at full resolution; doubled per level, capped at 4x
    downsample: int = 8  # image side / grid side, a power of two
    res_blocks: int = 1  # per level
    codebook_size: int = 256
    code_dim: int = 32
    beta: float = 0.25  # commitment weight (van den Oord et al. 2017)
    ema_decay: float = 0.99  # EMA codebook updates (Razavi et al. 2019); 0: learn codes by gradient
    dead_code_fraction: float = 0.0625  # restart codes whose EMA usage falls below this share of the
    # expected use per code, vectors per step / codebook size (Zeghidour et al. 2021)
    factor_dim: int = 0  # > 0: search codes of this dimension, projected in and out (Yu et al. 2021)
    l2_codes: bool = False  # search and look up l2-normalised codes: cosine similarity (Yu et al. 2021)

    @property
    def levels(self) -> int:
        return int(math.log2(self.downsample))

    def width(self, level: int) -> int:
        return self.channels * min(2**level, 4)


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm that normalises channels-last bf16 input on the CPU in NCHW memory and hands it back
    channels-last: there torch's CPU kernel is many times slower than on NCHW, and took a fifth of the
    tokenizer's step (in float32 it is not: `python bench/group_norm.py`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layout = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        if x.device.type != "cpu" or x.dtype != torch.bfloat16 or not layout:
            return super().forward(x)
        return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)


def _norm(c: int) -> nn.GroupNorm:
    return GroupNorm(math.gcd(8, c), c)


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.block = nn.Sequential(
            _norm(c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1), _norm(c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1)
        )

    def forward(self, x):
        return x + self.block(x)


class Encoder(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, cfg.width(0), 3, padding=1)]
        for level in range(cfg.levels):
            layers.append(nn.Conv2d(cfg.width(level), cfg.width(level + 1), 4, stride=2, padding=1))
            layers += [ResBlock(cfg.width(level + 1)) for _ in range(cfg.res_blocks)]
        top = cfg.width(cfg.levels)
        layers += [ResBlock(top), _norm(top), nn.SiLU(), nn.Conv2d(top, cfg.code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # (B, 3, S, S) -> (B, D, S/f, S/f)
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        top = cfg.width(cfg.levels)
        layers: list[nn.Module] = [nn.Conv2d(cfg.code_dim, top, 3, padding=1), ResBlock(top)]
        for level in reversed(range(cfg.levels)):
            layers += [ResBlock(cfg.width(level + 1)) for _ in range(cfg.res_blocks)]
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(cfg.width(level + 1), cfg.width(level), 3, padding=1),
            ]
        layers += [_norm(cfg.width(0)), nn.SiLU(), nn.Conv2d(cfg.width(0), 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):  # (B, D, h, w) -> (B, 3, S, S)
        return self.net(z)


SEARCH_BLOCK = 1 << 18  # distances computed at once by the nearest-code search (1 MB of float32)


class VectorQuantizer(nn.Module):
    """Nearest-code lookup with straight-through gradients and a commitment loss.

    With ema_decay > 0 the codebook follows exponential moving averages of the encoder
    outputs assigned to each code; codes left unused are restarted at random encoder outputs.
    Factorised codes (`factor_dim`) are searched in a lower dimension, the encoder's vectors
    projected in and the codes projected out; l2-normalised codes (`l2_codes`) compare directions.
    """

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        k, d = cfg.codebook_size, cfg.factor_dim or cfg.code_dim
        if cfg.factor_dim:
            self.project_in = nn.Linear(cfg.code_dim, cfg.factor_dim)
            self.project_out = nn.Linear(cfg.factor_dim, cfg.code_dim)
        self.ema = cfg.ema_decay > 0
        if self.ema:
            self.register_buffer("codebook", torch.randn(k, d))
            self.register_buffer("cluster_size", torch.ones(k))
            self.register_buffer("embed_sum", self.codebook.clone())
        else:
            self.codebook = nn.Parameter(torch.randn(k, d) / math.sqrt(d))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def project(self, flat: torch.Tensor) -> torch.Tensor:  # (N, code_dim) -> (N, d)
        """The encoder's vectors as the codes are searched among them."""
        u = self.project_in(flat) if self.cfg.factor_dim else flat
        return F.normalize(u, dim=1) if self.cfg.l2_codes else u

    def codes(self) -> torch.Tensor:  # (K, d)
        return F.normalize(self.codebook, dim=1) if self.cfg.l2_codes else self.codebook

    def indices(self, flat: torch.Tensor, block: int = SEARCH_BLOCK) -> torch.Tensor:  # (N, d) -> (N,)
        """The nearest code of each (projected) row, searched `block` distances at a time: the N x K
        matrix of distances is never built (at K = 16384 it would be a gigabyte a step)."""
        cb = self.codes()
        norms = cb.pow(2).sum(1)  # |x - e|^2 = |x|^2 - 2 x.e + |e|^2; |x|^2 does not change the argmin
        rows = max(1, block // len(cb))
        out = torch.empty(len(flat), dtype=torch.long, device=flat.device)
        for i in range(0, len(flat), rows):
            out[i : i + rows] = torch.addmm(norms, flat[i : i + rows], cb.t(), alpha=-2).argmin(1)
        return out

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:  # (B, h, w) -> (B, code_dim, h, w)
        q = self.codes()[idx]
        return (self.project_out(q) if self.cfg.factor_dim else q).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor):
        """(B, code_dim, h, w) -> quantized (B, code_dim, h, w), ids (B, h, w), loss; in float32 always,
        as bf16 would blur the distances and the EMA statistics."""
        with torch.autocast(z.device.type, enabled=False):
            return self._quantize(z.float())

    def _quantize(self, z: torch.Tensor):
        b, d, h, w = z.shape
        flat = self.project(z.permute(0, 2, 3, 1).reshape(-1, d))  # (N, d)
        if self.training and not self.initialised:
            self._initialise(distributed.rows(flat.detach()))
        idx = self.indices(flat.detach())
        q = self.codes()[idx]
        if self.training and self.ema:  # every process makes the same update, from the whole batch
            self._ema_update(distributed.rows(flat.detach()), distributed.rows(idx))
        loss = self.cfg.beta * F.mse_loss(flat, q.detach())
        if not self.ema:
            loss = loss + F.mse_loss(q, flat.detach())
        q = flat + (q - flat).detach()  # straight-through estimator
        if self.cfg.factor_dim:
            q = self.project_out(q)
        q = q.view(b, h, w, d).permute(0, 3, 1, 2).contiguous()
        return q, idx.view(b, h, w), loss

    def dead_code_threshold(self, vectors: int) -> float:
        """The EMA use below which a code is restarted, for `vectors` encoder vectors a step."""
        return self.cfg.dead_code_fraction * vectors / self.cfg.codebook_size

    @torch.no_grad()
    def _initialise(self, flat: torch.Tensor) -> None:
        """Start the codebook at random encoder outputs (data-dependent init)."""
        n, k = flat.shape[0], self.cfg.codebook_size
        pick = torch.randperm(n, device=flat.device)[:k] if n >= k else torch.randint(0, n, (k,), device=flat.device)
        pick = distributed.first(pick)
        self.codebook.data.copy_(flat[pick])
        if self.ema:
            self.embed_sum.copy_(flat[pick])
            self.cluster_size.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        k, decay = self.cfg.codebook_size, self.cfg.ema_decay
        counts = torch.bincount(idx, minlength=k).to(flat.dtype)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, idx, flat)
        self.cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        self.embed_sum.mul_(decay).add_(sums, alpha=1 - decay)
        n = self.cluster_size.sum()
        size = (self.cluster_size + 1e-5) / (n + k * 1e-5) * n  # Laplace smoothing
        self.codebook.copy_(self.embed_sum / size.unsqueeze(1))
        dead = self.cluster_size < self.dead_code_threshold(len(flat))
        if dead.any():
            pick = distributed.first(torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device))
            self.codebook[dead] = flat[pick]
            self.embed_sum[dead] = flat[pick]
            self.cluster_size[dead] = 1.0


class VQVAE(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = VectorQuantizer(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, x):
        """(B, 3, S, S) -> reconstruction (B, 3, S, S), token ids (B, h, w), quantizer loss."""
        q, idx, qloss = self.quantizer(self.encoder(x))
        return self.decoder(q), idx, qloss

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, h, w)
        z = self.encoder(x)
        b, d, h, w = z.shape
        return self.quantizer.indices(self.quantizer.project(z.permute(0, 2, 3, 1).reshape(-1, d))).view(b, h, w)

    @torch.no_grad()
    def decode(self, idx: torch.Tensor) -> torch.Tensor:  # (B, h, w) -> (B, 3, S, S) in [-1, 1]
        return self.decoder(self.quantizer.lookup(idx)).clamp(-1, 1)


class Discriminator(nn.Module):
    """PatchGAN-style critic (Isola et al. 2017); its intermediate activations are the
    features of the perceptual loss, as in the blog post this project grew from."""

    def __init__(self, channels: int = 32, layers: int = 3):
        super().__init__()
        blocks, c_in = [], 3
        for i in range(layers):
            c_out = channels * 2**i
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 4, stride=2, padding=1),
                    _norm(c_out) if i else nn.Identity(),
                    nn.LeakyReLU(0.2),
                )
            )
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(c_in, 1, 3, padding=1)

    def forward(self, x):
        """(B, 3, S, S) -> patch logits (B, 1, S/8, S/8) and the list of block activations."""
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.head(x), feats


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean())


def adaptive_weight(rec_loss: torch.Tensor, adv_loss: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """VQGAN's balance of the adversarial term (Esser et al. 2021): the ratio of the gradient norms
    of the reconstruction and the adversarial losses at the decoder's last layer `last`, so the
    discriminator pulls on the decoder as hard as the reconstruction does. A constant, not trained."""
    g_rec = torch.autograd.grad(rec_loss, last, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv_loss, last, retain_graph=True)[0]
    distributed.average([g_rec, g_adv])  # the gradients of the whole batch: the mean of every process's
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, 1e4).detach()


def pixel_loss(recon: torch.Tensor, x: torch.Tensor, edge_weight: float) -> torch.Tensor:
    """Squared error with each pixel weighted by 1 + edge_weight x the target's local contrast over
    its mean in the batch, the weights normalised to average 1. Plain MSE lets the quantizer trade
    thin, high-contrast detail (the frames of glasses, earrings) for broad smooth areas: a one-pixel
    line is a sliver of the error however wrong it is. edge_weight 0 is plain MSE.

    A pixel's step is its absolute colour difference (summed over channels) to the pixel below plus
    that to the pixel on its right; its contrast is the largest step within one pixel of it, so both
    sides of an edge count."""
    if not edge_weight:
        return F.mse_loss(recon, x)
    step_down = F.pad((x[..., 1:, :] - x[..., :-1, :]).abs().sum(1, keepdim=True), (0, 0, 0, 1))
    step_right = F.pad((x[..., :, 1:] - x[..., :, :-1]).abs().sum(1, keepdim=True), (0, 1, 0, 0))
    contrast = F.max_pool2d(step_down + step_right, 3, stride=1, padding=1)
    w = 1 + edge_weight * contrast / distributed.mean(contrast).clamp_min(1e-12)
    return ((recon - x).pow(2) * w).mean() / distributed.mean(w)  # global statistics: torchrun trains as one process


def seen_by(net: nn.Module, x: torch.Tensor, y: torch.Tensor, one_pass: bool) -> tuple:
    """(net(x), net(y)), from one pass over both images' batches together if `one_pass`: then every
    tensor of the output, nested in tuples and lists, is split back into x's half and y's."""
    if not one_pass:
        return net(x), net(y)

    def halves(out):
        if torch.is_tensor(out):
            return out.chunk(2)
        parts = [halves(o) for o in out]
        return type(out)(p[0] for p in parts), type(out)(p[1] for p in parts)

    return halves(net(torch.cat([x, y])))


def losses(
    model: VQVAE,
    disc: Discriminator,
    x: torch.Tensor,
    perceptual_weight: float,
    adversarial_weight: float,
    use_disc: bool,
    features: nn.Module | None = None,
    edge_weight: float = 0.0,
    one_pass: bool = False,
) -> dict[str, torch.Tensor]:
    """The autoencoder's loss `loss`: pixel loss (MSE, weighted to edges by `edge_weight`) + quantizer
    + perceptual + adaptively weighted adversarial, and, once the discriminator is on and it has
    work, its hinge loss `d_loss`. The plain MSE is reported as `mse` whatever the weighting.

    The perceptual term compares unit-normalised features of the frozen network `features` when
    given (from the first step), else the discriminator's (once it is on). The discriminator sees
    x and the reconstruction once each, and nothing when none of its losses weighs anything; its
    `d_loss` reads the same pass over the reconstruction as the perceptual and adversarial terms, so
    it must be stepped on the discriminator's parameters only (`train.fit` steps each loss so).
    With `one_pass` the discriminator and `features` each see x and the reconstruction in one pass
    of twice the batch: the same losses and, up to rounding, gradients, from fewer and fuller
    kernels, but the backward pass also runs through the images' half. On the 2-core CPU two passes
    are 10% faster (`python bench/discriminator_pass.py`, which measures a GPU too)."""
    recon, _, qloss = model(x)
    mse = F.mse_loss(recon, x)
    out = {"mse": mse, "quantizer": qloss}
    rec = pixel_loss(recon, x, edge_weight) if edge_weight else mse  # plain MSE: already computed
    if perceptual_weight and features is not None:
        out["perceptual"] = perceptual.feature_distance(*seen_by(features, x, recon, one_pass))
        rec = rec + perceptual_weight * out["perceptual"]
    judged = use_disc and (adversarial_weight or (perceptual_weight and features is None))
    if judged:
        (logits_real, real_feats), (logits_fake, fake_feats) = seen_by(disc, x, recon, one_pass)
        if perceptual_weight and features is None:
            out["perceptual"] = perceptual.feature_distance(real_feats, fake_feats)
            rec = rec + perceptual_weight * out["perceptual"]
        out["d_loss"] = hinge_d_loss(logits_real, logits_fake)
    loss = rec + qloss
    if judged and adversarial_weight:
        out["adversarial"] = -logits_fake.mean()
        out["adaptive_weight"] = adaptive_weight(rec, out["adversarial"], model.decoder.net[-1].weight)
        loss = loss + adversarial_weight * out["adaptive_weight"] * out["adversarial"]
    out["loss"] = loss
    return out
