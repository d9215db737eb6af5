"""Measurement (not timing): what conditioning on the attributes costs a prior's unconditional
samples, against the spread of training seeds.

For each training seed, the prior of `--prior` (a params.yaml section: ar or diffusion) is trained
twice by its own stage, `vqgen train_<prior>`, in a scratch copy of the run: conditioned on the
data's attributes and not. Each is judged on `evaluate.num_samples` samples without a request,
drawn as the sampling stage draws them (each of a conditioned prior's asks for the attributes of a
random training image, guided at `mix_guidance`), and, where conditioned, on as many under the
empty request: fd, precision, recall, and the attributes whose rate is off the reconstructions' by
more than a third (`off`), and those also off beyond sampling noise (`surely_off`). The run's
judge, tokenizer and tokens serve every arm. The arms train with `--threads` threads: at another
count than the run's, the seed-0 arm's weights differ from the run's in the last bits. Prints JSON,
one object per arm.

Usage, in a workspace after `dvc repro` (each arm trains a prior: minutes on a CPU):
    python bench/conditioning.py --prior ar --seeds 0 1 2
"""

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from vqgen import config, layout
from vqgen.evaluate import rates_off
from vqgen.judge import Judge
from vqgen.pipeline import Pipeline


@contextlib.contextmanager
def arm(run: Path, section: str, options: list[str], threads: int) -> Iterator[Path]:
    """A scratch copy of the run (its data and tokenizer linked) with the prior of `section` trained by
    `vqgen train_<section>` with the command-line `options` (`--ar.seed 1`, say)."""
    with tempfile.TemporaryDirectory(prefix=f"{section}-") as tmp:
        scratch = Path(tmp)
        (scratch / "models").mkdir()
        (scratch / "params.yaml").write_text((run / "params.yaml").read_text())
        (scratch / "data").symlink_to((run / "data").resolve())
        (scratch / layout.VQVAE).symlink_to((run / layout.VQVAE).resolve())
        vqgen = str(Path(sys.executable).with_name("vqgen"))  # this environment's
        command = [vqgen, f"train_{section}", *options, "--compute.threads", str(threads)]
        subprocess.run(command, cwd=scratch, check=True)
        yield scratch


def judged(judge: Judge, images, reachable: dict[str, float]) -> dict:
    measured = judge.measure(images)
    rates = {k[len("rate_") :]: v for k, v in judge.rates(judge.view(images)).items()}
    off = rates_off(rates, reachable)
    surely = rates_off(rates, reachable, counts=(judge.n, judge.n))
    return {
        **{k: measured[k] for k in ("fd", "precision", "recall")},
        "rates_off": len(off),
        "off": off,
        "surely_off": surely,
    }


def judging(run: Path, threads: int) -> tuple[config.Params, Judge, dict[str, float]]:
    """The run's params, its judge, and the rate of each attribute the judge sees in the reconstructions."""
    if threads:
        torch.set_num_threads(threads)
    p = config.load_params(run / "params.yaml")
    base = json.loads((run / layout.METRICS / "baselines.json").read_text())
    reachable = {k[len("recon_rate_") :]: v for k, v in base.items() if k.startswith("recon_rate_")}
    return p, Judge.of_run(p, "cpu", run), reachable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prior", choices=("ar", "diffusion"), default="ar")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--run", type=Path, default=Path("."), help="the run directory, after `dvc repro`")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch, here and in training (0: all cores)")
    args = ap.parse_args()
    p, judge, reachable = judging(args.run, args.threads)
    for seed in args.seeds:
        for condition in (True, False):
            flag = f"--{args.prior}.condition" if condition else f"--no-{args.prior}.condition"
            with arm(args.run, args.prior, [f"--{args.prior}.seed", str(seed), flag], args.threads) as scratch:
                pipe = Pipeline.from_run(scratch, "cpu", priors=(args.prior,))
                trained = json.loads((scratch / layout.METRICS / f"{args.prior}.json").read_text())
            drawn = pipe.generate(judge.n, args.prior, seed=p.sample.seed)
            row = {"prior": args.prior, "seed": seed, "condition": condition, "val_loss": trained["val_loss"]}
            row |= {"train_seconds": trained["seconds"], **judged(judge, drawn.images, reachable)}
            if condition:
                null = pipe.generate(judge.n, args.prior, seed=p.sample.seed, attributes={})
                row |= {f"null_{k}": v for k, v in judged(judge, null.images, reachable).items()}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
