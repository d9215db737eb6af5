"""Benchmark: drawing one code per position from the samplers' probabilities, our inverse-CDF
`categorical` against `torch.multinomial`, at the shapes the samplers draw, in the same run.

Prints JSON: milliseconds per draw for both, their ratio (above 1: ours is faster), and for
each the largest gap between a code's drawn frequency and its probability over the whole draw.
Usage: python bench/draws.py [--repeats 5]
"""

import argparse
import json

import torch
import torch.nn.functional as F
from timing import best_seconds  # bench/timing.py, beside this file

from vqgen.priors.base import categorical

SHAPES = {  # (rows..., codes)
    "masked step, batch 128, 8x8 grid, K 256 (the default run)": (128, 64, 256),
    "masked step, batch 1, 16x16 grid, K 256": (1, 256, 256),
    "ar step, batch 128, K 256": (128, 256),
    "masked step, batch 128, 16x16 grid, K 1024 (celeba64)": (128, 256, 1024),
}


def gap(draw: torch.Tensor, probs: torch.Tensor) -> float:
    """Largest |frequency - probability| over the codes, every row drawn from the same probabilities."""
    freq = torch.bincount(draw.flatten(), minlength=probs.shape[-1]).double() / draw.numel()
    return (freq - probs.double()).abs().max().item()


def main(repeats: int) -> None:
    rows = []
    for name, shape in SHAPES.items():
        gen = torch.Generator().manual_seed(0)
        probs = F.softmax(torch.randn(shape, generator=gen), -1)
        flat = probs.view(-1, shape[-1])
        ours = 1e3 * best_seconds(lambda: categorical(probs, gen), repeats, warmup=1)
        peer = 1e3 * best_seconds(lambda: torch.multinomial(flat, 1, generator=gen), repeats, warmup=1)
        one = F.softmax(torch.randn(shape[-1], generator=gen), -1)  # every row drawn from it
        same = one.expand(shape).contiguous()
        rows.append(
            {
                "shape": name,
                "categorical_ms": ours,
                "multinomial_ms": peer,
                "speedup": peer / ours,
                "categorical_max_frequency_gap": gap(categorical(same, gen), one),
                "multinomial_max_frequency_gap": gap(
                    torch.multinomial(same.view(-1, shape[-1]), 1, generator=gen), one
                ),
            }
        )
    print(json.dumps({"threads": torch.get_num_threads(), "results": rows}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    main(parser.parse_args().repeats)
