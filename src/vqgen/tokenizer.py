"""The trained tokenizer as everything after `train_vqvae` uses it: loaded from its checkpoint,
uint8 images to token grids, and grids back to uint8 images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vqgen import checkpoint
from vqgen.data import images
from vqgen.models.vqvae import VQVAE, VQVAEConfig


def load(path: str | Path, device: str | torch.device = "cpu") -> VQVAE:
    """The VQ-VAE of a checkpoint written by `train_vqvae`, in eval mode on `device`, channels-last (its
    convolutions run up to 2x faster so on a CPU)."""
    return checkpoint.load(path, VQVAE, VQVAEConfig, device)[0].to(memory_format=torch.channels_last)


def image_size(path: str | Path) -> int:
    """The side of the images the tokenizer of `path` was trained on."""
    return int(checkpoint.metadata(path)["image_size"])


@torch.no_grad()
def encode(model: VQVAE, imgs, batch_size: int = images.BATCH) -> torch.Tensor:
    """uint8 images (N, S, S, 3), an array or a `images.Split` -> token grids (N, h, w), int64 on the CPU."""
    dev = next(model.parameters()).device
    return torch.cat([model.encode(x.to(dev)).cpu() for x in images.batched(imgs, batch_size)])


@torch.no_grad()
def decode(model: VQVAE, grids: torch.Tensor, batch_size: int = images.BATCH) -> np.ndarray:
    """Token grids (N, h, w) -> uint8 images (N, S, S, 3); the patches of negative ids (a prior's
    UNDECIDED positions, a completion's hidden ones) are grey."""
    dev = next(model.parameters()).device
    grids = torch.as_tensor(grids)
    undecided = (grids < 0).cpu().numpy()
    grids = grids.long().clamp_min(0)
    out = np.concatenate(
        [images.to_uint8(model.decode(grids[i : i + batch_size].to(dev))) for i in range(0, len(grids), batch_size)]
    )
    if undecided.any():
        f = out.shape[1] // grids.shape[1]
        out[undecided.repeat(f, 1).repeat(f, 2)] = 128
    return out
