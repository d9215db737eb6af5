"""Benchmark: is data ever the bottleneck? Measures, in one run on the same machine, images per
second of drawing synthetic faces, of decoding + cropping + resizing them into the image store
(1 worker and all cores), of reading random training batches from the store on demand and from
memory, and, as the peer they must outpace, of VQ-VAE training at the default configuration.

Prints JSON. Usage: python bench/data_throughput.py [count]
"""

import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vqgen import train
from vqgen.data import celeba, images, synthetic
from vqgen.models import vqvae


def rate(n, fn):
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main(count: int = 1000) -> None:
    cores = os.cpu_count() or 1
    out = {"images": count, "cores": cores}
    with tempfile.TemporaryDirectory() as tmp:
        raw, store = Path(tmp, "raw"), Path(tmp, "images.h5")
        out["draw_per_s"] = rate(count, lambda: synthetic.write_synthetic(raw, count, 0, workers=cores))
        paths, attrs, part = celeba.read_layout(raw)
        load = functools.partial(images.load_face, crop=140, size=64)
        for workers in sorted({1, cores}):
            out[f"prepare_{workers}_workers_per_s"] = rate(
                count,
                lambda: images.build_store(
                    store,
                    paths,
                    attrs.to_numpy(),
                    list(attrs.columns),
                    np.zeros(count, np.uint8),
                    load,
                    64,
                    workers=workers,
                ),
            )
        for name, limit in (("read_on_demand_per_s", 0), ("read_in_memory_per_s", 1 << 30)):
            split = images.Split(store, "train", memory_limit=limit)
            order = np.random.default_rng(0).permutation(len(split))
            out[name] = rate(count, lambda: [images.to_tensor(split[order[i : i + 32]]) for i in range(0, count, 32)])
        model, disc = vqvae.VQVAE(vqvae.VQVAEConfig(channels=16)), vqvae.Discriminator()
        model, disc = (m.to(memory_format=torch.channels_last) for m in (model, disc))
        opt_g, opt_d = train.adamw(model, 1e-3), train.adamw(disc, 1e-3)
        x = images.to_tensor(split[:32]).contiguous(memory_format=torch.channels_last)
        step = lambda it: vqvae.losses(model, disc, x, 0.1, 0.0, use_disc=True)  # noqa: E731
        out["vqvae_training_per_s"] = rate(
            32 * 10, lambda: train.fit(step, [("loss", opt_g), ("d_loss", opt_d)], 10, 1e-3)
        )
    out["slowest_data_step_vs_training"] = (
        min(out["read_on_demand_per_s"], out["read_in_memory_per_s"]) / out["vqvae_training_per_s"]
    )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
