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
    the autocast type of `compute.precision` on `dev`, and `compute.preview_every`."""
    autocast = train.pick_precision(p.compute.precision, dev)
    return {
        "warmup": s.warmup,
        "grad_clip": s.grad_clip,
        "lr_floor": s.lr_floor,
        "autocast": autocast,
        "preview_every": p.compute.preview_every,
    }


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


def memory_limit(p: Params) -> int:
    """Bytes of images a training split may keep in memory (`compute.memory_gb`)."""
    return int(p.compute.memory_gb * 2**30)


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
def evaluating(*modules: torch.nn.Module) -> Iterator[None]:
    """The modules in eval mode, without gradients, and back in their modes after."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


class Log:
    """What a training stage reports as it goes: `log(it, metrics)` is `train.fit`'s `on_step` (DVCLive
    curves, the progress bar), `log.preview(step)` its `preview` (an image grid logged to DVCLive)."""

    def __init__(self, live=None, advance=None, shown: str = "loss", every: int = 10, images=None):
        self.live, self.advance, self.shown, self.every, self.images = live, advance, shown, every, images

    def __call__(self, it: int, metrics: dict[str, float]) -> None:
        if self.live is None:
            return
        if it % self.every == 0:
            self.live.step = it
            for key, value in metrics.items():
                self.live.log_metric(f"train/{key}", value, plot=True)
        self.advance(info=f"{self.shown} {metrics[self.shown]:.4f}")

    def preview(self, step: int) -> None:
        if self.live is not None and self.images is not None:
            self.live.log_image(f"preview/{step:06d}.jpg", self.images())  # a quarter of a PNG's size


@contextlib.contextmanager
def live(stage: str, total: int, description: str, shown: str = "loss", every: int = 10, images=None) -> Iterator[Log]:
    """DVCLive in dvclive/{stage} (never touching dvc.yaml) and a progress bar showing the loss `shown`;
    yields the stage's `Log`. `images()`, if given, makes the uint8 (H, W, 3) grid a preview logs.
    Under torchrun only the first process logs."""
    from dvclive import Live

    if not distributed.is_main():
        yield Log()
        return
    directory = Path("dvclive") / stage
    shutil.rmtree(directory, ignore_errors=True)
    with (
        Live(str(directory), dvcyaml=None, save_dvc_exp=False, report=None) as lv,
        progress(total, description) as advance,
    ):
        yield Log(lv, advance, shown, every, images)
