"""The judge of image sets: the trained evaluator (and Inception-v3 where its weights are on disk)
with the real test images every set is compared against; `evaluate` holds the measures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vqgen import checkpoint, evaluate, layout
from vqgen.config import ConfigError, Params
from vqgen.data import images
from vqgen.models.evaluator import SEEN, Evaluator, EvaluatorConfig

PARAMS = ("evaluate.num_samples", "evaluate.k", "evaluate.inception_weights")  # what a judge is made of


def test_images(store: str | Path, num_samples: int) -> int:
    """The number of test images in the image store, refused if fewer than the judge compares."""
    count = len(images.Split(store, "test", memory_limit=0))
    if count < num_samples:
        raise ConfigError(
            f"evaluate.num_samples is {num_samples} but the test split holds {count} "
            f"images; use at most {count}, or more data."
        )
    return count


class Judge:
    """The evaluator of `evaluator` with the first `num_samples` test images of the image store `store`."""

    def __init__(
        self,
        evaluator: str | Path,
        store: str | Path,
        num_samples: int,
        k: int = 3,
        inception_weights: str = "",
        device: str | torch.device = "cpu",
    ):
        weights = evaluate.find_inception(inception_weights)  # a bad file stops us before any work
        self.inception = evaluate.Inception(weights, device) if weights else None
        self.n, self.k = num_samples, k
        test_images(store, num_samples)
        test = images.Split(store, "test")
        self.model, meta = checkpoint.load(evaluator, Evaluator, EvaluatorConfig, device)
        self.attributes: list[str] = meta.get("attributes", [])  # what it calls, and how well on real test images
        self.accuracy = np.asarray(meta.get("balanced_accuracy", []), np.float64)
        self.seen = self.accuracy >= SEEN  # the attributes it sees, over which attr_tv is measured
        self.real = self.view(test)
        self.real_attributes = test.attributes[: self.n].astype(np.int64)  # (n, A) of the real test images

    @classmethod
    def of_run(cls, p: Params, device: str | torch.device = "cpu", directory: str | Path = ".") -> Judge:
        """The judge of the run in `directory`, sized by params.yaml's `evaluate` section."""
        e, root = p.evaluate, Path(directory)
        return cls(root / layout.EVALUATOR, root / layout.IMAGES, e.num_samples, e.k, e.inception_weights, device)

    def view(self, imgs) -> dict[str, np.ndarray]:
        """The judge's view of the first `num_samples` images of an array or Split: evaluator features
        and attribute frequencies, and Inception features where the weights are on disk."""
        out = evaluate.judge(self.model, images.batched(imgs[: self.n]))
        if self.inception:
            out["inception"] = self.inception(images.batched(imgs[: self.n], 64))
        return out

    def calls(self, imgs: np.ndarray) -> np.ndarray:
        """(N, A) the judge's 0/1 call of each attribute of each of the images (all of them)."""
        return evaluate.judge(self.model, images.batched(imgs))["attributes"]

    def measure(self, imgs) -> dict[str, float]:
        """fd, precision, recall and attr_tv of an image set against the real test images."""
        return evaluate.compare(self.real, self.view(imgs), self.k, self.seen if self.attributes else None)

    def rates(self, view: dict[str, np.ndarray]) -> dict[str, float]:
        """`rate_<attribute>`: the share of a judged image set in which the judge calls each attribute it sees."""
        if not self.attributes:
            return {}
        share = view["attributes"].mean(0)
        return {f"rate_{n}": float(share[i]) for i, n in enumerate(self.attributes) if self.seen[i]}
