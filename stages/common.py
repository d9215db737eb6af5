"""What every stage shares: progress bars, DVCLive, metrics files (with the stage's wall time), devices."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vqgen import checkpoint, config, distributed, judge, layout, train
from vqgen.checkpoint import CheckpointError
from vqgen.config import ConfigError, Params
from vqgen.data import FetchError, FolderError, LayoutError
from vqgen.data.tokens import ShardError
from vqgen.files import writing
from vqgen.weights import WeightsError

DISK_ERRORS = {  # errno of a file that cannot be written -> what to do about it
    errno.EACCES: "give this user write access to it, or run from a copy of the project you own",
    errno.EPERM: "give this user write access to it, or run from a copy of the project you own",
    errno.EROFS: "run from a copy of the project on a writable disk",
    errno.ENOSPC: "free some space on that disk",
    errno.EDQUOT: "free some space within your quota",
}
USER_ERRORS = (
    ConfigError,
    LayoutError,
    FetchError,
    FolderError,
    ShardError,
    FileNotFoundError,
    FloatingPointError,
    WeightsError,
    CheckpointError,
)
STARTED = time.perf_counter()  # when this stage's process started: its metrics record the seconds since


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """A user's error as one line on stderr and exit status 1: a bad value, a missing or damaged input,
    a file that cannot be written; anything else is a bug and keeps its traceback."""
    try:
        yield
    except USER_ERRORS as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    except OSError as e:
        if e.errno not in DISK_ERRORS:
            raise
        typer.echo(
            f"error: {e.filename or 'a file'} could not be written ({e.strerror}); {DISK_ERRORS[e.errno]}.", err=True
        )
        raise typer.Exit(1) from None


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
    return judge.test_images(layout.IMAGES, p.evaluate.num_samples)


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
    path = layout.RESUME / f"{stage}-{digest.hexdigest()[:16]}.pt"
    if path.is_file() and distributed.is_main():
        print(f"resuming {stage} from {path}, saved by a run that stopped", file=sys.stderr)
    return train.Resume(path, p.compute.checkpoint_every, modules, generators or {}, streams or {})


def loop(p: Params, s: config.Optimised, dev: torch.device) -> dict:
    """The settings of `train.fit` from the section `s`: warmup, gradient clip, learning-rate floor,
    the autocast type of `compute.precision` on `dev` (see `train.pick_precision`), and
    `compute.preview_every`."""
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
    for path in layout.RESUME.glob(f"{stage}-*.pt"):
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
    """metrics/{name}.json: flat keys, numbers only, and `seconds`, the stage's wall time so far."""
    values = {**values, "seconds": time.perf_counter() - STARTED}
    return write_json(layout.METRICS / f"{name}.json", {k: float(v) for k, v in values.items()})


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
