"""Perceptual distances for training the tokenizer: how far a reconstruction is from its image in
the feature space of a network, as LPIPS measures it (Zhang et al. 2018) without its learned
per-channel weights.

Each feature vector (the channels at one position) is scaled to unit length before comparing, so
the distance does not grow or shrink with the scale of the activations: the discriminator's
features change scale as it trains, a frozen network's never do.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def unit_normalise(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """(B, C, H, W) activations with the C channels at each position scaled to unit length."""
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + eps)


def feature_distance(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the squared distance between unit-normalised activations, summed over
    channels and averaged over positions and the batch; each term lies in [0, 4]. The real
    activations are targets, not trained."""
    return sum(
        (unit_normalise(f) - unit_normalise(r.detach())).pow(2).sum(1).mean() for f, r in zip(fake_feats, real_feats)
    ) / len(fake_feats)


VGG16_LAYERS = (3, 8, 15, 22, 29)  # torchvision's vgg16().features: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class FrozenVGG(nn.Module):
    """The five ReLU stages of an ImageNet VGG16 (the network LPIPS uses), from a state dict of
    torchvision's `vgg16` (the classifier's tensors, if present, are not used), never trained."""

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        self.features = make_layers(cfgs["D"])[: VGG16_LAYERS[-1] + 1]
        self.features.load_state_dict(features)
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval()

    def train(self, mode: bool = True) -> FrozenVGG:
        return super().train(False)  # batch statistics and dropout never change: it stays frozen

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Images (B, 3, S, S) in [-1, 1] -> the activations after each of the five ReLU stages."""
        x = ((x + 1) / 2 - self.mean) / self.std
        feats = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG16_LAYERS:
                feats.append(x)
        return feats
