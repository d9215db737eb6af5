"""One training loop for every model: device and thread choice, seeding, AdamW with
decoupled weight decay, warmup + cosine learning rate, gradient clipping, random minibatches,
bf16 autocast, and exact resume of a killed run.

The loop knows nothing about a model: it is handed a function that returns named losses
and, for each loss to optimise, the optimizer that owns its parameters (a GAN has two).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vqgen import distributed
from vqgen.config import ConfigError
from vqgen.files import writing


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


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes in bf16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16
    or AMX (where bf16 matmuls and convolutions run about twice as fast as float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return any(getattr(torch.cpu, f"_is_{n}_supported", lambda: False)() for n in ("avx512_bf16", "amx_tile"))
    return False


def pick_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast type of `compute.precision`: bf16, or None for float32. 'auto' is bf16 where the
    device computes it natively (`native_bf16`; every kind of training gains from it there,
    bench/precision.py), float32 elsewhere."""
    if name == "auto":
        name = "bf16" if native_bf16(device) else "fp32"
    return torch.bfloat16 if name == "bf16" else None


def setup(seed: int, threads: int = 0) -> None:
    """Seed every generator; set torch's CPU threads (0: all cores)."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # float32 matmuls on tensor cores
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def adamw(model: torch.nn.Module, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW that decays matrices and convolution kernels only, not biases, norms or embeddings' rows."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    other = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]
    fused = True if params and params[0].is_cuda else None  # on a GPU, one kernel for the whole update
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)


def optimizer(model: torch.nn.Module, section) -> torch.optim.AdamW:
    """AdamW at a params.yaml section's peak rate, betas and weight decay (`config.Optimised`)."""
    return adamw(model, section.lr, section.weight_decay, (section.beta1, section.beta2))


def cosine_lr(it: int, max_iters: int, peak: float, warmup: int, floor: float = 0.1) -> float:
    """Linear warmup to `peak`, then cosine decay to `floor` x peak."""
    if it < warmup:
        return peak * (it + 1) / warmup
    progress = (it - warmup) / max(1, max_iters - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


class Batches:
    """Endless random minibatches (without replacement within an epoch) of the rows of `data`. Where
    it stands (its generator, the epoch's order and how far through it) is state a resumed run restores.

    `prepare`, if given, turns the global batch's rows into the tensors (or tuple of tensors) a step
    needs, drawing any augmentation from its own generators. Under torchrun every process draws and
    prepares the same global batch of `batch_size` rows and keeps its own consecutive share of it,
    so the processes together see exactly what one process would."""

    def __init__(
        self,
        data: torch.Tensor,
        batch_size: int,
        generator: torch.Generator,
        prepare: Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, ...]] | None = None,
    ):
        self.data, self.batch_size, self.generator, self.prepare = data, batch_size, generator, prepare
        self.order, self.at = torch.empty(0, dtype=torch.long), 0
        self.share = slice(None)
        if distributed.world() > 1:
            size = min(batch_size, len(data)) // distributed.world()
            self.share = slice(distributed.rank() * size, (distributed.rank() + 1) * size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        n = len(self.data)
        if self.at + min(self.batch_size, n) > len(self.order):  # only whole batches, unless n is smaller
            self.order, self.at = torch.randperm(n, generator=self.generator), 0
        rows = self.order[self.at : self.at + self.batch_size]
        self.at += self.batch_size
        batch = self.prepare(self.data[rows]) if self.prepare else self.data[rows]
        return tuple(b[self.share] for b in batch) if isinstance(batch, tuple) else batch[self.share]

    def state_dict(self) -> dict:
        return {"order": self.order, "at": self.at, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.order, self.at = state["order"], state["at"]
        self.generator.set_state(state["generator"])


@dataclass
class Resume:
    """The whole state of a run, saved every `every` steps to the scratch file `path` and restored from
    it, so that a killed run carries on where it stopped and ends with exactly the weights of an
    uninterrupted one: models (weights and buffers), optimizers, the step, the losses logged so far,
    every random generator (torch's own, CUDA's, and the named ones) and the data streams."""

    path: Path
    every: int
    modules: dict[str, torch.nn.Module]
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    streams: dict[str, Batches] = field(default_factory=dict)

    def save(self, step: int, optimizers: list[torch.optim.Optimizer], history: list[dict[str, float]]) -> None:
        state = {
            "step": step,
            "history": history,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": [o.state_dict() for o in optimizers],
            "generators": {k: g.get_state() for k, g in self.generators.items()},
            "streams": {k: s.state_dict() for k, s in self.streams.items()},
            "torch": distributed.gather(torch.get_rng_state()),  # each process's own
            "cuda": distributed.gather(torch.cuda.get_rng_state() if torch.cuda.is_available() else None),
        }
        if distributed.is_main():
            with writing(self.path) as tmp:
                torch.save(state, tmp)

    def load(self, optimizers: list[torch.optim.Optimizer]) -> tuple[int, list[dict[str, float]]]:
        """Restore the saved state, if there is one; return the step to start at and the history."""
        state = torch.load(self.path, map_location="cpu", weights_only=True) if self.path.is_file() else None
        state = distributed.broadcast(state)  # the first process's save, on every node
        if state is None:
            return 0, []
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for o, saved in zip(optimizers, state["optimizers"], strict=True):
            o.load_state_dict(saved)
        for k, g in self.generators.items():
            g.set_state(state["generators"][k])
        for k, s in self.streams.items():
            s.load_state_dict(state["streams"][k])
        mine = distributed.rank() % len(state["torch"])
        torch.set_rng_state(state["torch"][mine])
        if state["cuda"][mine] is not None:
            torch.cuda.set_rng_state(state["cuda"][mine])
        return state["step"], state["history"]


def fit(
    losses: Callable[[int], dict[str, torch.Tensor]],
    objectives: list[tuple[str, torch.optim.Optimizer]],
    max_iters: int,
    lr: float,
    warmup: int = 100,
    grad_clip: float = 1.0,
    lr_floor: float = 0.1,
    autocast: torch.dtype | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    resume: Resume | None = None,
    preview: Callable[[int], None] | None = None,
    preview_every: int = 0,
) -> dict[str, float]:
    """Run `max_iters` iterations; each computes `losses(it)` and, for each (name, optimizer) in
    `objectives`, steps that optimizer on the gradient of that loss with respect to its own parameters
    only, so that the losses may share passes (the tokenizer's and its discriminator's share the pass
    over the reconstruction). Returns the last losses.

    With `resume`, a run saved by an earlier, killed call carries on from its last save (its logged
    losses are passed to `on_step` again first), and the state is saved every `resume.every` steps.
    With `autocast` (bf16), the losses are computed in that type where it is safe; weights, gradients
    and optimizer states stay float32, so no loss scaling is needed. `preview(steps_done)` is called
    every `preview_every` steps and after the last (not for steps a resumed run replays); it must not
    draw from the global random generators, so that training is the same with or without it."""
    optimizers = [opt for _, opt in objectives]
    device = optimizers[0].param_groups[0]["params"][0].device.type
    start, history = resume.load(optimizers) if resume else (0, [])
    if start == 0 and distributed.rank() > 0:  # each process its own noise; the first one's is one process's
        torch.manual_seed(torch.initial_seed() + distributed.rank())
    for it, logged in enumerate(history):
        if on_step:
            on_step(it, logged)
    last: dict[str, float] = history[-1] if history else {}
    for it in range(start, max_iters):
        rate = cosine_lr(it, max_iters, lr, min(warmup, max_iters // 10 + 1), lr_floor)
        with torch.autocast(device, autocast) if autocast else contextlib.nullcontext():
            named = losses(it)
        stepped = [(name, opt) for name, opt in objectives if name in named]
        for i, (name, opt) in enumerate(stepped):
            for _, other in objectives:
                other.zero_grad(set_to_none=True)
            params = [p for g in opt.param_groups for p in g["params"]]
            named[name].backward(inputs=params, retain_graph=i + 1 < len(stepped))
            for group in opt.param_groups:
                group["lr"] = rate
            distributed.average([p.grad for p in params if p.grad is not None])
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
        values = torch.stack([v.detach().float() for v in named.values()]).cpu()
        distributed.average([values])  # the whole batch's losses, as one process would log them
        last = dict(zip(named, values.tolist()))
        last["lr"] = rate
        if not all(math.isfinite(v) for v in last.values()):
            raise FloatingPointError(f"training diverged at iteration {it} (losses {last}); lower the learning rate.")
        if on_step:
            on_step(it, last)
        if preview and preview_every and ((it + 1) % preview_every == 0 or it + 1 == max_iters):
            preview(it + 1)
        if resume:
            history.append(last)
            if resume.every and (it + 1) % resume.every == 0 and it + 1 < max_iters:
                resume.save(it + 1, optimizers, history)
    return last
