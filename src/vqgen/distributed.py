"""Training across processes started by torchrun: which process this is, and the few collective
operations the training loop and the quantizer need. With one process every function is the
identity, so single-process code pays nothing.

Every process holds the same model and draws the same random numbers; each computes the losses of
its share of the global batch, and gradients are averaged before each optimizer step, so the run
equals one process with the same global batch up to float rounding.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world() > 1 else 0


def is_main() -> bool:
    """The process that logs, saves checkpoints and writes outputs."""
    return rank() == 0


def planned() -> int:
    """How many processes torchrun started, this one among them (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return planned() > 1


def start(device: torch.device) -> torch.device:
    """Join the process group torchrun describes in the environment (nccl on CUDA, gloo on the CPU);
    returns the device this process trains on (its own GPU on a CUDA machine)."""
    if not launched() or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def stop() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def average(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor, in place, by its mean over the processes: one collective for all of them."""
    if world() == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world()
    for t, chunk in zip(tensors, flat.split([t.numel() for t in tensors])):
        t.copy_(chunk.view_as(t))


def mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of `t` over every process's batch (batches of equal size), as one process would
    compute it from the whole global batch; a constant (no gradient) with several processes."""
    m = t.mean()
    if world() > 1:
        m = m.detach().clone()
        average([m])
    return m


def rows(x: torch.Tensor) -> torch.Tensor:
    """The rows of `x` of every process, in rank order: the whole global batch."""
    if world() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def first(t: torch.Tensor) -> torch.Tensor:
    """Process 0's `t`, in place, on every process: random choices every process must share."""
    if world() > 1:
        dist.broadcast(t, src=0)
    return t


def gather(value) -> list:
    """Every process's `value` (any picklable object of our own making), in rank order."""
    if world() == 1:
        return [value]
    out = [None] * world()
    dist.all_gather_object(out, value)
    return out


def broadcast(value):
    """Process 0's `value` (any picklable object of our own making), on every process."""
    if world() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
