"""Timing shared by the benchmarks: the fastest of several calls of a function, and the matmul rate
that a model's speed is read against."""

import contextlib
import time

import torch


def best_seconds(fn, repeats: int, device: str = "cpu", dtype: torch.dtype | None = None, warmup: int = 0) -> float:
    """The fastest of `repeats` calls of `fn()`, after `warmup` untimed ones, under autocast to `dtype` if
    given. On a GPU its queue is drained before and after each call, so that a call is timed alone."""
    kind = torch.device(device).type
    best = float("inf")
    for i in range(warmup + repeats):
        with torch.autocast(kind, dtype) if dtype else contextlib.nullcontext():
            drain(device)
            start = time.perf_counter()
            fn()
            drain(device)
        if i >= warmup:
            best = min(best, time.perf_counter() - start)
    return best


def drain(device) -> None:
    """Wait for a GPU's queued work; nothing on a CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device="cpu", dtype: torch.dtype = torch.float32, n: int = 1024) -> float:
    """FLOP/s of an (n, n) matmul in `dtype` on `device`, the best of five after one warm-up."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / best_seconds(lambda: a @ b, 5, device, warmup=1)
