"""What every stage shares: output paths, progress bars, DVCLive, metrics files, devices."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vqgen import checkpoint, config, distributed, train
from vqgen.config import ConfigError, Params
from vqgen.files import writing

RAW = Path("data/raw")
IMAGES = Path("data/images.h5")
TOKENS = Path("data/tokens")
VQVAE = Path("models/vqvae.safetensors")
AR = Path("models/ar.safetensors")
DIFFUSION = Path("models/diffusion.safetensors")
EVALUATOR = Path("models/evaluator.safetensors")
MODELS = {"ar": AR, "diffusion": DIFFUSION}  # each prior's checkpoint, by its params.yaml section
FIGURES = Path("figures")
SAMPLES = Path("samples")
METRICS = Path("metrics")
RESUME = Path("scratch/resume")  # a training stage's saved state, outside its DVC outputs (DVC deletes those)


@contextlib.contextmanager
def progress(total: int, description: str) -> Iterator:
    """A rich progress bar (silent when stderr is not a terminal); yields `advance(n=1, **fields)`."""
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns, disable=not sys.stderr.isatty(), transient=False) as bar:
        task = bar.add_task(description, total=total, info="")

        def advance(n: int = 1, info: str = "") -> None:
            bar.update(task, advance=n, info=info)

        yield advance


def check_test_split(p: Params) -> int:
    """The number of test images in the image store, refused if fewer than the judge compares."""
    from vqgen.data import images

    count = len(images.Split(IMAGES, "test", memory_limit=0))
    if count < p.evaluate.num_samples:
        raise ConfigError(
            f"evaluate.num_samples is {p.evaluate.num_samples} but the test split holds {count} "
            f"images; use at most {count}, or more data."
        )
    return count


def resume(
    stage: str,
    p: Params,
    inputs: list[Path],
    modules: dict[str, torch.nn.Module],
    generators: dict[str, torch.Generator] | None = None,
    streams: dict[str, train.Batches] | None = None,
) -> train.Resume:
    """Where the training stage `stage` saves its state and resumes from: a file named by a hash of
    the stage's params, its input files and the code, so a changed run never resumes a stale one."""
    import stages
    import vqgen

    digest = hashlib.sha256()
    module = importlib.import_module(f"stages.{stage}")
    values = {k: getattr(getattr(p, k.split(".")[0]), k.split(".")[1]) for k in config.keys(module.PARAMS)}
    digest.update(json.dumps(values, sort_keys=True).encode())
    code = [*Path(vqgen.__file__).parent.rglob("*.py"), *Path(stages.__file__).parent.glob("*.py")]
    for path in [*sorted(code), *inputs]:
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            digest.update(checkpoint.sha256(f).encode())
    path = RESUME / f"{stage}-{digest.hexdigest()[:16]}.pt"
    if path.is_file() and distributed.is_main():
        print(f"resuming {stage} from {path}, saved by a run that stopped", file=sys.stderr)
    return train.Resume(path, p.compute.checkpoint_every, modules, generators or {}, streams or {})


def optimizer(model: torch.nn.Module, s: config.Optimised) -> torch.optim.AdamW:
    """AdamW at the section's peak rate, betas and weight decay."""
    return train.adamw(model, s.lr, s.weight_decay, (s.beta1, s.beta2))


def loop(p: Params, s: config.Optimised, dev: torch.device) -> dict:
    """The settings of `train.fit` from the section `s`: warmup, gradient clip, learning-rate floor,
    and the autocast type of `compute.precision` on `dev`."""
    autocast = train.pick_precision(p.compute.precision, dev)
    return {"warmup": s.warmup, "grad_clip": s.grad_clip, "lr_floor": s.lr_floor, "autocast": autocast}


def compiled(p: Params, module: torch.nn.Module) -> torch.nn.Module:
    """The module compiled by torch.compile if `compute.compile` asks for it (the same weights: the
    original is still the one saved), else the module itself."""
    return torch.compile(module) if p.compute.compile else module


def clear_resume(stage: str) -> None:
    """Delete the saved states of `stage`: it has finished, and its outputs are written."""
    for path in RESUME.glob(f"{stage}-*.pt"):
        path.unlink()


def device(p: Params, seed: int) -> torch.device:
    """The device to run on, with every generator seeded; under torchrun, this process's device, in
    its process group, with its share of the CPU's cores."""
    dev = train.pick_device(p.compute.device)
    share = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    train.setup(seed, p.compute.threads or share)
    return distributed.start(dev)


def workers(p: Params) -> int:
    return p.compute.workers or os.cpu_count() or 1


def write_json(path: Path, value) -> Path:
    """A JSON file, written atomically."""
    with writing(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2) + "\n")
    return path


def write_metrics(name: str, values: dict[str, float]) -> Path:
    """metrics/{name}.json: flat keys, numbers only."""
    return write_json(METRICS / f"{name}.json", {k: float(v) for k, v in values.items()})


@contextlib.contextmanager
def live(stage: str, total: int, description: str, shown: str = "loss", every: int = 10) -> Iterator:
    """DVCLive in dvclive/{stage} (never touching dvc.yaml) and a progress bar showing the loss `shown`;
    yields the `on_step(it, metrics)` callback of `train.fit`. Under torchrun only the first process logs."""
    from dvclive import Live

    if not distributed.is_main():
        yield lambda it, metrics: None
        return
    directory = Path("dvclive") / stage
    shutil.rmtree(directory, ignore_errors=True)
    with (
        Live(str(directory), dvcyaml=None, save_dvc_exp=False, report=None) as lv,
        progress(total, description) as advance,
    ):

        def on_step(it: int, metrics: dict[str, float]) -> None:
            if it % every == 0:
                lv.step = it
                for key, value in metrics.items():
                    lv.log_metric(f"train/{key}", value, plot=True)
            advance(info=f"{shown} {metrics[shown]:.4f}")

        yield on_step
