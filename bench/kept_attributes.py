"""Measurement (not timing): how many of the val images' glasses, earrings and beards survive a
tokenizer's reconstruction.

`rfd` cannot tell: the pipeline's judge learns 40 unbalanced attributes at once and calls no val
image bespectacled, so losing a pair of glasses barely moves its features. Here a probe of the
judge's architecture learns these three attributes alone from the real train images, each class
weighted against its rarity. For each tokenizer given, `kept` is the share of the val images that
have an attribute, and in which the probe sees it, whose reconstruction the probe still sees it
in; `false_alarms` is the share of the val images without it whose reconstruction the probe calls
positive. The probe's own rates on the real images come first, as the reference.

Needs an image store with attributes (the synthetic set or CelebA); prints JSON.
Usage, in a workspace after `dvc repro`:
    python bench/kept_attributes.py [models/vqvae.safetensors other.safetensors ...] [--steps 1500]
"""

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from vqgen import checkpoint, train
from vqgen.data import images
from vqgen.models import vqvae
from vqgen.models.evaluator import Evaluator, EvaluatorConfig, augment

ATTRIBUTES = {"glasses": "Eyeglasses", "earrings": "Wearing_Earrings", "beard": "No_Beard"}  # beard: not No_Beard


def labels(split: images.Split) -> np.ndarray:
    """(N, 3) bool: has glasses, earrings, a beard."""
    columns = [split.attribute_names.index(name) for name in ATTRIBUTES.values()]
    y = split.attributes[:, columns] > 0
    y[:, 2] = ~y[:, 2]
    return y


def train_probe(split: images.Split, steps: int, seed: int) -> Evaluator:
    torch.manual_seed(seed)
    x, y = split[:], torch.tensor(labels(split), dtype=torch.float32)
    probe = Evaluator(EvaluatorConfig(num_attributes=len(ATTRIBUTES), width=24))
    rarity = (len(y) - y.sum(0)) / y.sum(0).clamp_min(1)
    gen = torch.Generator().manual_seed(seed)

    def loss(it: int) -> dict[str, torch.Tensor]:
        rows = torch.randint(0, len(x), (64,), generator=gen).sort().values.numpy()
        logits, _ = probe(augment(images.to_tensor(x[rows]), 2, gen))
        return {"loss": F.binary_cross_entropy_with_logits(logits, y[rows], pos_weight=rarity)}

    train.fit(loss, [("loss", train.adamw(probe, 2e-3))], steps, 2e-3, warmup=0, grad_clip=0.0, lr_floor=0.0)
    return probe.eval()


@torch.no_grad()
def sees(probe: Evaluator, imgs: np.ndarray) -> np.ndarray:
    """(N, 3) bool: the probe's calls."""
    return np.concatenate([(probe(x)[0] > 0).numpy() for x in images.batched(imgs)])


def kept(y: np.ndarray, on_real: np.ndarray, on_recon: np.ndarray) -> dict[str, dict[str, float]]:
    """Per attribute: the share of images that have it and are seen to, still seen in the
    reconstruction; and the share of images without it whose reconstruction is called positive."""
    out = {}
    for j, name in enumerate(ATTRIBUTES):
        seen = y[:, j] & on_real[:, j]
        out[name] = {
            "kept": float(on_recon[seen, j].mean()) if seen.any() else float("nan"),
            "false_alarms": float(on_recon[~y[:, j], j].mean()) if (~y[:, j]).any() else float("nan"),
        }
    return out


@torch.no_grad()
def reconstruct(path: str, imgs: np.ndarray) -> np.ndarray:
    model = checkpoint.load(path, vqvae.VQVAE, vqvae.VQVAEConfig)[0]
    return np.concatenate([images.to_uint8(model.decode(model.encode(x))) for x in images.batched(imgs)])


def main(tokenizers: list[str], store: str, steps: int, seed: int) -> None:
    probe = train_probe(images.Split(store, "train"), steps, seed)
    val = images.Split(store, "val")
    y, real = labels(val), val[:]
    on_real = sees(probe, real)
    reference = {
        name: {"hits": float(on_real[y[:, j], j].mean()), "false_alarms": float(on_real[~y[:, j], j].mean())}
        for j, name in enumerate(ATTRIBUTES)
    }
    result = {
        "val_images": len(val),
        "with_attribute": {name: int(y[:, j].sum()) for j, name in enumerate(ATTRIBUTES)},
        "probe_on_real_images": reference,
        "tokenizers": {path: kept(y, on_real, sees(probe, reconstruct(path, real))) for path in tokenizers},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tokenizers", nargs="*", default=["models/vqvae.safetensors"])
    parser.add_argument("--store", default="data/images.h5")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.tokenizers, args.store, args.steps, args.seed)
