"""Measurement (not timing): which attributes a run's priors follow in their samples without a request.

Each such sample asks for the attributes of a random training image, guided at `mix_guidance`, as
the sampling stage draws them. For each attribute the judge sees: the share of the samples the judge
calls it in, among those that asked for it present and among those that asked for it absent, beside
the same two shares of the real test images with and without it (`real_`) and of their VQ-VAE
reconstructions (`recon_`: what the tokenizer lets a prior reach). A prior that follows an
attribute shows the reconstructions' gap between the two shares (`followed` = the samples' gap over
the reconstructions'; 1 is as clear as there); one that draws it whatever was asked shows none.
Prints JSON, one object per prior and sampling seed, with the samples' fd (the sampling stage's,
at the run's sampling seed).

Usage, in a workspace after `dvc repro`:
    python bench/followed_attributes.py [--priors ar diffusion] [--seeds 0 1] [--mix-guidance 2]
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from conditioning import judging  # bench/conditioning.py, beside this file

from vqgen import layout
from vqgen.data import images
from vqgen.evaluate import frechet_distance
from vqgen.pipeline import PRIORS, Pipeline


def shares(calls: np.ndarray, asked: np.ndarray) -> tuple[float, float]:
    """The share of called images among those asked present and among those asked absent (NaN: none)."""
    return tuple(float(calls[asked == v].mean()) if (asked == v).any() else float("nan") for v in (1, 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=Path("."), help="the run directory, after `dvc repro`")
    ap.add_argument("--priors", nargs="+", choices=PRIORS, default=list(PRIORS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--mix-guidance", type=float, help="guidance of the requests  [default: params.yaml's]")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: all cores)")
    args = ap.parse_args()
    p, judge, _ = judging(args.run, args.threads)
    pipe = Pipeline.from_run(args.run, "cpu", params=p, priors=tuple(args.priors))
    real_calls, labels = judge.real["attributes"], judge.real_attributes
    test = images.Split(args.run / layout.IMAGES, "test")[: judge.n]
    recon_calls = judge.calls(pipe.decode(pipe.encode(test)))
    for name in args.priors:
        prior = pipe.prior(name)
        if prior.data_attributes is None:
            raise SystemExit(f"the {prior.name} prior keeps no training attributes; train it with condition on.")
        at = pipe.unrequested_settings(name, pipe.settings(name), pipe.mix_guidance(name, args.mix_guidance))
        for seed in args.seeds:
            gen = torch.Generator().manual_seed(seed)  # the requests and then the draws, as `generate` makes them
            asked = prior.data_requests(judge.n, gen)
            drawn = pipe.generate(judge.n, name, seed=gen, attributes=asked, **at)
            view = judge.view(drawn.images)
            rows = []
            for i, attribute in enumerate(judge.attributes):
                if not judge.seen[i]:
                    continue
                present, absent = shares(view["attributes"][:, i], asked[:, prior.attributes.index(attribute)].numpy())
                real_present, real_absent = shares(real_calls[:, i], labels[:, i])
                recon_present, recon_absent = shares(recon_calls[:, i], labels[:, i])
                row = {"attribute": attribute, "asked_present": present, "asked_absent": absent}
                row |= {"real_present": real_present, "real_absent": real_absent}
                row |= {"recon_present": recon_present, "recon_absent": recon_absent}
                reachable = recon_present - recon_absent  # 0: the reconstructions do not tell them apart
                row["followed"] = (present - absent) / reachable if reachable else float("nan")
                rows.append(row)
            fd = frechet_distance(judge.real["features"], view["features"])
            print(json.dumps({"prior": name, "seed": seed, "fd": fd, "attributes": rows}), flush=True)


if __name__ == "__main__":
    main()
