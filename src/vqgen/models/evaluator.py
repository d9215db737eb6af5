"""The judge of samples: a small CNN trained on real images only, whose penultimate features
are the space in which the Fréchet distance between generated and real images is measured.

With attributes (CelebA, synthetic faces) it predicts them; without (a folder of images) it
predicts which of four rotations was applied to the image (Gidaris et al. 2018), a task that
needs features of the image's content and layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

ROTATIONS = 4


@dataclass
class EvaluatorConfig:
    num_attributes: int = 40   # 0: no attributes, learn to recognise rotations instead
    width: int = 32
    features: int = 64

    @property
    def outputs(self) -> int:
        return self.num_attributes or ROTATIONS


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.MaxPool2d(2))


class Evaluator(nn.Module):
    def __init__(self, cfg: EvaluatorConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.body = nn.Sequential(_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 4 * w))
        self.fc = nn.Linear(4 * w, cfg.features)
        self.head = nn.Linear(cfg.features, cfg.outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) in [-1, 1] -> (B, F)
        h = self.body(x).mean(dim=(2, 3))
        return F.relu(self.fc(h))

    def forward(self, x, targets=None):
        """-> logits (B, A) of the attributes (or of the rotations), and the loss against the
        targets if given: binary cross-entropy of 0/1 attributes, or cross-entropy of rotation ids."""
        logits = self.head(self.features(x))
        if targets is None:
            return logits, None
        if self.cfg.num_attributes:
            return logits, F.binary_cross_entropy_with_logits(logits, targets.float())
        return logits, F.cross_entropy(logits, targets.long())


def rotate(x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each image of (B, 3, S, S) by a random multiple of 90 degrees: (images, rotation ids)."""
    k = torch.randint(0, ROTATIONS, (len(x),), generator=generator)
    return torch.stack([torch.rot90(img, int(r), dims=(1, 2)) for img, r in zip(x, k)]), k
