"""Benchmark: the tokenizer's training step (bf16, channels-last, the discriminator on) as `train.fit`
steps it, its loss and the discriminator's sharing one pass over the reconstruction and each backward
reaching only its own network's weights, against the former step (a second pass over a detached copy
for the discriminator, each backward through every weight). Both compute the same gradients bit for
bit (tests/test_train.py); this counts their FLOPs and times them in turn, in the same run. Also
the shared step with the discriminator's passes over the images and the reconstructions made one
pass of twice the batch (`vqvae.losses(..., one_pass=True)`): `one_pass_speedup` above 1 means one
pass is faster on this device.

Prints JSON. Usage: python bench/discriminator_pass.py [--steps 20] [--rounds 3] [--device cuda]
"""

import argparse
import json

import torch
from timing import best_seconds  # bench/timing.py, beside this file
from torch.utils.flop_counter import FlopCounterMode

from vqgen import train
from vqgen.config import Params
from vqgen.models import vqvae


def steps(shared: bool, device: torch.device, one_pass: bool = False):
    """A function doing one training step of a fresh default tokenizer and discriminator."""
    torch.manual_seed(0)
    v, fast = Params().vqvae, dict(device=device, memory_format=torch.channels_last)
    model, disc = vqvae.VQVAE(v.model_config()).to(**fast), vqvae.Discriminator().to(**fast)
    opts = {"loss": (model, train.optimizer(model, v)), "d_loss": (disc, train.optimizer(disc, v))}
    x = (torch.rand(v.batch_size, 3, 64, 64) * 2 - 1).to(**fast)
    seen = []  # the discriminator's (input, logits): of x, then of the reconstruction
    disc.register_forward_hook(lambda module, args, result: seen.append((args[0], result[0])))
    weights = (v.perceptual_weight, v.adversarial_weight, True, None, v.edge_weight, one_pass)

    def step():
        seen.clear()
        with torch.autocast(device.type, torch.bfloat16):
            out = vqvae.losses(model, disc, x, *weights)
            if not shared:  # the former third pass
                out["d_loss"] = vqvae.hinge_d_loss(seen[0][1], disc(seen[1][0].detach())[0])
        for name, (net, opt) in opts.items():
            for _, other in opts.values():
                other.zero_grad(set_to_none=True)
            if shared:
                out[name].backward(inputs=list(net.parameters()), retain_graph=name == "loss")
            else:
                out[name].backward()
            opt.step()

    return step


def main(n: int, rounds: int, device: str) -> None:
    train.setup(0)
    dev = torch.device(device)
    runs = {"shared": steps(True, dev), "former": steps(False, dev), "one_pass": steps(True, dev, one_pass=True)}
    flops = {}
    for name, step in runs.items():
        with FlopCounterMode(display=False) as counter:
            step()
        flops[name] = counter.get_total_flops()
    best = {name: float("inf") for name in runs}  # each step has run once already: counting its FLOPs
    for _ in range(rounds):  # in turn, so that a drift of the machine's speed hits them all
        for name, step in runs.items():
            best[name] = min(best[name], best_seconds(lambda step=step: [step() for _ in range(n)], 1, device) / n)
    out = {f"{k}_gflop_per_step": v / 1e9 for k, v in flops.items()}
    out |= {f"{k}_seconds_per_step": v for k, v in best.items()}
    out["speedup"] = best["former"] / best["shared"]
    out["one_pass_speedup"] = best["shared"] / best["one_pass"]
    out |= {"device": device, "threads": torch.get_num_threads()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    main(args.steps, args.rounds, args.device)
