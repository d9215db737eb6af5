"""The `vqgen` command as a user meets it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VQGEN = [sys.executable, "-c", "from stages.cli import app; app()"]


def vqgen(*args, cwd, **env):
    return subprocess.run([*VQGEN, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **env})


@pytest.fixture
def project(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def test_help_lists_every_stage(project):
    out = vqgen("--help", cwd=project).stdout
    for stage in ("download", "prepare", "train_vqvae", "encode", "train_ar", "train_diffusion",
                  "train_evaluator", "sample_ar", "sample_diffusion"):
        assert stage in out


def test_stage_help_shows_defaults_from_params_yaml(project):
    text = (project / "params.yaml").read_text().replace("temperature: 1.0\n  extra_noise", "temperature: 0.55\n  extra_noise")
    (project / "params.yaml").write_text(text)
    out = vqgen("sample_diffusion", "--help", cwd=project).stdout
    assert "--diffusion.temperature" in out and "0.55" in out
    assert "--diffusion.steps" in out and "--evaluate.num_samples" in out
    assert "--diffusion.lr" not in out  # a training key: not read by this stage


def test_bad_option_is_one_clear_line_and_writes_nothing(project):
    r = vqgen("download", "--data.source", "imagenet", cwd=project)
    assert r.returncode == 1
    assert r.stderr.strip() == "error: data.source is 'imagenet'; use one of synthetic, celeba, folder."
    assert sorted(p.name for p in project.iterdir()) == ["params.yaml"]


def test_missing_inputs_are_a_clear_error(project):
    r = vqgen("encode", cwd=project)
    assert r.returncode == 1 and "run the stage that trains it first" in r.stderr
    assert "Traceback" not in r.stderr


def test_options_override_params_for_one_run(project):
    r = vqgen("download", "--data.synthetic_count", "12", "--compute.workers", "1", cwd=project)
    assert r.returncode == 0, r.stderr
    assert len(list((project / "data/raw/img_align_celeba").glob("*.jpg"))) == 12
    assert "synthetic_count: 8000" in (project / "params.yaml").read_text()  # the file is untouched


def test_a_folder_of_images_becomes_an_image_store(project, tmp_path):
    import json

    import h5py
    import numpy as np
    from PIL import Image

    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(photos / "trip" / f"{i}.png")
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "notes.txt").write_text("not an image")
    Image.new("RGB", (8, 8)).save(photos / "tiny.png")
    text = (project / "params.yaml").read_text()
    text = text.replace("source: synthetic", "source: folder").replace("folder: ''", f"folder: {photos}")
    text = text.replace("val_fraction: 0.05", "val_fraction: 0.2").replace("test_fraction: 0.05", "test_fraction: 0.2")
    (project / "params.yaml").write_text(text)
    r = vqgen("download", "--compute.workers", "1", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "skipped empty.jpg: unreadable" in r.stderr and "skipped tiny.png: too small" in r.stderr
    r = vqgen("prepare", cwd=project)
    assert r.returncode == 0, r.stderr
    data = json.loads((project / "metrics/data.json").read_text())
    assert data["found"] == 33 and data["used"] == 30
    assert data["skipped_unreadable"] == data["skipped_too_small"] == data["skipped_not_an_image"] == 1
    assert data["train_images"] + data["val_images"] + data["test_images"] == 30
    with h5py.File(project / "data/images.h5") as f:
        assert f["images"].shape == (30, 64, 64, 3) and f["attributes"].shape == (30, 0)
    (project / "params.yaml").write_text(text.replace("val_fraction: 0.2", "val_fraction: 0.01"))
    r = vqgen("download", "--compute.workers", "1", cwd=project)
    assert r.returncode == 1 and "fall in the val split (data.val_fraction 0.01)" in r.stderr


def test_a_quota_page_instead_of_celeba_is_one_clear_line(project, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "img_align_celeba.zip").write_text("<!DOCTYPE html><html>Too many users</html>")
    r = vqgen("download", "--data.source", "celeba", "--data.celeba_dir", str(mirror), cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "set data.celeba_dir" in r.stderr
    assert not (project / "data").exists() or not any((project / "data").iterdir())


@pytest.mark.parametrize("stage", ["sample_ar", "sample_diffusion", "baselines"])
def test_a_planted_pickle_in_place_of_inception_weights_never_runs(project, tmp_path, stage):
    from test_evaluate import plant

    from vqgen import evaluate

    marker = tmp_path / "pwned"
    cached = plant(tmp_path / "torch" / "hub" / "checkpoints" / evaluate.FIDELITY_WEIGHTS, marker)
    given = plant(tmp_path / "weights.pth", marker)
    for args, env in (((), {"TORCH_HOME": str(tmp_path / "torch")}), (("--evaluate.inception_weights", str(given)), {})):
        r = vqgen(stage, *args, cwd=project, **env)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines() == [f"error: {given if args else cached} is not a tensor-only Inception-v3 "
                                                 "weights file (UnpicklingError); delete it, or replace it with the "
                                                 "published weights."]
        assert not marker.exists()
