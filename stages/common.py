"""What every stage shares: output paths, progress bars, DVCLive, metrics files, devices."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vqgen import train
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


def device(p: Params, seed: int) -> torch.device:
    train.setup(seed, p.compute.threads)
    return train.pick_device(p.compute.device)


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
    yields the `on_step(it, metrics)` callback of `train.fit`."""
    from dvclive import Live

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
