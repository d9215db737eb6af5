"""Benchmark: the cost of training in several processes on one machine. The AR prior's stage
(`vqgen train_ar`, default model and batch) runs as one process with all the cores' threads and as
`--compute.nproc N` processes of one thread each (torchrun, gloo), in the same run.

Prints JSON: images per second of each, measured as the difference between a long and a short
run so that start-up (imports, torchrun, reading the shards) cancels, and their ratio (above 0.9:
the goal). It builds its own small project in a temporary directory: synthetic faces, a tokenizer
trained for a few steps (the tokens' quality does not change the speed).
Usage: python bench/distributed.py [--nproc 2] [--short 20] [--long 120]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VQGEN = [sys.executable, "-m", "stages.cli"]


def vqgen(project: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([*VQGEN, *args], cwd=project, check=True, capture_output=True)
    return time.perf_counter() - start


def main(nproc: int, short: int, long: int) -> None:
    project = Path(tempfile.mkdtemp())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["synthetic_count"] = 4000
    params["evaluate"]["num_samples"] = 100
    params["vqvae"]["max_iters"] = 2
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("download", "prepare", "train_vqvae", "encode"):
        vqgen(project, stage)
    cores = os.cpu_count() or 1
    batch = params["ar"]["batch_size"]
    modes = {
        f"1 process, {cores} threads": ["--compute.nproc", "1", "--compute.threads", str(cores)],
        f"{nproc} processes, 1 thread each": ["--compute.nproc", str(nproc), "--compute.threads", "1"],
    }
    rows = {}
    for name, options in modes.items():
        seconds = {n: vqgen(project, "train_ar", "--ar.max_iters", str(n), *options) for n in (short, long)}
        rows[name] = batch * (long - short) / (seconds[long] - seconds[short])
    shutil.rmtree(project)
    one, many = rows.values()
    print(
        json.dumps(
            {
                "images_per_second": {k: round(v, 1) for k, v in rows.items()},
                "ratio": round(many / one, 3),
                "batch": batch,
                "steps": [short, long],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--short", type=int, default=20)
    parser.add_argument("--long", type=int, default=120)
    main(**vars(parser.parse_args()))
