"""What several tests share: a tiny trained run, made once per test run by the real `dvc repro` in a
fresh git repository, as a new user's clone would make it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker per core: two threads each would fight over it
    torch.set_num_threads(1)


LONGEST_FIRST = (  # the longest chains of work (in seconds, the judge's 350, the trained run's 270, then ~50 each)
    "tests/test_judge.py",
    "@trained_run",
    "test_every_stage_on_a_folder",
    "tests/test_distributed.py",
    "resumes_to_the_weights",
)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    """Start the longest tests first, so that the short ones fill in around them (pytest-xdist hands
    them out in this order: --no-loadscope-reorder); and refuse to run when pytest-xdist's group marks
    are ignored, as every worker would then train the run."""
    result = yield
    if getattr(config.option, "loadgroup", False):
        lost = [i.nodeid for i in items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
        if lost:
            raise pytest.UsageError(f"pytest-xdist did not group {lost[0]}; install pytest below 9.2.")
    items.sort(key=lambda i: next((n for n, part in enumerate(LONGEST_FIRST) if part in i.nodeid), len(LONGEST_FIRST)))
    return result


TINY = {
    "data": {"synthetic_count": 120, "image_size": 32},
    "vqvae": {
        "channels": 8,
        "downsample": 8,
        "codebook_size": 32,
        "code_dim": 8,
        "max_iters": 4,
        "disc_start": 2,
        "batch_size": 8,
    },
    "encode": {"shard_size": 50},
    "ar": {"n_layer": 1, "n_head": 2, "n_embd": 16, "max_iters": 3, "batch_size": 8},
    "diffusion": {"n_layer": 1, "n_head": 2, "n_embd": 16, "max_iters": 3, "batch_size": 8, "steps": 3},
    "sample": {"batch_size": 6},
    "evaluate": {"width": 4, "max_iters": 3, "batch_size": 8, "num_samples": 12},
    "compute": {"threads": 1, "workers": 2, "preview_every": 2},
}


def run(cmd, cwd, env) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def set_params(path: Path, changes: dict) -> None:
    params = yaml.safe_load(path.read_text())
    for section, values in changes.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def environment() -> dict[str, str]:
    """The environment a user's shell has: this interpreter's `vqgen` and `dvc` first on PATH."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "DVC_NO_ANALYTICS": "1",
        "COLUMNS": "200",
    }


@dataclass
class Run:
    path: Path  # the repository, after `dvc repro`
    env: dict[str, str]
    copied: list[str]  # the project's files, as git lists them
    read_log: Path  # the params.yaml keys each stage read, one JSON line per stage


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Run:
    """The project copied into a fresh git repository, set to the tiny configuration, committed,
    and run by `dvc repro`. Tests must not change it: take `run_copy` to change things. Mark the
    tests that use it `xdist_group("trained_run")`, so that one worker makes it for all of them."""
    base = tmp_path_factory.mktemp("trained")
    repo = base / "repo"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (repo / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, repo / f)
    for stale in ("dvc.lock", "metrics", "dvclive"):  # start from nothing, as a new user would
        path = repo / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    set_params(repo / "params.yaml", TINY)
    env = environment()
    run(["git", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "tiny"], repo, env)
    read_log = base / "read.jsonl"
    run([sys.executable, "-m", "dvc", "repro"], repo, env | {"VQGEN_PARAMS_READ": str(read_log)})
    return Run(repo, env, files, read_log)


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Run:
    """A copy of the trained run (git history and DVC cache included) to change as a test likes."""
    repo = tmp_path / "repo"
    shutil.copytree(trained_run.path, repo, symlinks=True)
    return Run(repo, trained_run.env, trained_run.copied, trained_run.read_log)
