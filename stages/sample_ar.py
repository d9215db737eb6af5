"""Sample the autoregressive prior: unconditional samples, completions of test images from their
first token rows (half, quarter, first token), and the Fréchet distance of the samples."""

from __future__ import annotations

import time

import numpy as np
import torch

from vqgen import checkpoint, render
from vqgen.config import Params
from vqgen.data import tokens
from vqgen.models.transformer import Transformer, TransformerConfig
from vqgen.priors import autoregressive

from stages import common, judging

PARAMS = ("ar.temperature", "ar.top_k", "sample", *judging.PARAMS)


def run(p: Params) -> None:
    s, n = p.sample, p.evaluate.num_samples
    dev = common.device(p, s.seed)
    judge = judging.Judge(p, dev)  # first: bad Inception weights stop the stage before any work
    vq = judging.tokenizer(dev)
    model, meta = checkpoint.load(common.AR, Transformer, TransformerConfig, dev)
    grid = tuple(meta["grid"])
    gen = torch.Generator(device=dev).manual_seed(s.seed)
    draw = dict(temperature=p.ar.temperature, top_k=p.ar.top_k, generator=gen)

    grids, start = [], time.perf_counter()
    with common.progress(n, "sampling AR prior") as advance:
        for i in range(0, n, s.batch_size):
            grids.append(autoregressive.sample(model, grid, n=min(s.batch_size, n - i), **draw).cpu())
            advance(len(grids[-1]))
    grids = torch.cat(grids)
    decoded = judging.decode(vq, grids)
    seconds = (time.perf_counter() - start) / n
    judging.save_samples("ar", grids.numpy(), decoded)
    render.save_image(common.FIGURES / "ar_samples.png", render.grid(decoded[:36], 6, scale=2))

    shards = tokens.read_shards(common.TOKENS, "test", vq.cfg.codebook_size, checkpoint.sha256(common.VQVAE))
    test = torch.from_numpy(shards["tokens"][:9].astype(np.int64))
    recon = judging.decode(vq, test)
    h, w = grid
    half, quarter = max(1, h // 2), max(1, h // 4)  # at least one row on small grids
    for name, keep, label in (("half", half * w, f"first {half} of {h} token rows"),
                              ("quarter", quarter * w, f"first {quarter} of {h} token rows"),
                              ("first_token", 1, "first token only")):
        done = autoregressive.sample(model, grid, prefix=test.flatten(1)[:, :keep], **draw).cpu()
        render.panels(common.FIGURES / f"ar_completion_{name}.png",
                      [("transformer completions", judging.decode(vq, done)), ("VQ-VAE reconstructions", recon)],
                      cols=3, title=f"Completion from the {label}")
    common.write_metrics("sample_ar", {**judge.measure(decoded), "seconds_per_image": seconds})
