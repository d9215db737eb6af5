"""Benchmark: autoregressive sampling with the key/value cache against recomputing the whole
prefix at every step (nanoGPT's `generate`), same model, same batch, in the same run.

Prints JSON: seconds per image for both, their ratio, and the share of tokens both draw alike
from the same random stream. Usage: python bench/ar_sampling.py
"""

import json
import time

import torch
import torch.nn.functional as F

from vqgen.priors import PRIORS
from vqgen.priors.base import categorical


@torch.no_grad()
def recompute(model, grid, n, generator):
    seq = torch.full((n, 1), model.cfg.out_size, dtype=torch.long)
    for _ in range(grid[0] * grid[1]):
        logits, _ = model(seq)
        nxt = categorical(F.softmax(logits[:, -1], -1), generator)[:, None]
        seq = torch.cat([seq, nxt], 1)
    return seq[:, 1:].view(n, *grid)


def timed(fn, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(n=64, grid=(8, 8)):
    torch.manual_seed(0)
    prior = PRIORS["ar"].create(256, grid, n_layer=4, n_head=4, n_embd=128)
    model = prior.model.eval()
    cached = timed(lambda: prior.sample(n, generator=torch.Generator().manual_seed(0)))
    naive = timed(lambda: recompute(model, grid, n, torch.Generator().manual_seed(0)))
    same = (
        (
            prior.sample(n, generator=torch.Generator().manual_seed(0)).tokens
            == recompute(model, grid, n, torch.Generator().manual_seed(0))
        )
        .float()
        .mean()
        .item()
    )
    print(
        json.dumps(
            {
                "batch": n,
                "grid": list(grid),
                "threads": torch.get_num_threads(),
                "kv_cache_s_per_image": cached / n,
                "recompute_s_per_image": naive / n,
                "speedup": naive / cached,
                "same_tokens": same,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
