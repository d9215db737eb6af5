"""The `vqgen` command: one subcommand per pipeline stage, and `generate`, `inpaint` and `info` for
a trained run.

Each stage's subcommand has an option for every parameter its stage reads (`--ar.lr 3e-4`), whose
shown default is the value in ./params.yaml; options override params.yaml for one run. Help is
click's plain layout, which wraps at any width and never cuts an option's name.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import typer
import yaml

from stages import common, user
from vqgen import config, distributed, files, layout

STAGES = (
    "download",
    "prepare",
    "train_vqvae",
    "encode",
    "train_ar",
    "train_diffusion",
    "train_evaluator",
    "sample_ar",
    "sample_diffusion",
    "baselines",
    "report",
)
READ_LOG = "VQGEN_PARAMS_READ"  # names a file each stage appends the params.yaml keys it read to (for tests)
TRAINING = {"train_vqvae": "vqvae", "train_ar": "ar", "train_diffusion": "diffusion", "train_evaluator": "evaluate"}
RUNTIME = ("compute",)  # how to run, not what to compute: not a DVC dependency

app = typer.Typer(
    help=__doc__.split("\n\n")[0].replace("\n", " ") + " Run the stages, in order, with `dvc repro`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _current_params() -> config.Params:
    """The values --help shows as defaults: ./params.yaml where it is readable, else built-in defaults."""
    try:
        return config.load_params("params.yaml")
    except (config.ConfigError, OSError):
        return config.Params()


def stage_keys(module) -> list[str]:
    """The dotted params.yaml keys a stage reads (its DVC params), without the runtime section."""
    return config.keys(module.PARAMS)


def _help(key: str) -> str:
    section, name = key.split(".")
    field = {f.name: f for f in dataclasses.fields(config.SECTIONS[section])}[name]
    return field.metadata.get("help", "")


class _Reads:
    """A params.yaml section that notes the name of every key read from it."""

    def __init__(self, name: str, section, read: set[str]):
        self._name, self._section, self._read = name, section, read

    def __getattr__(self, key: str):
        method = getattr(type(self._section), key, None)
        if callable(method):  # a method of the section reads its keys through this object
            return functools.partial(method, self)
        self._read.add(f"{self._name}.{key}")
        return getattr(self._section, key)


def _noting_reads(p: config.Params) -> set[str]:
    """Make every section of p note the keys read from it; returns the set they are noted in."""
    read: set[str] = set()
    for section in config.SECTIONS:
        setattr(p, section, _Reads(section, getattr(p, section), read))
    return read


def _command(name: str, module):
    keys = stage_keys(module) + config.keys(RUNTIME)
    shown = _current_params()
    params = [
        inspect.Parameter(
            "params_file",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Path,
            default=typer.Option(Path("params.yaml"), "--params", help="parameter file"),
        )
    ]
    for key in keys:
        section, field = key.split(".")
        kind = config.field_type(config.SECTIONS[section], field)
        names = [f"--{key}/--no-{key}"] if kind is bool else [f"--{key}"]  # a flag can be turned off too
        default = getattr(getattr(shown, section), field)
        option = typer.Option(None, *names, help=f"{_help(key)}  [default: {default}]", show_default=False)
        params.append(
            inspect.Parameter(
                key.replace(".", "__"),
                inspect.Parameter.KEYWORD_ONLY,
                annotation=kind | None,
                default=option,
            )
        )

    def command(**kwargs) -> None:
        with common.reported():
            p = config.load_params(kwargs.pop("params_file"))
            for ident, value in kwargs.items():
                if value is not None:
                    p.set(ident.replace("__", "."), value)
            p.validate()
            if _distribute(name, p):
                return
            if name not in ("download", "prepare") and layout.IMAGES.exists():
                common.check_test_split(p)  # a later stage would fail at the judge, after all the training
            read = _noting_reads(p) if os.environ.get(READ_LOG) else None
            module.run(p)
            worker = not distributed.is_main()
            if distributed.launched():  # leave together: a process that exits while another still uses
                torch.distributed.barrier()  # the group can abort at exit ("terminate called ...")
                distributed.stop()
            if not worker:
                common.clear_resume(name)
            if read is not None:
                with open(os.environ[READ_LOG], "a") as log:
                    log.write(json.dumps({"stage": name, "read": sorted(read)}) + "\n")
            if worker:  # it wrote nothing; the interpreter's teardown, where gloo's threads can still
                sys.stdout.flush(), sys.stderr.flush()  # abort a process, is not needed
                os._exit(0)

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = name
    return command


def _distribute(name: str, p: config.Params) -> bool:
    """Run this command again under torchrun, in `compute.nproc` processes, if it trains a model and
    is not already one of them; True once they have finished. Several machines: start torchrun
    yourself on each (`torchrun --nnodes ... -m stages.cli train_ar`)."""
    if name not in TRAINING:
        if distributed.launched():
            raise config.ConfigError(f"{name} trains no model; run it as one process, without torchrun.")
        return False
    processes = distributed.planned() if distributed.launched() else p.compute.nproc
    section = TRAINING[name]
    if getattr(p, section).batch_size % processes:
        raise config.ConfigError(
            f"{section}.batch_size is {getattr(p, section).batch_size}; use a multiple of the {processes} "
            "training processes (compute.nproc), so that each gets the same share of every batch."
        )
    if distributed.launched() or processes == 1:
        return False
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    threads = str(p.compute.threads or max(1, (os.cpu_count() or 1) // processes))
    done = subprocess.run(
        [*torchrun, "-m", "stages.cli", *sys.argv[1:]], env={"OMP_NUM_THREADS": threads, **os.environ}
    )
    if done.returncode:
        raise typer.Exit(done.returncode)
    return True


PRESETS = Path("presets")


@app.command()
def preset(
    name: str = typer.Argument(..., help="a preset in presets/: celeba64 or celeba128"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="parameter file to change"),
) -> None:
    """Set the parameter file to a preset's values, keeping every other value and the comments; then
    run `dvc exp run` (or `dvc repro`)."""
    with common.reported():
        source = PRESETS / f"{name}.yaml"
        if not source.is_file():
            known = ", ".join(sorted(f.stem for f in PRESETS.glob("*.yaml"))) or "none here"
            raise config.ConfigError(f"preset {name!r} does not exist; use one of {known} (files in {PRESETS}/).")
        config.load_params(source)  # its keys are known and its values sound
        changes = config.dotted(yaml.safe_load(source.read_text()))
        config.load_params(params_file)
        text = config.rewrite(params_file.read_text(), changes)
        config.parse_params(yaml.safe_load(text))  # a preset that would break the file changes nothing
        with files.writing(params_file) as tmp:
            tmp.write_text(text)
    typer.echo(f"{params_file}: {len(changes)} values set from {source}; now run `dvc exp run` (or `dvc repro`).")


for _name in STAGES:
    _module = importlib.import_module(f"stages.{_name}")
    app.command(name=_name, help=_module.__doc__)(_command(_name, _module))
for _user_command in (user.generate, user.inpaint, user.info):
    app.command()(_user_command)


if __name__ == "__main__":  # torchrun starts each training process as `python -m stages.cli <stage>`
    app()
