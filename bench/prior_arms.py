"""Measurement (not timing): what a change of a prior's training settings buys or costs, over the
spread of sampling seeds.

Each `--arm` is a list of `key=value` settings of the prior's params.yaml section (`lr=0.002
max_iters=400`; an empty string is the run's own settings). The prior of `--prior` is trained with
them by its own stage, `vqgen train_<prior>`, in a scratch copy of the run (its tokenizer, tokens
and judge), then judged at each sampling seed as the sampling stage judges it: samples without a
request (fd, recall, the attributes off the reconstructions' rates by a third, `rates_off`, and
beyond sampling noise, `surely_off`), and requests at the configured guidance (`cond_accuracy`,
`cond_fd`, `vqgen.requests`). Prints JSON: one object per arm and seed, then one per arm with the
means over the seeds and their standard errors, and the training stage's seconds and val loss.

Usage, in a workspace after `dvc repro` (each arm trains a prior: minutes on a CPU):
    python bench/prior_arms.py --prior ar --arm "" --arm "lr=0.002" --seeds 0 1 2
"""

import argparse
import json
from pathlib import Path

import numpy as np
from conditioning import arm, judged, judging  # bench/conditioning.py, beside this file

from vqgen import layout, requests
from vqgen.pipeline import Pipeline

SUMMARISED = ("fd", "recall", "rates_off", "surely_off", "cond_accuracy", "cond_fd")


def options(section: str, settings: str) -> list[str]:
    """`lr=0.002 max_iters=400` -> the stage's options `--ar.lr 0.002 --ar.max_iters 400`."""
    out = []
    for pair in settings.split():
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"arm setting {pair!r} is not key=value; write it as lr=0.002.")
        out += [f"--{section}.{key}", value]
    return out


def summary(rows: list[dict]) -> dict:
    """Means over the seeds' rows and their standard errors (`<measure>_se`)."""
    out = {}
    for key in (k for k in SUMMARISED if k in rows[0]):
        values = np.array([len(r[key]) if isinstance(r[key], list) else r[key] for r in rows], float)
        out[key] = float(values.mean())
        out[f"{key}_se"] = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prior", choices=("ar", "diffusion"), default="ar")
    ap.add_argument("--arm", action="append", default=None, help="key=value settings of the arm (repeatable)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampling seeds")
    ap.add_argument("--run", type=Path, default=Path("."), help="the run directory, after `dvc repro`")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch, here and in training (0: all cores)")
    args = ap.parse_args()
    arms = {settings: options(args.prior, settings) for settings in args.arm or [""]}  # bad ones stop us first
    p, judge, reachable = judging(args.run, args.threads)
    for settings, flags in arms.items():
        with arm(args.run, args.prior, flags, args.threads) as scratch:
            pipe = Pipeline.from_run(scratch, "cpu", priors=(args.prior,))
            trained = json.loads((scratch / layout.METRICS / f"{args.prior}.json").read_text())
        guided = pipe.settings(args.prior)
        rows = []
        for seed in args.seeds:
            row = judged(judge, pipe.generate(judge.n, args.prior, seed=seed).images, reachable)
            if pipe.prior(args.prior).attributes:
                row |= requests.cond_accuracy(pipe, args.prior, judge, requests.per_class(judge.n), seed, **guided)
                row["cond_fd"] = requests.cond_fd(pipe, args.prior, judge, seed, **guided)
            rows.append(row)
            print(json.dumps({"prior": args.prior, "arm": settings, "seed": seed, **row}), flush=True)
        head = {"prior": args.prior, "arm": settings, "seeds": args.seeds}
        head |= {"train_seconds": trained["seconds"], "val_loss": trained["val_loss"]}
        print(json.dumps({**head, **summary(rows)}), flush=True)


if __name__ == "__main__":
    main()
