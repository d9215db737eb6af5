"""End to end: the real `dvc repro` on a tiny configuration, in a fresh git repository."""

import json
import math
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TINY, run, set_params

from vqgen import checkpoint, layout, requests
from vqgen.config import ConfigError
from vqgen.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]

OUTPUTS = [
    "data/raw/list_attr_celeba.txt",
    "data/images.h5",
    "data/tokens/train-00000-of-00004.h5",  # the train grids and their mirror images, 50 per shard
    "models/vqvae.safetensors",
    "models/ar.safetensors",
    "models/diffusion.safetensors",
    "models/evaluator.safetensors",
    "samples/ar.h5",
    "samples/diffusion.h5",
    "figures/reconstructions.png",
    "figures/ar_samples.png",
    "figures/ar_completion_half.png",
    "figures/ar_completion_quarter.png",
    "figures/ar_completion_first_token.png",
    "figures/diffusion_strip.png",
    "figures/diffusion.gif",
    "figures/diffusion_samples.png",
    "figures/report.md",
    "dvclive/train_vqvae/plots/metrics/train/loss.tsv",
    "dvclive/train_ar/plots/metrics/train/loss.tsv",
    "dvclive/train_vqvae/plots/images/preview/000002.jpg",  # reconstructions as it trains
    "dvclive/train_vqvae/plots/images/preview/000004.jpg",
    "dvclive/train_ar/plots/images/preview/000003.jpg",  # samples as it trains
    "dvclive/train_diffusion/plots/images/preview/000002.jpg",
]
TIMINGS = ("seconds", "seconds_per_image", "seconds_per_image_batch1")  # the only values that may change


def check_params_and_outs(repo: Path, read_log: Path, copied: list[str]) -> None:
    """What DVC is told is what the code does: every params.yaml key a stage read is among its
    params, and every file the stages wrote lies under a declared out (the copied sources aside)."""
    from vqgen import config

    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    reads = [json.loads(line) for line in read_log.read_text().splitlines()]
    assert [r["stage"] for r in reads] == list(stages)  # every stage ran once, in order
    for r in reads:
        declared = set(config.keys(stages[r["stage"]].get("params", [])))
        assert {k for k in r["read"] if not k.startswith("compute.")} <= declared, r["stage"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for s in stages.values() for o in s.get("outs", [])]
    for out in outs:
        assert (repo / out).exists(), out
    written = [
        str(f.relative_to(repo))
        for f in repo.rglob("*")
        if f.is_file() and f.relative_to(repo).parts[0] not in (".git", ".dvc") and "__pycache__" not in f.parts
    ]
    stray = [
        f
        for f in written
        if f not in copied
        and f != "dvc.lock"
        and not any(f == out or f.startswith(out.rstrip("/") + "/") for out in outs)
    ]
    assert stray == []


@pytest.mark.e2e
@pytest.mark.xdist_group("trained_run")
def test_dvc_repro_end_to_end(run_copy):
    repo, env = run_copy.path, run_copy.env
    dvc = [sys.executable, "-m", "dvc"]
    for out in OUTPUTS:
        assert (repo / out).exists(), out
    check_params_and_outs(repo, run_copy.read_log, run_copy.copied)
    metrics = {}
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for name in [Path(m).stem for m in yaml.safe_load((repo / "dvc.yaml").read_text())["metrics"]]:
        values = json.loads((repo / "metrics" / f"{name}.json").read_text())
        assert values and all(isinstance(v, float) and math.isfinite(v) for v in values.values()), name
        metrics[name] = values
    assert len(metrics) == len(stages)  # one per stage
    for name, values in metrics.items():  # each stage's wall time, so `dvc metrics show` shows where it goes
        assert 0 < values["seconds"] < 300, name
    assert metrics["data"]["train_images"] + metrics["data"]["val_images"] + metrics["data"]["test_images"] == 120
    seen = {f"rate_{n}" for n, a in metrics["evaluator"].items() if n.startswith("balanced_accuracy_") and a >= 0.8}
    seen = {n.replace("balanced_accuracy_", "") for n in seen}
    requested = {"cond_accuracy", "cond_seen", "cond_fd", "cond_accuracy_guidance1", "cond_fd_guidance1"}
    requested |= {f"cond_accuracy_{n}" for n in requests.MEASURED}
    for name in ("sample_ar", "sample_diffusion"):
        assert set(metrics[name]) == {
            "fd",
            "precision",
            "recall",
            "attr_tv",
            "seconds_per_image",
            "seconds_per_image_batch1",
            "mean_steps",
            "seconds",
            "null_fd",  # a conditioned prior's samples under the empty request, beside those of the data's attributes
            "null_recall",
            *seen,
            *requested,
        }
        sweep = json.loads((repo / "metrics/guidance" / f"{name[7:]}.json").read_text())
        configured = yaml.safe_load((repo / "params.yaml").read_text())[name[7:]]["guidance"]
        expected = {"sample_ar": [1.0, 1.5, 2.0, 3.0, 5.0, 5.5], "sample_diffusion": [1.0, 1.5, 2.0, 2.25, 3.0, 5.0]}
        assert [q["guidance"] for q in sweep] == expected[name]  # the sweep's scales and the configured one
        by_scale = {q["guidance"]: q for q in sweep}
        assert by_scale[configured]["cond_fd"] == metrics[name]["cond_fd"]
        assert by_scale[1.0]["cond_accuracy"] == metrics[name]["cond_accuracy_guidance1"]
        assert (repo / "figures" / f"{name[7:]}_requests.png").is_file()
    assert metrics["evaluator"]["seen_attributes"] == len(seen) and {f"test_{r}" for r in seen} < set(
        metrics["baselines"]
    )
    for prior in ("ar", "diffusion"):  # conditioned on the 40 attributes of the synthetic faces
        assert len(checkpoint.metadata(repo / layout.MODELS[prior])["attributes"]) == 40
    assert metrics["sample_diffusion"]["mean_steps"] == 3  # masked: exactly diffusion.steps
    frontier = json.loads((repo / "metrics/frontier/diffusion.json").read_text())
    assert [row["steps"] for row in frontier] == [3, 4, 8, 12, 16] and frontier[0]["prior"] == "masked"
    assert [row["mean_steps"] for row in frontier] == [3, 4, 8, 12, 16]  # a 4x4 grid: every step decides a token
    assert {"floor_fd", "rfd", "recon_precision", "recon_rates_off"} <= set(metrics["baselines"])
    assert set(metrics["report"]) == {
        *(f"rates_{off}_{prior}" for off in ("off", "surely_off") for prior in ("ar", "diffusion")),
        "rates_off_chance",
        "seconds",
    }
    n = yaml.safe_load((repo / "params.yaml").read_text())["evaluate"]["num_samples"]  # images a set
    for prior in ("ar", "diffusion"):  # the attributes whose rate is off the reconstructions' by more than a third
        rates = {a: metrics[f"sample_{prior}"][a] for a in seen}  # seen: rate_<attribute>
        recon = {a: metrics["baselines"][f"recon_{a}"] for a in seen}
        off = [a for a in seen if abs(rates[a] - recon[a]) > recon[a] / 3]
        assert metrics["report"][f"rates_off_{prior}"] == len(off), prior
        pooled = {a: (rates[a] + recon[a]) / 2 for a in off}
        surely = [a for a in off if abs(rates[a] - recon[a]) > 3 * (pooled[a] * (1 - pooled[a]) * 2 / n) ** 0.5]
        assert metrics["report"][f"rates_surely_off_{prior}"] == len(surely), prior
    assert 0 < metrics["report"]["rates_off_chance"] < len(seen)
    report = (repo / "figures/report.md").read_text()
    assert "autoregressive prior" in report and "masked diffusion prior" in report and "](diffusion.gif)" in report
    assert "Data and pipelines are up to date" in run([*dvc, "status"], repo, env)

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    run([*dvc, "repro", "--force"], repo, env)  # everything again, from the same inputs
    again = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for name, values in metrics.items():
        values_again = json.loads((repo / "metrics" / f"{name}.json").read_text())
        assert {k: v for k, v in values_again.items() if k not in TIMINGS} == {
            k: v for k, v in values.items() if k not in TIMINGS
        }, name
    for stage in ("train_vqvae", "encode", "train_ar", "train_diffusion", "train_evaluator"):
        assert again[stage]["outs"][0] == lock[stage]["outs"][0], stage  # the same weights, the same tokens
    tracked = run(["git", "status", "--porcelain", "--ignored"], repo, env)
    assert "models/" in tracked and "!! models/" in tracked  # stage outputs are git-ignored

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    set_params(repo / "params.yaml", {"diffusion": {"temperature": 1.5}})
    status = yaml.safe_load(run([*dvc, "status", "--json"], repo, env) or "{}")
    assert list(status) == ["sample_diffusion"]

    run([*dvc, "repro"], repo, env)
    after = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert [s for s in lock if lock[s] != after[s]] == ["sample_diffusion", "report"]
    assert json.loads((repo / "metrics/sample_diffusion.json").read_text()) != metrics["sample_diffusion"]
    # the README's `dvc exp run`s of the other processes: test_readme.py


@pytest.mark.e2e
def test_every_stage_on_a_folder_of_images_with_a_16x16_grid(tmp_path):
    """A folder source has no attributes: the judge learns rotations, and no attr_tv is reported.
    The tokenizer downsamples by 2 only, so both priors work on the blog's 16x16 grid."""
    import h5py
    import numpy as np
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        colour = rng.integers(0, 256, 3)
        img = np.full((40, 48, 3), colour, np.uint8)
        img[10:30, 12:36] = 255 - colour  # something with an up and a down
        img[10:14, 12:36] = 0
        Image.fromarray(img).save(photos / f"{i:02d}.png")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "params.yaml", project / "params.yaml")
    set_params(
        project / "params.yaml",
        {
            **TINY,
            "data": {
                "source": "folder",
                "folder": str(photos),
                "image_size": 32,
                "val_fraction": 0.2,
                "test_fraction": 0.2,
            },
            "vqvae": {**TINY["vqvae"], "downsample": 2},  # 32 px images, 16x16 tokens
            "evaluate": {**TINY["evaluate"], "num_samples": 9},  # the test split holds 9 of the 60
        },
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for stage in (
        "download",
        "prepare",
        "train_vqvae",
        "encode",
        "train_ar",
        "train_evaluator",
        "sample_ar",
        "train_diffusion",
        "sample_diffusion",
        "baselines",
        "report",
    ):
        run([sys.executable, "-c", "from stages.cli import app; app()", stage], project, env)
    evaluator = json.loads((project / "metrics/evaluator.json").read_text())
    assert list(evaluator) == ["val_accuracy", "world_size", "seconds"]  # of the rotation task
    sample = json.loads((project / "metrics/sample_ar.json").read_text())
    assert set(sample) == {"fd", "precision", "recall", "mean_steps", *TIMINGS}  # no attributes, no requests
    assert json.loads((project / "metrics/guidance/ar.json").read_text()) == []
    assert checkpoint.metadata(project / layout.AR)["attributes"] == []  # unconditional, exactly as before
    with pytest.raises(ConfigError, match=r"^the ar prior of this run was trained without attributes \(a folder"):
        Pipeline.from_run(project, "cpu").generate(2, "ar", attributes={"Male": 1})
    assert "| autoregressive prior |" in (project / "figures/report.md").read_text()
    with h5py.File(next((project / "data/tokens").glob("train-*.h5"))) as f:
        assert f["tokens"].shape[1:] == (16, 16)
    for prior in ("ar", "diffusion"):
        with h5py.File(project / "samples" / f"{prior}.h5") as f:
            assert f["tokens"].shape[1:] == (16, 16) and f["images"].shape[1:] == (32, 32, 3)
