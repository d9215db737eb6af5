"""The judge of samples: a small CNN trained on real images only, whose penultimate features
are the space in which the Fréchet distance between generated and real images is measured.

With attributes (CelebA, synthetic faces) it predicts them, each weighted against its rarity in
the training images (a rare attribute's few positives count as much as its many negatives, so
that "never present" is not the easy answer for glasses or beards); without (a folder of images) it
predicts which of four rotations was applied to the image (Gidaris et al. 2018), a task that
needs features of the image's content and layout. Either way it also learns to tell intact
images from images whose patches were shuffled, so that incoherent images, the typical
failure of a prior over patch tokens, do not share the features of real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from vqgen.data import images

ROTATIONS = 4
SEEN = 0.8  # the balanced accuracy on real test images from which the judge is said to see an attribute


@dataclass
class EvaluatorConfig:
    num_attributes: int = 40  # 0: no attributes, learn to recognise rotations instead
    width: int = 16
    features: int = 64
    patch: int = 8  # side of the patches shuffled for the coherence task

    @property
    def outputs(self) -> int:
        return self.num_attributes or ROTATIONS


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class Evaluator(nn.Module):
    def __init__(self, cfg: EvaluatorConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.body = nn.Sequential(_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 4 * w))
        self.fc = nn.Linear(4 * w, cfg.features)
        self.head = nn.Linear(cfg.features, cfg.outputs)
        self.coherent = nn.Linear(cfg.features, 1)  # intact (1) or patch-shuffled (0)
        self.register_buffer("rates", torch.full((cfg.num_attributes,), 0.5))  # of each attribute in training

    def balance(self, attributes: torch.Tensor) -> None:
        """Weigh the attribute loss by the rates of the attributes (N, A) of the training images."""
        n = len(attributes)
        self.rates.copy_(attributes.float().mean(0).clamp(1 / n, 1 - 1 / n))

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) in [-1, 1] -> (B, F)
        h = self.body(x).mean(dim=(2, 3))
        return F.relu(self.fc(h))

    def task_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Class-balanced binary cross-entropy of 0/1 attributes (positives weighted 1 / (2 rate), negatives
        1 / (2 (1 - rate))), or cross-entropy of rotation ids."""
        if self.cfg.num_attributes:
            y = targets.float()
            weight = y / (2 * self.rates) + (1 - y) / (2 * (1 - self.rates))
            return F.binary_cross_entropy_with_logits(logits, y, weight=weight)
        return F.cross_entropy(logits, targets.long())

    def forward(self, x, targets=None):
        """-> logits (B, A) of the attributes (or of the rotations), and the task loss if targets are given."""
        logits = self.head(self.features(x))
        return logits, None if targets is None else self.task_loss(logits, targets)


def loss(model: Evaluator, x: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None = None):
    """The task loss on intact images plus the coherence loss, intact and patch-shuffled images
    weighted alike: a quarter of the images are shuffled, enough negatives at a third less compute."""
    n, m = len(x), max(1, len(x) // 4)
    f = model.features(torch.cat([x, shuffle_patches(x[:m], model.cfg.patch, generator).to(x.device)]))
    coherent = model.coherent(f).squeeze(1)
    coherence = (
        F.binary_cross_entropy_with_logits(coherent[:n], torch.ones(n, device=x.device))
        + F.binary_cross_entropy_with_logits(coherent[n:], torch.zeros(m, device=x.device))
    ) / 2
    return model.task_loss(model.head(f[:n]), targets) + coherence


def shuffle_patches(x: torch.Tensor, patch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Permute a random 25-100% of the patch x patch tiles of each image among themselves."""
    b, c, h, w = x.shape
    gh, gw = h // patch, w // patch
    tiles = x[:, :, : gh * patch, : gw * patch].reshape(b, c, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(b, gh * gw, c, patch, patch).clone()
    for i in range(b):
        count = int(gh * gw * (0.25 + 0.75 * torch.rand(1, generator=generator).item()))
        chosen = torch.randperm(gh * gw, generator=generator)[: max(2, count)]
        tiles[i, chosen] = tiles[i, chosen[torch.randperm(len(chosen), generator=generator)]]
    out = x.clone()
    out[:, :, : gh * patch, : gw * patch] = (
        tiles.view(b, gh, gw, c, patch, patch).permute(0, 3, 1, 4, 2, 5).reshape(b, c, gh * patch, gw * patch)
    )
    return out


def augment(x: torch.Tensor, shift: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random horizontal flips and translations of up to `shift` pixels (reflection-padded crops)."""
    b, _, h, w = x.shape
    x = images.random_flip(x, generator)
    padded = F.pad(x, (shift,) * 4, mode="reflect")
    dy, dx = torch.randint(0, 2 * shift + 1, (2, b), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


def rotate(x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each image of (B, 3, S, S) by a random multiple of 90 degrees: (images, rotation ids)."""
    k = torch.randint(0, ROTATIONS, (len(x),), generator=generator)
    return torch.stack([torch.rot90(img, int(r), dims=(1, 2)) for img, r in zip(x, k)]), k
