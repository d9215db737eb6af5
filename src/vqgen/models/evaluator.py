"""The judge of samples: a small CNN that predicts face attributes from an image.

Trained on real images only; its penultimate features are the space in which the
Fréchet distance between generated and real images is measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class EvaluatorConfig:
    num_attributes: int = 40
    width: int = 32
    features: int = 64


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
        self.head = nn.Linear(cfg.features, cfg.num_attributes)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) in [-1, 1] -> (B, F)
        h = self.body(x).mean(dim=(2, 3))
        return F.relu(self.fc(h))

    def forward(self, x, targets=None):
        """-> attribute logits (B, A), and the binary cross-entropy against 0/1 targets if given."""
        logits = self.head(self.features(x))
        loss = None if targets is None else F.binary_cross_entropy_with_logits(logits, targets.float())
        return logits, loss
