"""What the sample and baseline stages share: loading the tokenizer and the judge, decoding
token grids, and measuring an image set against real test images."""

from __future__ import annotations

import h5py
import numpy as np
import torch

from stages import common
from vqgen import checkpoint, evaluate
from vqgen.config import Params
from vqgen.data import images
from vqgen.files import writing
from vqgen.models import vqvae
from vqgen.models.evaluator import Evaluator, EvaluatorConfig

PARAMS = ("evaluate.num_samples", "evaluate.k", "evaluate.inception_weights")


def tokenizer(dev: torch.device) -> vqvae.VQVAE:
    return checkpoint.load(common.VQVAE, vqvae.VQVAE, vqvae.VQVAEConfig, dev)[0]


def decode(model: vqvae.VQVAE, grids: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Token grids (N, h, w) -> uint8 images (N, S, S, 3); the patches of negative ids (a prior's
    UNDECIDED positions) are grey."""
    dev = next(model.parameters()).device
    undecided = (grids < 0).cpu().numpy()
    grids = grids.clamp_min(0)
    out = np.concatenate(
        [images.to_uint8(model.decode(grids[i : i + batch_size].to(dev))) for i in range(0, len(grids), batch_size)]
    )
    if undecided.any():
        f = out.shape[1] // grids.shape[1]
        out[undecided.repeat(f, 1).repeat(f, 2)] = 128
    return out


class Judge:
    """The trained evaluator with the real test images it compares every image set against."""

    def __init__(self, p: Params, dev: torch.device):
        weights = evaluate.find_inception(p.evaluate.inception_weights)  # a bad file stops us before any work
        self.inception = evaluate.Inception(weights, dev) if weights else None
        self.n, self.k = p.evaluate.num_samples, p.evaluate.k
        common.check_test_split(p)
        test = images.Split(common.IMAGES, "test")
        self.model = checkpoint.load(common.EVALUATOR, Evaluator, EvaluatorConfig, dev)[0]
        self.real = self.view(test)

    def view(self, imgs) -> dict[str, np.ndarray]:
        """The judge's view of the first `evaluate.num_samples` images of an array or Split: evaluator
        features and attribute frequencies, and Inception features where the weights are on disk."""
        out = evaluate.judge(self.model, images.batched(imgs[: self.n]))
        if self.inception:
            out["inception"] = self.inception(images.batched(imgs[: self.n], 64))
        return out

    def measure(self, imgs) -> dict[str, float]:
        """fd, precision, recall and attr_tv of an image set against the real test images."""
        return evaluate.compare(self.real, self.view(imgs), self.k)


def save_samples(name: str, arrays: dict[str, np.ndarray]) -> None:
    """samples/{name}.h5: one dataset per array (images chunked one per chunk), written atomically."""
    path = common.SAMPLES / f"{name}.h5"
    with writing(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value, chunks=(1, *value.shape[1:]) if value.ndim == 4 else None)
