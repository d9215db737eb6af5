"""Benchmark: the tokenizer's GroupNorm on a CPU, torch's `nn.GroupNorm` on the channels-last
activations the tokenizer trains on against `vqvae.GroupNorm` (the same normalisation, computed in
NCHW memory for bf16 activations), in float32 and under bf16 autocast, in the same run: forward
and backward of the normalisation alone at each shape it meets in a training step, and the whole
training step of the tokenizer with its discriminator. Each row gives both times and their ratio (above 1: ours is
faster); the op rows give the largest difference between the two outputs.

Prints JSON. Usage: python bench/group_norm.py [--batch 16] [--repeats 10]
"""

import argparse
import contextlib
import json
import math

import torch
import torch.nn as nn
from precision import tokenizer_step  # bench/precision.py, beside this file
from timing import best_seconds  # bench/timing.py, beside this file

from vqgen.config import Params
from vqgen.models import vqvae


@contextlib.contextmanager
def torchs_group_norm():
    """Models built inside normalise with torch's nn.GroupNorm (the same parameters) instead of ours."""
    ours = vqvae._norm
    vqvae._norm = lambda c: nn.GroupNorm(math.gcd(8, c), c)
    try:
        yield
    finally:
        vqvae._norm = ours


def shapes(p: Params) -> list[tuple[int, ...]]:
    """Every distinct input shape of the GroupNorms of the tokenizer and its discriminator, one step."""
    seen = []
    model, disc = vqvae.VQVAE(p.vqvae.model_config()), vqvae.Discriminator()
    for m in [*model.modules(), *disc.modules()]:
        if isinstance(m, nn.GroupNorm):
            m.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape)))
    with torch.no_grad():
        x = torch.zeros(p.vqvae.batch_size, 3, 64, 64)
        disc(model(x)[0])
    return sorted(set(seen))


def op_row(shape: tuple[int, ...], dtype, repeats: int) -> dict:
    """Forward and backward of both norms on channels-last activations of `dtype` (None: float32), as
    the convolutions before them hand them on under autocast."""
    c = shape[1]
    x = torch.randn(shape).to(dtype or torch.float32).contiguous(memory_format=torch.channels_last).requires_grad_()
    torchs, ours = nn.GroupNorm(math.gcd(8, c), c), vqvae.GroupNorm(math.gcd(8, c), c)

    def run(norm):
        x.grad = None
        y = norm(x)
        y.float().square().sum().backward()
        return y.detach().float()

    torch_s = best_seconds(lambda: run(torchs), repeats, dtype=dtype, warmup=1)
    ours_s = best_seconds(lambda: run(ours), repeats, dtype=dtype, warmup=1)
    difference = (run(torchs) - run(ours)).abs().max()
    return {"torch_s": torch_s, "ours_s": ours_s, "speedup": torch_s / ours_s, "max_difference": float(difference)}


def main(batch: int, repeats: int) -> None:
    torch.manual_seed(0)
    p = Params()
    p.vqvae.batch_size = batch
    rows = []
    for dtype in (None, torch.bfloat16):
        precision = "bf16" if dtype else "fp32"
        for shape in shapes(p):
            rows.append({"work": f"GroupNorm {list(shape)}", "precision": precision, **op_row(shape, dtype, repeats)})
        with torchs_group_norm():
            torchs = tokenizer_step(p, "cpu")
        ours = tokenizer_step(p, "cpu")
        times = [best_seconds(step, repeats, dtype=dtype, warmup=1) for _ in range(2) for step in (torchs, ours)]
        torch_s, ours_s = min(times[0::2]), min(times[1::2])  # taken in turn: the machine's drift hits both
        rows.append(
            {
                "work": "tokenizer step",
                "precision": precision,
                "torch_s": torch_s,
                "ours_s": ours_s,
                "speedup": torch_s / ours_s,
            }
        )
    print(json.dumps({"threads": torch.get_num_threads(), "batch": batch, "rows": rows}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    main(args.batch, args.repeats)
