"""What both sample stages share: the models they load and the Fréchet distance of their samples."""

from __future__ import annotations

import h5py
import numpy as np
import torch

from vqgen import checkpoint, evaluate
from vqgen.config import Params
from vqgen.data import images
from vqgen.models import vqvae
from vqgen.models.evaluator import Evaluator, EvaluatorConfig

from stages import common

PARAMS = ("sample",)


def tokenizer(dev: torch.device) -> vqvae.VQVAE:
    return checkpoint.load(common.VQVAE, vqvae.VQVAE, vqvae.VQVAEConfig, dev)[0]


def decode(model: vqvae.VQVAE, grids: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Token grids (N, h, w) -> uint8 images (N, S, S, 3)."""
    dev = next(model.parameters()).device
    return np.concatenate([images.to_uint8(model.decode(grids[i:i + batch_size].to(dev)))
                           for i in range(0, len(grids), batch_size)])


def frechet_to_test(fake: np.ndarray, dev: torch.device) -> float:
    """Fréchet distance, in the evaluator's feature space, between uint8 samples and real test images."""
    judge = checkpoint.load(common.EVALUATOR, Evaluator, EvaluatorConfig, dev)[0]
    real = images.read_split(common.IMAGES, "test")["images"]
    return evaluate.frechet_distance(evaluate.features(judge, images.to_tensor(real)),
                                     evaluate.features(judge, images.to_tensor(fake)))


def save_samples(name: str, grids: np.ndarray, decoded: np.ndarray) -> None:
    path = common.SAMPLES / f"{name}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("tokens", data=grids)
        f.create_dataset("images", data=decoded, chunks=(1, *decoded.shape[1:]))
    tmp.replace(path)
