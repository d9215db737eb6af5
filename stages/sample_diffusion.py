"""Sample the discrete-diffusion prior from uniform random tokens; render the reverse-diffusion
strip and GIF, and the Fréchet distance of the samples."""

from __future__ import annotations

import time

import torch

from vqgen import checkpoint, render
from vqgen.config import Params
from vqgen.models.transformer import Transformer, TransformerConfig
from vqgen.priors import diffusion

from stages import common, judging

PARAMS = ("diffusion.temperature", "diffusion.steps", "sample", *judging.PARAMS)


def run(p: Params) -> None:
    s, d, n = p.sample, p.diffusion, p.evaluate.num_samples
    dev = common.device(p, s.seed)
    judge = judging.Judge(p, dev)  # first: bad Inception weights stop the stage before any work
    vq = judging.tokenizer(dev)
    model, meta = checkpoint.load(common.DIFFUSION, Transformer, TransformerConfig, dev)
    grid = tuple(meta["grid"])
    gen = torch.Generator(device=dev).manual_seed(s.seed)

    finals, first, start = [], None, time.perf_counter()
    with common.progress(n, "sampling diffusion prior") as advance:
        for i in range(0, n, s.batch_size):
            trajectory = diffusion.sample(model, grid, min(s.batch_size, n - i), d.steps,
                                          d.temperature, generator=gen)
            first = first or [x[:16].cpu() for x in trajectory]
            finals.append(trajectory[-1].cpu())
            advance(len(finals[-1]))
    grids = torch.cat(finals)
    decoded = judging.decode(vq, grids)
    seconds = (time.perf_counter() - start) / n
    judging.save_samples("diffusion", grids.numpy(), decoded)
    render.save_image(common.FIGURES / "diffusion_samples.png", render.grid(decoded[:36], 6, scale=2))
    frames = [judging.decode(vq, x) for x in first]
    render.strip(common.FIGURES / "diffusion_strip.png", [f[:6] for f in frames])
    render.gif(common.FIGURES / "diffusion.gif", frames)
    common.write_metrics("sample_diffusion", {**judge.measure(decoded), "seconds_per_image": seconds})
