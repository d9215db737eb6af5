"""Benchmark: the autoregressive prior with its key/value cache against the masked diffusion prior
at 4, 8 and 12 steps (4: the default on an 8x8 grid; 12: the presets' on 16x16), same width and
depth, on 8x8 and 16x16 token grids, in the same run; with --presets, also on 16x16 at the
presets' size (12 layers, 8 heads, width 512: minutes on a CPU, for a GPU).

Prints JSON: images per second at batch 128 (throughput) and seconds per image at batch 1
(latency) for each, and the masked prior's speed relative to the AR prior's (above 1: faster).
Random weights: sampling costs do not depend on what a model has learned. The masked prior's passes
run in the precision `compute.precision` gives them (auto: bf16 where the device computes it
natively), as the pipeline runs them; the AR prior's steps in float32, as there.
Usage: python bench/sampling.py [--batch 128] [--repeats 2] [--device cuda] [--precision auto] [--presets]
"""

import argparse
import json

import torch
from timing import best_seconds  # bench/timing.py, beside this file

from vqgen import pipeline, train
from vqgen.priors import PRIORS

CASES = [((8, 8), (4, 4, 128)), ((16, 16), (4, 4, 128))]  # grid, (layers, heads, width)
PRESETS = ((16, 16), (12, 8, 512))


def main(batch: int, repeats: int, device: str, precision: str, presets: bool = False) -> None:
    dtype = train.pick_precision(precision, torch.device(device))
    rows = []
    for grid, (layers, heads, width) in CASES + ([PRESETS] if presets else []):
        torch.manual_seed(0)
        sizes = dict(n_layer=layers, n_head=heads, n_embd=width)
        case, ours = {"grid": list(grid), "model": [layers, heads, width]}, []  # the AR prior's row first
        ar = PRIORS["ar"].create(256, grid, **sizes)
        masked = PRIORS["masked"].create(256, grid, **sizes)
        for prior in (ar, masked):
            prior.model.to(device).eval()
        contenders = {
            "ar (kv cache)": (ar, {}),
            "masked, 4 steps": (masked, {"steps": 4}),
            "masked, 8 steps": (masked, {"steps": 8}),
            "masked, 12 steps": (masked, {"steps": 12}),
        }
        for name, (prior, settings) in contenders.items():
            gen = torch.Generator(device=device).manual_seed(0)

            def draw(n: int, prior=prior, settings=settings, gen=gen):
                return pipeline.sample(prior, dtype, torch.device(device), n, generator=gen, **settings)

            draw(2)  # warm-up
            throughput = batch / best_seconds(lambda: draw(batch), repeats, device)
            latency = best_seconds(lambda: draw(1), repeats * 3, device)
            ours.append({**case, "prior": name, "images_per_s_batch": throughput, "latency_s_batch1": latency})
        for r in ours:
            r["throughput_vs_ar"] = r["images_per_s_batch"] / ours[0]["images_per_s_batch"]
            r["latency_speedup_vs_ar"] = ours[0]["latency_s_batch1"] / r["latency_s_batch1"]
        rows += ours
    print(
        json.dumps(
            {
                "batch": batch,
                "threads": torch.get_num_threads(),
                "device": device,
                "masked_precision": str(dtype or torch.float32),
                "results": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="auto", help="auto, fp32 or bf16, as compute.precision")
    parser.add_argument("--presets", action="store_true", help="also on 16x16 at the presets' size (for a GPU)")
    args = parser.parse_args()
    main(args.batch, args.repeats, args.device, args.precision, args.presets)
