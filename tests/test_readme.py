"""The README cannot go stale: every command in its `sh` blocks and every `python` block runs, on a
copy of the tiny trained run, except the few that take more than a minute (named here, and checked
to still be in the README)."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, run
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("trained_run")]

LONGER = {  # commands that take more than a minute on the default run, or build what the test runs in
    "make run",
    "make test",
    "vqgen preset celeba64 && dvc exp run",
}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def commands() -> list[str]:
    lines = [line.split("  #")[0].strip() for block in blocks("sh") for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_readme_names_each_command_it_does_not_run():
    assert LONGER <= set(commands())
    assert len(set(commands()) - LONGER) >= 10 and blocks("python")


def test_every_readme_command_runs_on_a_trained_run(run_copy):
    repo, env = run_copy.path, run_copy.env
    run(["git", "add", "-A"], repo, env)  # `dvc exp run` wants the pipeline committed
    run(["git", "commit", "-qm", "trained"], repo, env)
    face = Image.open(next((repo / "data/raw/img_align_celeba").glob("*.jpg")))
    face.save(repo / "my_photo.jpg")
    mask = np.zeros((face.height, face.width), np.uint8)
    mask[face.height // 2 :] = 255
    Image.fromarray(mask).save(repo / "my_mask.png")  # at the photo's size
    for command in commands():
        if command in LONGER:
            continue
        r = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True)
        assert r.returncode == 0, f"{command}\n{r.stdout}\n{r.stderr}"
        if "diffusion.process=uniform " in command + " ":
            uniform = json.loads((repo / "metrics/sample_diffusion.json").read_text())
            assert 1 < uniform["mean_steps"] <= 201  # settles, or stops at the cap, then one clean-up pass
            frontier = json.loads((repo / "metrics/frontier/diffusion.json").read_text())
            assert {row["prior"] for row in frontier} == {"uniform"} and len(frontier) == 5
            assert "uniform diffusion prior" in (repo / "figures/report.md").read_text()
        if "diffusion.process=uniform_x0" in command:
            assert json.loads((repo / "metrics/sample_diffusion.json").read_text())["mean_steps"] == 12
            frontier = json.loads((repo / "metrics/frontier/diffusion.json").read_text())
            assert {row["prior"] for row in frontier} == {"uniform_x0"}
            assert [row["mean_steps"] for row in frontier] == [4, 8, 12, 16]
    assert len(list((repo / "faces").glob("*.png"))) == 2 * 17 and (repo / "completed/my_photo-panel.png").is_file()
    for i, block in enumerate(blocks("python")):
        r = subprocess.run([sys.executable, "-c", block], cwd=repo, env=env, capture_output=True, text=True)
        assert r.returncode == 0, f"python block {i}:\n{r.stderr}"
    assert (repo / "completed.png").is_file()
