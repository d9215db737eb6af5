"""CUDA graphs for the samplers' steps. A step of a small model on a GPU costs the launches of its
kernels, not their arithmetic: captured once as a CUDA graph, the whole step is one launch.

`Replayed(fn)` calls `fn` on tensors of fixed shapes. On a CUDA device its first call at each shape
captures `fn` as a graph, reading static copies of its inputs; every call then copies the inputs in
and replays the graph. Elsewhere it calls `fn`. The output is the graph's own tensor, overwritten by
the next call: read it before calling again. Whatever `fn` writes besides its output (a key/value
cache) must stay where it is while the graph lives.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

ENABLED = True


@contextlib.contextmanager
def disabled():
    """Every `Replayed` calls its function, on any device, while this lasts (to compare or to debug)."""
    global ENABLED
    before, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = before


class Replayed:
    def __init__(self, fn: Callable[..., torch.Tensor]):
        self.fn = fn
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list, torch.Tensor]] = {}

    def __call__(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        if not ENABLED or not any(x is not None and x.is_cuda for x in inputs):
            return self.fn(*inputs)
        key = tuple(None if x is None else (x.shape, x.dtype) for x in inputs)
        if key not in self.graphs:
            self.graphs[key] = self._capture(inputs)
        graph, static, output = self.graphs[key]
        for s, x in zip(static, inputs):
            if s is not None:
                s.copy_(x)
        graph.replay()
        return output

    def _capture(self, inputs):
        static = [None if x is None else x.clone() for x in inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # lazy initialisations and kernel choices happen outside the capture
            self.fn(*static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # Autocast's cache of cast weights would be freed while the graph still reads it: cast in the graph.
        bf16 = torch.is_autocast_enabled("cuda")
        dtype = torch.get_autocast_dtype("cuda")
        with torch.cuda.graph(graph), torch.autocast("cuda", dtype, enabled=bf16, cache_enabled=False):
            output = self.fn(*static)
        return graph, static, output
