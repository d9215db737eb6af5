"""Benchmark: what a wider tokenizer costs. Times the tokenizer's training step at params.yaml's
defaults (losses, batch, image size, optimizer; channels-last as `train_vqvae` runs it) for
per-level channel widths, in float32 and in bf16 autocast, against the default widths (16, 32, 64,
64) timed first and last in the same run.

Prints JSON: seconds per step, and each row's ratio to the mean of the default's two timings.
Usage: python bench/tokenizer_width.py [--steps 60]
"""

import argparse
import dataclasses
import json
import time

import torch

from vqgen import config, train
from vqgen.models import vqvae

P = config.Params()  # the defaults params.yaml holds

DEFAULT = (16, 32, 64, 64)  # widths at 64, 32, 16 and 8 px: 16 channels doubled per level, at most 4x
ROWS = [
    ((32, 32, 64, 64), False),  # twice the channels at full resolution only
    ((16, 32, 64, 128), False),  # twice the channels at the grid's resolution only
    ((32, 32, 64, 128), False),  # both
    ((32, 64, 128, 128), False),  # `vqvae.channels=32`
    (DEFAULT, True),
    ((32, 64, 128, 128), True),
]


@dataclasses.dataclass
class Widths(vqvae.VQVAEConfig):
    widths: tuple[int, ...] = DEFAULT

    def width(self, level: int) -> int:
        return self.widths[level]


def tokenizer(widths: tuple[int, ...]) -> vqvae.VQVAE:
    """The default tokenizer with these widths."""
    return vqvae.VQVAE(Widths(**dataclasses.asdict(P.vqvae.model_config()), widths=widths))


def seconds_per_step(widths: tuple[int, ...], bf16: bool, steps: int, warm: int = 5) -> float:
    torch.manual_seed(0)
    v = P.vqvae
    fast = dict(memory_format=torch.channels_last)
    model = tokenizer(widths).to(**fast)
    disc = vqvae.Discriminator().to(**fast)
    objectives = [("loss", train.optimizer(model, v)), ("d_loss", train.optimizer(disc, v))]
    size = P.data.image_size
    x = (torch.rand(v.batch_size, 3, size, size) * 2 - 1).contiguous(memory_format=torch.channels_last)

    def losses(it: int) -> dict[str, torch.Tensor]:
        return vqvae.losses(model, disc, x, v.perceptual_weight, v.adversarial_weight, True, None, v.edge_weight)

    autocast = torch.bfloat16 if bf16 else None
    train.fit(losses, objectives, warm, v.lr, autocast=autocast)
    start = time.perf_counter()
    train.fit(losses, objectives, steps, v.lr, autocast=autocast)
    return (time.perf_counter() - start) / steps


def main(steps: int) -> None:
    train.setup(0)
    first = seconds_per_step(DEFAULT, False, steps)
    rows = [(w, bf16, seconds_per_step(w, bf16, steps)) for w, bf16 in ROWS]
    last = seconds_per_step(DEFAULT, False, steps)
    base = (first + last) / 2
    out = {
        "threads": torch.get_num_threads(),
        "steps": steps,
        "default_s_per_step": [round(first, 4), round(last, 4)],
        "rows": [
            {
                "widths": "/".join(map(str, w)),
                "precision": "bf16" if bf16 else "fp32",
                "s_per_step": round(s, 4),
                "ratio": round(s / base, 2),
            }
            for w, bf16, s in rows
        ],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    main(parser.parse_args().steps)
