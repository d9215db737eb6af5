"""Benchmark: forward + backward of our vector quantizer against vector-quantize-pytorch's
`VectorQuantize` (the peer) with the same codebook size, code dimension, EMA decay, commitment
weight and dead-code threshold, on the same inputs, in the same run; and the machine's float32
matmul rate, to say how far each is from the arithmetic of the distance matmul alone.

Prints JSON. Usage: pip install -e '.[bench]'; python bench/quantizer.py [--sizes 256 1024 16384]
"""

import argparse
import json
import time

import torch
from timing import matmul_rate  # bench/timing.py, beside this file
from vector_quantize_pytorch import VectorQuantize

from vqgen.models.vqvae import VectorQuantizer, VQVAEConfig


def timed(step, repeats: int) -> float:
    """Median seconds of `step()`, after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 16384], help="codebook sizes")
    parser.add_argument("--grids", type=int, default=64, help="token grids of 16x16 per batch")
    parser.add_argument("--dim", type=int, default=32, help="code dimension")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    flops = matmul_rate(n=2048)
    n = args.grids * 16 * 16
    out = {"threads": torch.get_num_threads(), "vectors": n, "dim": args.dim, "matmul_gflops": flops / 1e9, "sizes": []}
    for k in args.sizes:
        ours = VectorQuantizer(VQVAEConfig(codebook_size=k, code_dim=args.dim, ema_decay=0.99)).train()
        peer = VectorQuantize(
            dim=args.dim,
            codebook_size=k,
            decay=0.99,
            commitment_weight=ours.cfg.beta,
            threshold_ema_dead_code=ours.dead_code_threshold(n),
        ).train()
        z = torch.randn(args.grids, args.dim, 16, 16, requires_grad=True)

        def ours_step():
            q, _, loss = ours(z)
            (q.square().mean() + loss).backward()

        def peer_step():
            q, _, loss = peer(z.permute(0, 2, 3, 1).reshape(args.grids, 256, args.dim))
            (q.square().mean() + loss.sum()).backward()

        mine, theirs = timed(ours_step, args.repeats), timed(peer_step, args.repeats)
        arithmetic = 2 * n * args.dim * k / flops  # the distance matmul alone
        out["sizes"].append(
            {
                "codebook_size": k,
                "ours_s": mine,
                "peer_s": theirs,
                "speedup": theirs / mine,
                "distance_matmul_s": arithmetic,
                "ours_over_matmul": mine / arithmetic,
            }
        )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
