"""One training loop for every model: device and thread choice, seeding, AdamW with
decoupled weight decay, warmup + cosine learning rate, gradient clipping, random minibatches.

The loop knows nothing about a model: it is handed a function that returns named losses
and, for each loss to optimise, the optimizer that owns its parameters (a GAN has two).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterator

import numpy as np
import torch

from vqgen.config import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"compute.device is {name!r}; this machine has {torch.cuda.device_count()} CUDA devices, "
            "use auto, cpu or cuda:N with N below that count."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"compute.device is {name!r}; this machine has no MPS device, use auto or cpu.")
    return device


def setup(seed: int, threads: int = 0) -> None:
    """Seed every generator; set torch's CPU threads (0: all cores)."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def adamw(model: torch.nn.Module, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW that decays matrices and convolution kernels only, not biases, norms or embeddings' rows."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    other = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def cosine_lr(it: int, max_iters: int, peak: float, warmup: int) -> float:
    """Linear warmup to `peak`, then cosine decay to peak / 10."""
    if it < warmup:
        return peak * (it + 1) / warmup
    progress = (it - warmup) / max(1, max_iters - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def batches(data: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless random minibatches (without replacement within an epoch) of the rows of `data`."""
    n = len(data)
    while True:
        order = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield data[order[i : i + batch_size]]


def fit(
    losses: Callable[[int], dict[str, torch.Tensor]],
    objectives: list[tuple[str, torch.optim.Optimizer]],
    max_iters: int,
    lr: float,
    warmup: int = 100,
    grad_clip: float = 1.0,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Run `max_iters` iterations; each computes `losses(it)` and, for each (name, optimizer) in
    `objectives`, steps that optimizer on the gradient of that loss. Returns the last losses."""
    last: dict[str, float] = {}
    for it in range(max_iters):
        rate = cosine_lr(it, max_iters, lr, min(warmup, max_iters // 10 + 1))
        named = losses(it)
        for name, opt in objectives:
            if name not in named:
                continue
            for _, other in objectives:
                other.zero_grad(set_to_none=True)
            named[name].backward()
            for group in opt.param_groups:
                group["lr"] = rate
            params = [p for g in opt.param_groups for p in g["params"]]
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
        last = {k: v.item() for k, v in named.items()}
        last["lr"] = rate
        if not all(math.isfinite(v) for v in last.values()):
            raise FloatingPointError(f"training diverged at iteration {it} (losses {last}); lower the learning rate.")
        if on_step:
            on_step(it, last)
    return last
