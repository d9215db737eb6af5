"""Timing shared by the benchmarks: the fastest of several calls of a function."""

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
            if kind == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if kind == "cuda":
                torch.cuda.synchronize()
        if i >= warmup:
            best = min(best, time.perf_counter() - start)
    return best
