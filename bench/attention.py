"""Benchmark: the priors' attention on a CPU, torch's fused kernel (`F.scaled_dot_product_attention`)
against the three operations written out (`transformer.written_out`), in float32 and in bf16,
in the same run: forward and backward at a training batch (every position sees every other, as in
the masked prior, and causal, as in the AR prior) and the forward of one query over a cache, as an
AR sampling step. Each row gives both times, their ratio (above 1: the explicit product is faster)
and the largest difference between their outputs.

Prints JSON. Usage: python bench/attention.py [--batch 64] [--tokens 65] [--heads 4] [--head-dim 32]
       [--repeats 20]
"""

import argparse
import contextlib
import json

import torch
import torch.nn.functional as F
from timing import best_seconds  # bench/timing.py, beside this file

from vqgen.models.transformer import written_out


def work(kind: str, b: int, t: int, h: int, d: int):
    """(q, k, v, causal, backward) of one kind of work."""
    queries = 1 if kind == "sampling step" else t
    q = torch.randn(b, h, queries, d, requires_grad=kind != "sampling step")
    k, v = (torch.randn(b, h, t, d, requires_grad=q.requires_grad) for _ in "kv")
    return q, k, v, kind == "training, causal", q.requires_grad


def main(batch: int, tokens: int, heads: int, head_dim: int, repeats: int) -> None:
    torch.manual_seed(0)
    rows = []
    for kind in ("training, bidirectional", "training, causal", "sampling step"):
        q, k, v, causal, backward = work(kind, batch, tokens, heads, head_dim)
        for dtype in (None, torch.bfloat16):

            def run(fn, q=q, k=k, v=v, causal=causal, backward=backward, dtype=dtype):
                with torch.autocast("cpu", dtype) if dtype else contextlib.nullcontext():
                    if dtype:  # as the projections under autocast hand them over
                        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
                    y = (
                        fn(q, k, v, is_causal=causal)
                        if fn is F.scaled_dot_product_attention
                        else fn(q, k, v, causal=causal)
                    )
                if backward:
                    y.float().sum().backward()
                return y.detach().float()

            fused = best_seconds(lambda run=run: run(F.scaled_dot_product_attention), repeats, warmup=1)
            explicit = best_seconds(lambda run=run: run(written_out), repeats, warmup=1)
            difference = (run(F.scaled_dot_product_attention) - run(written_out)).abs().max()
            rows.append(
                {
                    "work": kind,
                    "precision": "bf16" if dtype else "fp32",
                    "fused_s": fused,
                    "explicit_s": explicit,
                    "explicit_speedup": fused / explicit,
                    "max_difference": float(difference),
                }
            )
    shape = {"batch": batch, "tokens": tokens, "heads": heads, "head_dim": head_dim}
    print(json.dumps({"threads": torch.get_num_threads(), **shape, "rows": rows}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=65)  # the 8x8 grid and the request's position
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    main(args.batch, args.tokens, args.heads, args.head_dim, args.repeats)
