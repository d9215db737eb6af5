"""Measurement (not timing): how a trained run's priors draw without a request, over the guidance
of the attributes they draw (`mix_guidance`), against the empty request.

For each prior and sampling seed: `evaluate.num_samples` samples asking each for the attributes of
a random training image at each guidance scale, and as many asking for nothing; for each set its
fd, precision and recall against the test images and the attributes whose rate is off the
reconstructions' by more than a third (`rates_off`, `off`), and those also off beyond sampling
noise (`surely_off`). Prints JSON, one object per set.

Usage, in a workspace after `dvc repro`:
    python bench/mix_guidance.py [--scales 1 1.5 2 2.5 3] [--seeds 0 1] [--priors diffusion --temperature 1]
        [--steps 8] [--no-empty]
"""

import argparse
import json
from pathlib import Path

from conditioning import judged, judging  # bench/conditioning.py, beside this file

from vqgen.pipeline import PRIORS, Pipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=Path("."), help="the run directory, after `dvc repro`")
    ap.add_argument("--priors", nargs="+", choices=PRIORS, default=list(PRIORS))
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5, 3.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--temperature", type=float, help="sampling temperature  [default: params.yaml's]")
    ap.add_argument("--steps", type=int, help="a diffusion prior's passes  [default: params.yaml's]")
    ap.add_argument("--no-empty", action="store_true", help="skip the samples under the empty request")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: all cores)")
    args = ap.parse_args()
    p, judge, reachable = judging(args.run, args.threads)
    pipe = Pipeline.from_run(args.run, "cpu", params=p, priors=tuple(args.priors))
    for prior in args.priors:
        for seed in args.seeds:
            at = {"temperature": args.temperature} | ({"steps": args.steps} if prior != "ar" else {})
            for scale in [*([] if args.no_empty else [None]), *args.scales]:  # None: the empty request
                asked = {"attributes": {}} if scale is None else {"mix_guidance": scale}
                drawn = pipe.generate(judge.n, prior, seed=seed, **at, **asked)
                row = {"prior": prior, "seed": seed, "mix_guidance": scale, **at}
                row |= judged(judge, drawn.images, reachable)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
