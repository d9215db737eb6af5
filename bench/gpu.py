"""Benchmark: training throughput of every model at a preset's sizes, and the transformer's model
FLOP utilisation (MFU) of each.

Each model (the tokenizer with its discriminator, the AR prior, the masked diffusion prior, the
judge) trains for `--steps` steps through `train.fit`, the loop the stages use (bf16 autocast
where `compute.precision` picks it, optional torch.compile), on random inputs of the preset's
shapes: speed does not depend on what the pixels or tokens are. FLOPs per step are counted once
by torch's FLOP counter (matmuls, convolutions and attention, forward and backward); each model's
MFU is its achieved rate over the device's dense bf16 peak where it is known (`mfu`), and over a
large matmul measured in the same run in any case (`of_matmul`). The convolutional models train
channels-last and the tokenizer with its discriminator on, as their stages train them.

On a GPU: `python bench/gpu.py` (the celeba64 preset, 300 steps each, a few minutes).
Without one it runs a tiny version (small models, a few steps) so the script stays tested.
Prints JSON.
`--estimate-at RATE` trains nothing: it counts each training stage's FLOPs at the preset's sizes
and prints the minutes the stage needs at RATE FLOP/s (how the README's GPU times are estimated).
Usage: python bench/gpu.py [--preset celeba64] [--steps 300] [--device auto] [--tiny] [--estimate-at 3e14]
       [--models ar,diffusion] [--batch 512] [--no-compile]
"""

import argparse
import json
import time
from pathlib import Path

import torch
import yaml
from timing import drain, matmul_rate  # bench/timing.py, beside this file
from torch.utils.flop_counter import FlopCounterMode

from vqgen import config, train
from vqgen.models import evaluator, vqvae
from vqgen.priors import PRIORS

ROOT = Path(__file__).resolve().parents[1]
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 125e12}
TINY = {  # the smallest sizes that still exercise every path, for a machine without a GPU
    "vqvae": {"channels": 8, "res_blocks": 1, "codebook_size": 64, "batch_size": 4},
    "ar": {"n_layer": 2, "n_head": 2, "n_embd": 32, "batch_size": 4},
    "diffusion": {"n_layer": 2, "n_head": 2, "n_embd": 32, "batch_size": 4},
    "evaluate": {"width": 4, "batch_size": 4},
    "compute": {"compile": False},
}


def preset_params(name: str, tiny: bool) -> config.Params:
    """params.yaml with the preset applied (and shrunk when tiny)."""
    changes = {}
    for values in (yaml.safe_load((ROOT / "presets" / f"{name}.yaml").read_text()), TINY if tiny else {}):
        changes |= config.dotted(values)
    return config.parse_params(yaml.safe_load(config.rewrite((ROOT / "params.yaml").read_text(), changes)))


def workloads(p: config.Params, dev: torch.device, batch: int | None = None) -> dict:
    """Each model's (module, losses, objectives, batch, tokens per step) at the sizes of `p`, on
    random inputs, as the stages train them; `batch` overrides every batch size."""
    size, grid = p.data.image_size, p.data.image_size // p.vqvae.downsample
    out = {}
    v = p.vqvae
    convolved = dict(device=dev, memory_format=torch.channels_last)  # the tokenizer's and judge's stages' layout
    model, disc = vqvae.VQVAE(v.model_config()).to(**convolved), vqvae.Discriminator().to(**convolved)
    images = (torch.rand(batch or v.batch_size, 3, size, size, device=dev) * 2 - 1).to(**convolved)
    objectives = [("loss", train.adamw(model, v.lr)), ("d_loss", train.adamw(disc, v.lr))]

    def tokenizer(net, disc=disc):  # timed as after disc_start, the costlier part of a run
        return vqvae.losses(net, disc, images, v.perceptual_weight, v.adversarial_weight, True, None, v.edge_weight)

    out["vqvae"] = (model, tokenizer, objectives, len(images), 0)

    for section in ("ar", "diffusion"):
        s = getattr(p, section)
        sizes = dict(n_layer=s.n_layer, n_head=s.n_head, n_embd=s.n_embd, dropout=s.dropout)
        prior = PRIORS["ar" if section == "ar" else p.diffusion.process].create(v.codebook_size, (grid, grid), **sizes)
        prior.model.to(dev)
        tokens = torch.randint(0, v.codebook_size, (batch or s.batch_size, grid, grid), device=dev)

        def losses(net, prior=prior, tokens=tokens):
            prior.model = net
            return {"loss": prior.loss(tokens)}

        opt = [("loss", train.adamw(prior.model, s.lr, s.weight_decay))]
        out[section] = (prior.model, losses, opt, len(tokens), tokens[0].numel() * len(tokens))

    e = p.evaluate
    judge = evaluator.Evaluator(e.model_config(40)).to(**convolved)
    faces = (torch.rand(batch or e.batch_size, 3, size, size, device=dev) * 2 - 1).to(**convolved)
    labels = torch.randint(0, 2, (len(faces), 40), device=dev).float()
    shuffled = torch.Generator().manual_seed(0)  # of the coherence task's patches, drawn on the host as in the stage
    out["evaluator"] = (
        judge,
        lambda net: {"loss": evaluator.loss(net, faces, labels, shuffled)},
        [("loss", train.adamw(judge, e.lr))],
        len(faces),
        0,
    )
    return out


def flops(module, losses, objectives) -> int:
    """FLOPs of one training step: every forward and backward pass."""
    with FlopCounterMode(display=False) as counter:
        train.fit(lambda it: losses(module), objectives, 1, 1e-4, warmup=1)
    return counter.get_total_flops()


def measure(module, losses, objectives, device, steps, autocast, compile_) -> float:
    """Seconds per training step, after a few steps of warm-up (and compilation)."""
    net = torch.compile(module) if compile_ else module
    fit = dict(warmup=1, autocast=autocast)
    train.fit(lambda it: losses(net), objectives, max(3, steps // 10), 1e-4, **fit)
    drain(device)
    start = time.perf_counter()
    train.fit(lambda it: losses(net), objectives, steps, 1e-4, **fit)
    drain(device)
    return (time.perf_counter() - start) / steps


def estimate(preset: str, rate: float) -> None:
    """Minutes each training stage of the preset needs at a sustained `rate` FLOP/s, from FLOPs
    counted on the CPU at batch 4 and scaled to the preset's batch (every model is linear in it; the
    judge's coherence task adds a quarter of its batch, one image at 4)."""
    p = preset_params(preset, tiny=False)
    stages = {}
    for name, (module, losses, objectives, batch, _) in workloads(p, torch.device("cpu"), batch=4).items():
        section = {"evaluator": "evaluate"}.get(name, name)
        s = getattr(p, section)
        per_step = flops(module, losses, objectives) * s.batch_size / batch
        stages[f"train_{name}"] = {
            "flops_per_step": per_step,
            "steps": s.max_iters,
            "minutes": per_step * s.max_iters / rate / 60,
        }
    print(json.dumps({"preset": preset, "assumed_flop_per_second": rate, "stages": stages}, indent=2))


def main(
    preset: str, steps: int, device: str, tiny: bool, estimate_at: float, models: str, batch: int, no_compile: bool
) -> None:
    if estimate_at:
        return estimate(preset, estimate_at)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    tiny = tiny or dev.type != "cuda"
    steps = min(steps, 5) if tiny else steps
    p = preset_params(preset, tiny)
    if no_compile:
        p.compute.compile = False
    autocast = train.pick_precision(p.compute.precision, dev)
    train.setup(0, p.compute.threads)
    results = {}
    work = workloads(p, dev, batch or None)
    chosen = models.split(",") if models else list(work)
    if unknown := set(chosen) - set(work):
        raise SystemExit(f"--models names {', '.join(sorted(unknown))}; use some of {', '.join(work)}.")
    for name in chosen:
        module, losses, objectives, n, tokens = work[name]
        per_step = flops(module, losses, objectives)
        seconds = measure(module, losses, objectives, dev, steps, autocast, p.compute.compile)
        results[name] = {"seconds_per_step": seconds, "flops_per_step": per_step, "batch": n}
        if tokens:
            results[name]["tokens_per_step"] = tokens

    dtype = autocast or torch.float32
    measured = matmul_rate(dev, dtype, 1024 if tiny else 8192)
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    peak = next((rate for gpu, rate in PEAK_BF16.items() if gpu in device_name), None)
    for r in results.values():
        rate = r["flops_per_step"] / r["seconds_per_step"]
        r |= {
            "images_per_second": r["batch"] / r["seconds_per_step"],
            "flop_per_second": rate,
            "of_matmul": rate / measured,
        }
        if "tokens_per_step" in r:
            r["tokens_per_second"] = r["tokens_per_step"] / r["seconds_per_step"]
        if peak and autocast is torch.bfloat16:
            r["mfu"] = rate / peak
    print(
        json.dumps(
            {
                "device": device_name,
                "preset": preset,
                "tiny": tiny,
                "steps": steps,
                "precision": str(dtype).removeprefix("torch."),
                "compile": p.compute.compile,
                "matmul_flop_per_second": measured,
                "peak_bf16_flop_per_second": peak,
                "models": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="celeba64")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tiny", action="store_true", help="small models and a few steps, as without a GPU")
    parser.add_argument(
        "--estimate-at", type=float, default=0.0, help="FLOP/s: print each stage's minutes at this rate, train nothing"
    )
    parser.add_argument("--models", default="", help="comma-separated subset of vqvae,ar,diffusion,evaluator")
    parser.add_argument("--batch", type=int, default=0, help="every model's batch size instead of the preset's")
    parser.add_argument("--no-compile", action="store_true", help="train without torch.compile whatever the preset")
    main(**vars(parser.parse_args()))
