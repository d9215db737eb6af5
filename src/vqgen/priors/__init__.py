"""Priors over token grids, registered by name: each owns its training loss and its sampler."""

from __future__ import annotations

import torch

from vqgen.models.transformer import Transformer
from vqgen.priors.autoregressive import Autoregressive
from vqgen.priors.base import UNDECIDED, Draw, Prior, prefix_mask, unpack
from vqgen.priors.diffusion import UniformDiffusion
from vqgen.priors.masked import MaskedDiffusion
from vqgen.priors.uniform_x0 import UniformX0Diffusion

PRIORS: dict[str, type[Prior]] = {
    cls.name: cls for cls in (Autoregressive, UniformDiffusion, MaskedDiffusion, UniformX0Diffusion)
}

__all__ = ["PRIORS", "UNDECIDED", "Draw", "Prior", "prefix_mask", "restore"]


def restore(model: Transformer, meta: dict, extras: dict[str, torch.Tensor] | None = None) -> Prior:
    """The prior a checkpoint holds: its trained transformer, the metadata `Prior.metadata` wrote and
    the tensors `Prior.extras` did."""
    prior = PRIORS[meta["prior"]](model, tuple(meta["grid"]), **meta.get("options", {}))
    prior.sampling.update({k: v for k, v in meta.get("sampling", {}).items() if k in prior.settings})
    prior.attributes = list(meta.get("attributes", []))
    if extras and "data_attributes" in extras:
        prior.data_attributes = unpack(extras["data_attributes"], len(prior.attributes))
    return prior
