"""Pretrained weights that are already on disk (nothing is ever downloaded), loaded as tensors only
so that a planted file cannot run code, and fitted to their network with one clear sentence when
they do not fit."""

from __future__ import annotations

from pathlib import Path

import torch


class WeightsError(ValueError):
    """A pretrained weights file that is not a tensor-only state dict of the expected network."""


def load_tensors(path: Path, network: str = "Inception-v3") -> dict[str, torch.Tensor]:
    """A state dict of tensors only: `weights_only=True` refuses any pickle that would build other
    objects or call functions, so a planted file cannot run code. A `.safetensors` file is read as such."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ... by the damage
        raise WeightsError(
            f"{path} is not a tensor-only {network} weights file ({type(e).__name__}); "
            "delete it, or replace it with the published weights."
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(
            f"{path} holds no state dict of tensors; delete it, or replace it with the published weights."
        )
    return state


def checked(path: Path, build, network: str = "Inception-v3"):
    """`build()`, a network loading the state dict of `path`; a layout that does not fit is one sentence."""
    try:
        return build()
    except RuntimeError as e:  # load_state_dict: missing, unexpected or misshapen tensors
        raise WeightsError(
            f"{path} does not hold {network} weights of the expected layout "
            f"({str(e).splitlines()[0]}); delete it, or replace it with the published weights."
        ) from None


def frozen_vgg(path: str | Path) -> torch.nn.Module:
    """The frozen VGG16 features of the perceptual loss, from torchvision's weights at `path`."""
    from vqgen.models.perceptual import FrozenVGG

    state = load_tensors(Path(path), "VGG16")
    return checked(Path(path), lambda: FrozenVGG(state), "VGG16")
