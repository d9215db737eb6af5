"""The `vqgen` command as a user meets it."""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from stages.cli import app

ROOT = Path(__file__).resolve().parents[1]
VQGEN = [sys.executable, "-c", "from stages.cli import app; app()"]


def vqgen(*args, cwd, **env) -> subprocess.CompletedProcess:
    """`vqgen ARGS` in `cwd`, run in this process (without starting torch again): its exit status,
    stdout and stderr. A bug raises here, with its traceback."""
    threads = torch.get_num_threads()
    try:
        with contextlib.chdir(cwd):
            r = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", **env}, catch_exceptions=False)
    finally:
        torch.set_num_threads(threads)  # a stage sets its own
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)


def vqgen_process(*args, cwd, **env) -> subprocess.CompletedProcess:
    """`vqgen ARGS` in a process of its own, as a shell starts it: for --help, whose defaults are read
    from ./params.yaml as the command starts, for torchrun, and for a process to kill."""
    return subprocess.run(
        [*VQGEN, *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", **env}
    )


@pytest.fixture
def project(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def judge_fewer(project, n=9):
    """Compare n images per set, so that a small synthetic data set leaves enough test images."""
    path = project / "params.yaml"
    path.write_text(path.read_text().replace("num_samples: 400", f"num_samples: {n}"))


def prepared_faces(project):
    """100 synthetic faces of 32 px, downloaded and prepared, judged on 9 images."""
    judge_fewer(project)
    path = project / "params.yaml"
    path.write_text(
        path.read_text().replace("synthetic_count: 8000", "synthetic_count: 100").replace("size: 64", "size: 32")
    )
    for stage in ("download", "prepare"):
        r = vqgen(stage, "--compute.workers", "1", cwd=project)
        assert r.returncode == 0, r.stderr


def test_help_lists_every_stage_of_the_pipeline(project):
    import yaml

    pipeline = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    commands = vqgen_process("--help", cwd=project).stdout.split("Commands:")[1]
    listed = [line.split()[0] for line in commands.splitlines() if line.strip()]
    assert [name for name in listed if name in pipeline] == pipeline and len(pipeline) >= 10
    assert {"generate", "inpaint", "info", "preset"} <= set(listed)


def test_stage_help_shows_defaults_from_params_yaml(project):
    text = (project / "params.yaml").read_text().replace("temperature: 0.7\n  min_p", "temperature: 0.55\n  min_p")
    (project / "params.yaml").write_text(text)
    out = vqgen_process("sample_diffusion", "--help", cwd=project).stdout
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
    judge_fewer(project)
    r = vqgen("download", "--data.synthetic_count", "100", "--compute.workers", "1", cwd=project)
    assert r.returncode == 0, r.stderr
    assert len(list((project / "data/raw/img_align_celeba").glob("*.jpg"))) == 100
    assert "synthetic_count: 8000" in (project / "params.yaml").read_text()  # the file is untouched


def test_a_yes_or_no_parameter_can_be_set_either_way(project):
    out = vqgen_process("train_vqvae", "--help", cwd=project).stdout
    assert "--vqvae.flip" in out and "--no-vqvae.flip" in out
    for flag in ("--vqvae.flip", "--no-vqvae.flip"):
        r = vqgen("train_vqvae", flag, cwd=project)  # parsed, then stops: there are no images yet
        assert r.returncode == 1 and "data/images.h5" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_folder_of_images_becomes_an_image_store(project, tmp_path):
    import json

    import h5py
    import numpy as np
    from PIL import Image

    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(60):
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(photos / "trip" / f"{i}.png")
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "notes.txt").write_text("not an image")
    Image.new("RGB", (8, 8)).save(photos / "tiny.png")
    text = (project / "params.yaml").read_text()
    text = text.replace("source: synthetic", "source: folder").replace("folder: ''", f"folder: {photos}")
    text = text.replace("val_fraction: 0.05", "val_fraction: 0.25").replace(
        "test_fraction: 0.05", "test_fraction: 0.25"
    )
    (project / "params.yaml").write_text(text)
    r = vqgen("download", "--compute.workers", "1", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "skipped empty.jpg: unreadable" in r.stderr and "skipped tiny.png: too small" in r.stderr
    r = vqgen("prepare", cwd=project)  # the judge would compare 400 test images
    test = int(r.stderr.split("the test split holds ")[-1].split()[0])
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == (
        f"error: the test split holds {test} images, fewer than the 400 the judge compares "
        f"(evaluate.num_samples); lower it, or add images in {Path('data/raw')}."
    )
    assert not (project / "data/images.h5").exists() and 9 <= test < 30
    r = vqgen("prepare", "--evaluate.num_samples", str(test), cwd=project)
    assert r.returncode == 0, r.stderr
    data = json.loads((project / "metrics/data.json").read_text())
    assert data["found"] == 63 and data["used"] == 60 and data["test_images"] == test
    assert data["skipped_unreadable"] == data["skipped_too_small"] == data["skipped_not_an_image"] == 1
    assert data["train_images"] + data["val_images"] + data["test_images"] == 60
    with h5py.File(project / "data/images.h5") as f:
        assert f["images"].shape == (60, 64, 64, 3) and f["attributes"].shape == (60, 0)
    (project / "params.yaml").write_text(text.replace("val_fraction: 0.25", "val_fraction: 0.01"))
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
    for args, env in (
        ((), {"TORCH_HOME": str(tmp_path / "torch")}),
        (("--evaluate.inception_weights", str(given)), {}),
    ):
        r = vqgen(stage, *args, cwd=project, **env)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines() == [
            f"error: {given if args else cached} is not a tensor-only Inception-v3 "
            "weights file (UnpicklingError); delete it, or replace it with the "
            "published weights."
        ]
        assert not marker.exists()


@pytest.mark.parametrize(
    "stage", ["train_vqvae", "encode", "train_ar", "train_evaluator", "sample_diffusion", "baselines"]
)
def test_more_samples_than_test_images_is_refused_before_any_work(project, stage):
    import numpy as np

    from vqgen.data import images

    store = images.ImageStoreWriter(project / "data/images.h5", 30, 16, ["Male"])
    store.append(np.zeros((30, 16, 16, 3), np.uint8), np.ones((30, 1)), np.repeat([0, 1, 2], [20, 5, 5]), np.arange(30))
    store.close()
    judge_fewer(project, 12)
    r = vqgen(stage, cwd=project)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "error: evaluate.num_samples is 12 but the test split holds 5 images; use at most 5, or more data."
    ]
    assert sorted(p.name for p in project.iterdir()) == ["data", "params.yaml"]


def test_celeba_images_that_do_not_decode_are_skipped_named_and_counted(project):
    import json

    import h5py

    judge_fewer(project)
    r = vqgen("download", "--data.synthetic_count", "100", "--compute.workers", "1", cwd=project)
    assert r.returncode == 0, r.stderr
    faces = project / "data/raw/img_align_celeba"
    (faces / "000002.jpg").write_bytes(b"")
    (faces / "000005.jpg").write_text("<!DOCTYPE html><html>quota exceeded</html>")
    whole = (faces / "000007.jpg").read_bytes()
    (faces / "000007.jpg").write_bytes(whole[: len(whole) // 3])
    (faces / "000009.jpg").unlink()
    r = vqgen("prepare", "--compute.workers", "2", cwd=project)
    assert r.returncode == 0, r.stderr
    warned = [line for line in r.stderr.splitlines() if line.startswith("warning: skipped")]
    assert warned == [
        f"warning: skipped {Path('data/raw/img_align_celeba') / name}: {why}"
        for name, why in (
            ("000002.jpg", "unreadable (empty file)"),
            ("000005.jpg", "unreadable (not a recognised image format)"),
            ("000007.jpg", "unreadable (truncated)"),
            ("000009.jpg", "missing"),
        )
    ]
    data = json.loads((project / "metrics/data.json").read_text())
    assert (data["found"], data["used"], data["skipped_unreadable"], data["skipped_missing"]) == (100, 96, 3, 1)
    assert data["train_images"] + data["val_images"] + data["test_images"] == 96
    with h5py.File(project / "data/images.h5") as f:
        assert sorted(set(range(100)) - set(f["source_index"][:].tolist())) == [1, 4, 6, 8]
        assert f["images"].shape[0] == 96 and f["images"][:].reshape(96, -1).std(1).min() > 0  # no blank rows


def test_celeba_images_that_leave_a_split_too_small_stop_prepare(project):
    import pandas as pd

    judge_fewer(project)
    r = vqgen("download", "--data.synthetic_count", "100", "--compute.workers", "1", cwd=project)
    assert r.returncode == 0, r.stderr
    raw = project / "data/raw"
    part = pd.read_csv(raw / "list_eval_partition.txt", sep=" ", header=None, names=["image", "split"])
    for name in part["image"][part["split"] == 2]:
        (raw / "img_align_celeba" / name).write_bytes(b"")
    r = vqgen("prepare", "--compute.workers", "1", cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"error: after leaving out {(part['split'] == 2).sum()} images that are missing or do not decode, "
            "the test split holds 0 images"
        )
    )
    assert not (project / "data/images.h5").exists() and not list((project / "data").glob(".*tmp*"))


def test_a_directory_it_may_not_write_to_is_one_sentence(project):
    if os.geteuid() != 0:
        target = project / "locked"
        target.mkdir(mode=0o555)
    else:  # root writes anywhere a user may not; the kernel's /sys refuses even root
        target = Path("/sys/fs")
        try:
            (target / "vqgen-probe").mkdir()
            (target / "vqgen-probe").rmdir()
            pytest.skip("no directory here refuses this user")
        except OSError:
            pass
    (project / "data").symlink_to(target)
    judge_fewer(project)
    r = vqgen("download", "--data.synthetic_count", "100", "--compute.workers", "1", cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: data/raw could not be written (") and line.endswith(".")


def test_encode_writes_exactly_the_tokenizers_codes_with_their_rows(project):
    import numpy as np
    import torch

    from vqgen import checkpoint
    from vqgen.data import images, tokens
    from vqgen.models import vqvae

    rng = np.random.default_rng(0)
    n = 36
    faces = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    attrs = rng.integers(0, 2, (n, 2)).astype(np.int8)
    split = rng.permutation(np.repeat([0, 1, 2], [18, 9, 9])).astype(np.uint8)  # splits interleaved
    source = rng.permutation(1000)[:n]
    store = images.ImageStoreWriter(project / "data/images.h5", n, 16, ["a", "b"])
    store.append(faces, attrs, split, source)
    store.close()
    torch.manual_seed(0)
    model = vqvae.VQVAE(vqvae.VQVAEConfig(channels=8, downsample=4, codebook_size=16, code_dim=8))
    model.train()(images.to_tensor(faces))  # codebook from data: codes differ between images
    checkpoint.save(project / "models/vqvae.safetensors", model.eval(), model.cfg)
    judge_fewer(project, 9)  # the test split holds 9
    r = vqgen("encode", "--encode.batch_size", "7", "--encode.shard_size", "4", cwd=project)
    assert r.returncode == 0, r.stderr
    for index, name in enumerate(images.SPLITS):
        rows = np.flatnonzero(split == index)
        got = tokens.read_shards(project / "data/tokens", name, 16)
        want = model.encode(images.to_tensor(faces[rows])).numpy()
        views = 1
        if name == "train":  # then the mirror images (encode.mirror, on by default), as their own grids
            mirrored = model.encode(images.to_tensor(faces[rows, :, ::-1])).numpy()
            assert not np.array_equal(mirrored, want[:, :, ::-1])  # a grid mirrored is not the mirror's grid
            want, views = np.concatenate([want, mirrored]), 2
        assert np.array_equal(got["tokens"], want) and len(np.unique(want)) > 1
        assert np.array_equal(got["attributes"], np.tile(attrs[rows], (views, 1)))
        assert np.array_equal(got["source_index"], np.tile(source[rows], views))
    r = vqgen("encode", "--no-encode.mirror", cwd=project)
    assert r.returncode == 0, r.stderr
    assert len(tokens.read_shards(project / "data/tokens", "train", 16)["tokens"]) == np.sum(split == 0)


def test_a_synthetic_set_too_small_for_the_judge_is_refused_before_any_work(project):
    r = vqgen("download", "--data.synthetic_count", "1000", cwd=project)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "error: data.synthetic_count is 1000, which leaves 98 val and 99 test images; use at least 4055 for "
        "evaluate.num_samples (400), or lower evaluate.num_samples."
    ]
    assert sorted(p.name for p in project.iterdir()) == ["params.yaml"]


def test_a_killed_training_stage_resumes_to_the_weights_of_an_uninterrupted_run(project):
    import signal
    import time

    prepared_faces(project)
    tiny = ["--vqvae.channels", "8", "--vqvae.codebook_size", "32", "--vqvae.code_dim", "8", "--vqvae.batch_size", "8"]
    tiny += [
        "--vqvae.max_iters",
        "60",
        "--vqvae.disc_start",
        "20",
        "--vqvae.adversarial_weight",
        "0.1",
        "--vqvae.flip",
    ]
    tiny += ["--compute.checkpoint_every", "10", "--compute.threads", "1"]
    model, scratch = project / "models/vqvae.safetensors", project / "scratch/resume"
    r = vqgen_process("train_vqvae", *tiny, cwd=project)
    assert r.returncode == 0, r.stderr
    whole = model.read_bytes()
    assert not list(scratch.iterdir())  # cleared on success

    def killed(*extra):
        model.unlink()
        run = subprocess.Popen([*VQGEN, "train_vqvae", *tiny, *extra], cwd=project, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not list(scratch.glob("train_vqvae-*.pt")) and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.01)
        run.send_signal(signal.SIGKILL)
        assert run.wait() == -signal.SIGKILL and not model.exists()  # killed part way, nothing written

    killed()
    r = vqgen_process("train_vqvae", *tiny, cwd=project)
    assert r.returncode == 0 and "resuming train_vqvae from scratch/resume/train_vqvae-" in r.stderr, r.stderr
    assert model.read_bytes() == whole and not list(scratch.iterdir())
    killed()
    r = vqgen_process("train_vqvae", *tiny, "--vqvae.lr", "0.002", cwd=project)  # another run: starts afresh
    assert r.returncode == 0 and "resuming" not in r.stderr and model.read_bytes() != whole
    assert not list(scratch.iterdir())


def test_a_preset_sets_its_values_in_params_yaml_and_keeps_the_rest(project):
    shutil.copytree(ROOT / "presets", project / "presets")
    before = (project / "params.yaml").read_text()
    r = vqgen("preset", "celeba64", cwd=project)
    assert r.returncode == 0, r.stderr
    after = (project / "params.yaml").read_text()
    assert "source: celeba\n" in after and "downsample: 4\n" in after and "n_layer: 12\n" in after
    assert "# Try one-off changes with `dvc exp run" in after  # comments survive
    assert [line for line in before.splitlines() if line.startswith("  seed:")] == [
        line for line in after.splitlines() if line.startswith("  seed:")
    ]
    r = vqgen("preset", "celeba65", cwd=project)
    assert r.returncode == 1 and (project / "params.yaml").read_text() == after
    assert r.stderr.strip() == (
        "error: preset 'celeba65' does not exist; use one of celeba128, celeba64 (files in presets/)."
    )


def test_every_option_name_is_whole_in_help_at_80_columns():
    import re

    from typer.testing import CliRunner

    from stages import cli
    from vqgen import config

    for name in (*cli.STAGES, "generate", "inpaint", "info"):
        r = CliRunner().invoke(cli.app, [name, "--help"], terminal_width=80, env={"COLUMNS": "80"})
        assert r.exit_code == 0, r.output
        assert max(len(line) for line in r.stdout.splitlines()) <= 80, name
        shown = set(re.findall(r"--[\w.-]+", r.stdout))
        if name in cli.STAGES:
            module = __import__(f"stages.{name}", fromlist=["PARAMS"])
            wanted = {f"--{key}" for key in cli.stage_keys(module) + config.keys(cli.RUNTIME)}
            assert wanted <= shown, (name, wanted - shown)
        assert "…" not in r.stdout, name
