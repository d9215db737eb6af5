"""Benchmark: what bf16 autocast gains over float32 for each kind of work of the default run, in the
same run, on this machine: a training step of the tokenizer (with its discriminator), of each prior
and of the judge, and a sampling batch of each prior (guided, as samples without a request are
drawn). `compute.precision: auto` uses bf16 where it computes natively, except for the AR sampler's
one-token steps, where this shows it gains little on a CPU; a ratio above 1 is bf16 faster.

Prints JSON. Usage: python bench/precision.py [--repeats 5] [--device cpu] [--batch 128]
"""

import argparse
import json

import torch
from timing import best_seconds  # bench/timing.py, beside this file

from vqgen import train
from vqgen.config import Params
from vqgen.models import evaluator, vqvae
from vqgen.priors import PRIORS
from vqgen.priors.guidance import dropped

ATTRIBUTES = 40


def tokenizer_step(p: Params, device: str):
    v = p.vqvae
    fast = dict(device=device, memory_format=torch.channels_last)
    model, disc = vqvae.VQVAE(v.model_config()).to(**fast), vqvae.Discriminator().to(**fast)
    objectives = [("loss", train.optimizer(model, v)), ("d_loss", train.optimizer(disc, v))]
    x = torch.rand(v.batch_size, 3, 64, 64, device=device).mul(2).sub(1).contiguous(memory_format=torch.channels_last)

    def losses(it: int) -> dict[str, torch.Tensor]:
        return vqvae.losses(model, disc, x, v.perceptual_weight, v.adversarial_weight, True, None, v.edge_weight)

    return lambda: train.fit(losses, objectives, 1, v.lr)  # one step as the stage takes it, under the caller's autocast


def judge_step(p: Params, device: str):
    e = p.evaluate
    model = evaluator.Evaluator(e.model_config(ATTRIBUTES)).to(device, memory_format=torch.channels_last)
    opt = train.optimizer(model, e)
    x = torch.rand(e.batch_size, 3, 64, 64, device=device).mul(2).sub(1).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (e.batch_size, ATTRIBUTES), device=device).float()

    def step():
        opt.zero_grad()
        evaluator.loss(model, x, y).backward()
        opt.step()

    return step


def prior(name: str, section, device: str):
    made = PRIORS[name].create(256, (8, 8), None, [f"a{i}" for i in range(ATTRIBUTES)], **section.sizes())
    made.model.to(device)
    return made


def prior_step(name: str, section, device: str):
    chosen = prior(name, section, device)
    opt = train.optimizer(chosen.model, section)
    grids = torch.randint(0, 256, (section.batch_size, 8, 8), device=device)
    request = dropped(torch.randint(0, 2, (section.batch_size, ATTRIBUTES), device=device), 0.1, 0.5)

    def step():
        opt.zero_grad()
        chosen.loss(grids, request).backward()
        opt.step()

    return step


def sampling(name: str, section, batch: int, device: str):
    chosen = prior(name, section, device)
    chosen.model.eval()
    request = torch.randint(0, 2, (batch, ATTRIBUTES), device=device)
    return lambda: chosen.sample(batch, request=request, guidance=section.mix_guidance, guidance_schedule="constant")


def main(repeats: int, device: str, batch: int | None) -> None:
    torch.manual_seed(0)
    p = Params()
    work = {
        "tokenizer training step": tokenizer_step(p, device),
        "judge training step": judge_step(p, device),
        "ar prior training step": prior_step("ar", p.ar, device),
        "masked prior training step": prior_step("masked", p.diffusion, device),
        "ar sampling batch": sampling("ar", p.ar, batch or p.sample.batch_size, device),
        "masked sampling batch": sampling("masked", p.diffusion, batch or p.sample.batch_size, device),
    }
    rows = []
    for label, fn in work.items():
        fp32 = best_seconds(fn, repeats, device, warmup=1)
        bf16 = best_seconds(fn, repeats, device, torch.bfloat16, warmup=1)
        rows.append({"work": label, "fp32_s": fp32, "bf16_s": bf16, "bf16_speedup": fp32 / bf16})
    report = {
        "device": device,
        "threads": torch.get_num_threads(),
        "native_bf16": train.native_bf16(torch.device(device)),
        "rows": rows,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, help="images per sampling batch  [default: sample.batch_size]")
    args = parser.parse_args()
    main(args.repeats, args.device, args.batch)
