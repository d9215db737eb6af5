"""Generating on request, on the tiny trained run: `vqgen generate`, `vqgen inpaint`, `vqgen info`
and the Python `Pipeline` they share with the sampling stages."""

import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from stages.cli import app
from vqgen import checkpoint, config, layout
from vqgen.config import ConfigError
from vqgen.data import samples, tokens
from vqgen.pipeline import MaskWarning, Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("trained_run")]  # they need the run `dvc repro` trains


def vqgen(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def snapshot(root):
    """Every file under root with its size and modification time: what a command may not touch."""
    return {str(f.relative_to(root)): (f.stat().st_size, f.stat().st_mtime_ns) for f in root.rglob("*") if f.is_file()}


def photos(folder):
    """Two photographs as a user has them: a JPEG taken sideways (EXIF orientation 6) and a wide PNG."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    sideways = Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(folder / "sideways.jpg", exif=exif)
    Image.fromarray(rng.integers(0, 256, (40, 90, 3), dtype=np.uint8)).save(folder / "wide.png")
    return [folder / "sideways.jpg", folder / "wide.png"]


def test_generate_writes_the_pipelines_images_where_asked_and_nothing_else(trained_run, tmp_path):
    before = snapshot(trained_run.path)
    out = tmp_path / "faces"
    r = vqgen("generate", "--run", trained_run.path, "--prior", "diffusion", "--n", 5, "--seed", 3, "--out", out)
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"diffusion-seed3-{i:03d}.png" for i in range(5)] + ["diffusion-seed3-grid.png"]
    assert str(out) in r.stdout
    assert "masked prior with the attributes of random training images, temperature 0.7, min_p 0.0, steps 3" in r.stdout
    pipe = Pipeline.from_run(trained_run.path, "cpu")
    drawn = pipe.generate(5, "diffusion", seed=3)
    for i in range(5):
        assert np.array_equal(np.asarray(Image.open(out / f"diffusion-seed3-{i:03d}.png")), drawn.images[i])
    r = vqgen("generate", "--run", trained_run.path, "--prior", "diffusion", "--n", 2, "--guidance", 4, "--out", out)
    assert r.exit_code == 0, r.output
    assert (
        "training images, temperature 0.7, min_p 0.0, steps 3, confidence_noise 4.5, order halton, guidance 4.0"
        in r.stdout
    )
    guided = pipe.generate(2, "diffusion", seed=0, mix_guidance=4.0)  # without --attr, --guidance guides the mix
    assert np.array_equal(np.asarray(Image.open(out / "diffusion-seed0-001.png")), guided.images[1])
    assert snapshot(trained_run.path) == before


def test_generate_on_request_draws_the_pipelines_guided_images(trained_run, tmp_path):
    out = tmp_path / "asked"
    args = ["--attr", "Eyeglasses=1", "--attr", "Male=0", "--guidance", 2, "--guidance-schedule", "linear"]
    r = vqgen("generate", "--run", trained_run.path, "-n", 4, "--seed", 2, "--out", out, *args)
    assert r.exit_code == 0, r.output
    assert (
        "the ar prior asked for Eyeglasses=1, Male=0, temperature 0.9, top_k 0, min_p 0.1, guidance 2.0, "
        "guidance_schedule linear" in r.stdout
    )
    pipe = Pipeline.from_run(trained_run.path, "cpu")
    request = {"Eyeglasses": 1, "Male": 0}
    drawn = pipe.generate(4, "ar", seed=2, attributes=request, guidance=2, guidance_schedule="linear")
    for i in range(4):
        assert np.array_equal(np.asarray(Image.open(out / f"ar-seed2-{i:03d}.png")), drawn.images[i])
    free = pipe.generate(4, "ar", seed=2, attributes={})  # nothing asked: the unconditional model
    assert not torch.equal(free.tokens, drawn.tokens)
    names = pipe.prior("ar").attributes
    vector = np.full(len(names), -1)
    vector[[names.index("Eyeglasses"), names.index("Male")]] = [1, 0]
    same = pipe.generate(4, "ar", seed=2, attributes=vector, guidance=2, guidance_schedule="linear")
    assert torch.equal(same.tokens, drawn.tokens)  # a mapping of names or the vector in the prior's order
    at = pipe.settings("ar")
    alone = pipe.prior("ar").sample(4, generator=torch.Generator().manual_seed(2), **at)  # no request at all
    assert torch.equal(alone.tokens.cpu(), free.tokens)


def test_completions_on_request_keep_the_given_tokens(trained_run):
    pipe = Pipeline.from_run(trained_run.path, "cpu")
    grids = torch.from_numpy(samples.read(trained_run.path / layout.SAMPLES / "diffusion.h5", "tokens")["tokens"][:3])
    known = torch.zeros(pipe.grid, dtype=torch.bool)
    known[:2] = True
    each = np.array([[1 if i == j else -1 for i in range(40)] for j in range(3)])  # its own request per grid
    # the tiny run's prior has hardly learned its attributes: a strong guidance makes a request show
    done = pipe.complete(grids, known, "diffusion", n=2, seed=1, attributes=each, guidance=20)
    free = pipe.complete(grids, known, "diffusion", n=2, seed=1)
    assert torch.equal(done.tokens[:, :2], grids.repeat_interleave(2, 0)[:, :2])
    assert not torch.equal(done.tokens, free.tokens)
    with pytest.raises(ConfigError, match=r"^attributes for 2 images; give one row for each of the 3\.$"):
        pipe.complete(grids, known, "diffusion", attributes=each[:2])


def test_the_pipeline_draws_what_the_sampling_stage_drew_with_the_same_seed_and_settings(trained_run):
    pipe = Pipeline.from_run(trained_run.path, "cpu")
    for prior in ("ar", "diffusion"):
        stored = samples.read(trained_run.path / layout.SAMPLES / f"{prior}.h5", "tokens", "images")
        n = len(stored["tokens"])
        drawn = pipe.generate(n, prior, seed=0)  # sample.seed and params.yaml's settings; the data's attributes
        assert torch.equal(drawn.tokens, torch.from_numpy(stored["tokens"]).long()), prior
        assert np.array_equal(drawn.images, stored["images"]), prior
        assert not torch.equal(pipe.generate(n, prior, seed=0, attributes={}).tokens, drawn.tokens), prior  # null
        assert not torch.equal(pipe.generate(n, prior, seed=1).tokens, drawn.tokens), prior
        # each image requests a training image's attributes, guided at mix_guidance (the request guidance is not it)
        gen = torch.Generator().manual_seed(0)
        asked = pipe.priors[prior].data_requests(n, gen)
        mix = yaml.safe_load((trained_run.path / "params.yaml").read_text())[prior]["mix_guidance"]
        assert mix != 1.0  # guided: else guidance would not be tested here
        again = pipe.generate(n, prior, seed=gen, attributes=asked.numpy(), guidance=mix, min_p=0.0)  # unfiltered
        assert torch.equal(again.tokens, drawn.tokens), prior
        gen = torch.Generator().manual_seed(0)
        asked = pipe.priors[prior].data_requests(n, gen)
        guided = pipe.generate(n, prior, seed=gen, attributes=asked.numpy(), guidance=4.0, min_p=0.0)
        assert torch.equal(pipe.generate(n, prior, seed=0, mix_guidance=4.0).tokens, guided.tokens), prior
        gen = torch.Generator().manual_seed(0)
        asked = pipe.priors[prior].data_requests(n, gen)
        hot = {"temperature": 3.0, "guidance": mix}  # min_p 1: only the likeliest codes, whatever the temperature
        filtered = pipe.generate(n, prior, seed=gen, attributes=asked.numpy(), min_p=1.0, **hot)
        unfiltered = pipe.generate(n, prior, seed=0, min_p=1.0, temperature=3.0)  # min_p is for requests
        assert torch.equal(unfiltered.tokens, pipe.generate(n, prior, seed=0, temperature=3.0).tokens), prior
        assert not torch.equal(unfiltered.tokens, filtered.tokens), prior
        assert torch.equal(pipe.generate(n, prior, seed=0, guidance=4.0).tokens, drawn.tokens), prior  # for requests
        assert not torch.equal(guided.tokens, drawn.tokens), prior
        shards = tokens.read_shards(trained_run.path / layout.TOKENS, "train", pipe.codebook_size, pipe.tokenizer_sha)
        assert np.array_equal(pipe.priors[prior].data_attributes.numpy(), shards["attributes"]), prior


def test_the_diffusion_samplers_passes_run_in_the_runs_precision_and_the_ar_samplers_steps_in_float32(trained_run):
    dtypes = {}
    for precision in ("fp32", "bf16"):
        params = config.load_params(trained_run.path / "params.yaml")
        params.set("compute.precision", precision)
        pipe = Pipeline.from_run(trained_run.path, "cpu", params=params)
        for prior in ("ar", "diffusion"):
            seen = []
            head = pipe.priors[prior].model.head
            hook = head.register_forward_hook(lambda module, args, out, seen=seen: seen.append(out.dtype))
            pipe.generate(2, prior, seed=0)
            hook.remove()
            dtypes[precision, prior] = set(seen)
    assert dtypes["fp32", "ar"] == dtypes["fp32", "diffusion"] == dtypes["bf16", "ar"] == {torch.float32}
    assert dtypes["bf16", "diffusion"] == {torch.bfloat16}


def test_settings_come_from_the_defaults_the_checkpoint_params_yaml_and_the_call_in_that_order(trained_run, tmp_path):
    from vqgen.models.transformer import Transformer, TransformerConfig

    run, prior = trained_run.path, tmp_path / "diffusion.safetensors"
    model, meta = checkpoint.load(run / layout.DIFFUSION, Transformer, TransformerConfig)
    guided = {"guidance": 2.25, "guidance_schedule": "constant"}
    assert meta["sampling"] == {
        "temperature": 0.7,
        "min_p": 0.0,
        "steps": 4,
        "confidence_noise": 4.5,
        "order": "halton",
        **guided,
    }
    meta.pop("config")
    checkpoint.save(prior, model, model.cfg, **{**meta, "sampling": {**meta["sampling"], "temperature": 0.5}})
    alone = Pipeline(run / layout.VQVAE, diffusion=prior, device="cpu")  # no params.yaml: the checkpoint's
    at = {"temperature": 0.5, "min_p": 0.0, "steps": 4, "confidence_noise": 4.5, "order": "halton", **guided}
    assert alone.settings("diffusion") == at
    # a conditioned checkpoint written without its training attributes: without a request, the empty one
    assert alone.priors["diffusion"].data_attributes is None
    unasked = alone.generate(3, "diffusion", seed=0).tokens
    assert torch.equal(unasked, alone.generate(3, "diffusion", seed=0, attributes={}).tokens)
    run_params = Pipeline.from_run(run, "cpu")
    assert run_params.settings("diffusion")["steps"] == 3  # the tiny run's params.yaml
    assert run_params.settings("diffusion", steps=5, temperature=None)["steps"] == 5
    with pytest.raises(ConfigError, match=r"^top_k is not a setting of the masked prior; its settings are"):
        run_params.settings("diffusion", top_k=3)
    with pytest.raises(ConfigError, match=r"^diffusion.temperature is -1.0; use a positive number.$"):
        run_params.settings("diffusion", temperature=-1)


def test_inpaint_keeps_the_given_tokens_and_writes_a_panel_per_photo(trained_run, tmp_path):
    before = snapshot(trained_run.path)
    given, out = photos(tmp_path / "photos"), tmp_path / "out"
    r = vqgen("inpaint", *given, "--run", trained_run.path, "--mask", "bottom", "-n", 2, "--out", out, "--seed", 1)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}-{suffix}.png" for stem in ("sideways", "wide") for suffix in ("0", "1", "panel")
    )
    assert "masked prior" in r.stdout and str(out) in r.stdout and "warning" not in r.output
    pipe = Pipeline.from_run(trained_run.path, "cpu")
    assert pipe.photo_crop() == 140 / 178  # the tiny run's synthetic faces, cropped as CelebA's
    imgs = np.stack([pipe.load_photo(p) for p in given])
    assert imgs.shape == (2, 32, 32, 3)
    grids = pipe.encode(imgs)
    known = torch.zeros(2, *pipe.grid, dtype=torch.bool)
    known[:, : pipe.grid[0] // 2] = True  # the top half is given
    done = pipe.complete(grids, known, "diffusion", n=2, seed=1)
    assert torch.equal(done.tokens[:, : pipe.grid[0] // 2], grids.repeat_interleave(2, 0)[:, : pipe.grid[0] // 2])
    assert np.array_equal(np.asarray(Image.open(out / "wide-1.png")), done.images[3])
    assert snapshot(trained_run.path) == before


def test_the_ar_prior_warns_once_under_a_mask_it_cannot_look_past(trained_run, tmp_path):
    given = photos(tmp_path / "photos")
    r = vqgen("inpaint", *given, "--run", trained_run.path, "--prior", "ar", "--mask", "left", "--out", tmp_path / "a")
    assert r.exit_code == 0, r.output
    assert r.stderr.count("warning: the AR prior draws tokens in raster order") == 1
    r = vqgen("inpaint", *given, "--run", trained_run.path, "--prior", "ar", "--out", tmp_path / "b")  # bottom
    assert r.exit_code == 0 and "warning" not in r.stderr
    pipe = Pipeline.from_run(trained_run.path, "cpu")
    with pytest.warns(MaskWarning):
        pipe.complete(pipe.generate(1, "ar").tokens, torch.tensor([[False] * 4, [True] * 4] * 2), "ar")


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--prior", "gan"], "error: --prior is 'gan'; use ar or diffusion."),
        (["generate", "--n", "0"], "error: --n is 0; use 1 or more."),
        (["generate", "--out", "figures/mine"], "error: --out figures/mine lies in figures/, which the pipeline"),
        (["generate", "--prior", "diffusion", "--top-k", "3"], "error: top_k is not a setting of the masked prior"),
        (["generate", "--temperature", "0"], "error: ar.temperature is 0.0; use a positive number."),
        (
            ["generate", "--attr", "Male=1", "--min-p", "2"],
            "error: ar.min_p is 2.0; use 0 (off) up to 1 (the likeliest only).",
        ),
        (
            ["generate", "--min-p", "0.2"],
            "error: --min-p 0.2 filters the draws of a request, and without --attr there is none; "
            "add --attr NAME=1 or NAME=0.",
        ),
        (
            ["generate", "--attr", "Eyeglases=1"],
            "error: 'Eyeglases' is not an attribute of this run's data; did you mean Eyeglasses?",
        ),
        (
            ["generate", "--attr", "glasses=1"],
            "error: 'glasses' is not an attribute of this run's data; did you mean Eyeglasses?",
        ),
        (
            ["generate", "--attr", "Eyeglasses=2"],
            "error: --attr 'Eyeglasses=2' is not NAME=1 or NAME=0; write e.g. --attr",
        ),
        (
            ["generate", "--attr", "Male"],
            "error: --attr 'Male' is not NAME=1 or NAME=0; write e.g. --attr Eyeglasses=1.",
        ),
        (["generate", "--guidance", "-1"], "error: ar.guidance is -1.0; use a scale of 0 or more (1: off)."),
        (
            ["generate", "--guidance-schedule", "cosine"],
            "error: ar.guidance_schedule is 'cosine'; use one of constant, linear.",
        ),
        (
            ["inpaint", "{photo}", "--attr", "Smile=1"],
            "error: 'Smile' is not an attribute of this run's data; did you mean Smiling?",
        ),
        (["inpaint", "{photo}", "--mask", "box:0,0,40,40"], "error: --mask box:0,0,40,40 does not lie inside the"),
        (["inpaint", "{photo}", "--mask", "box:1,2"], "error: --mask box:1,2 is not box:X0,Y0,X1,Y1 with four whole"),
        (["inpaint", "{photo}", "--mask", "{small}"], "error: --mask {small} is 10x10 pixels; use a mask of the photo"),
        (["inpaint", "{photo}", "--mask", "middle"], "error: --mask middle is neither a mask name nor a file; use"),
        (["inpaint", "{small}"], "error: {small} is 10x10 pixels; use a photo at least 32 pixels on its shorter side"),
        (["inpaint", "{text}"], "error: {text} cannot be read as an image (not a recognised image format); give a"),
        (["inpaint", "{photo}", "--prior", "gan"], "error: --prior is 'gan'; use ar or diffusion."),
        (["inpaint", "{photo}", "--n", "0"], "error: --n is 0; use 1 or more."),
    ],
)
def test_bad_input_is_one_sentence_and_writes_nothing(trained_run, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(trained_run.path)
    before = snapshot(trained_run.path)
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(tmp_path / "photo.png")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "small.png")
    (tmp_path / "notes.jpg").write_text("not a photo")
    names = {"photo": tmp_path / "photo.png", "small": tmp_path / "small.png", "text": tmp_path / "notes.jpg"}
    args = [a.format(**names) for a in args]
    out = [] if any(a == "--out" for a in args) else ["--out", tmp_path / "out"]
    r = vqgen(*args, *out)
    assert r.exit_code == 1
    assert r.stderr.startswith(message.format(**names)) and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists() and snapshot(trained_run.path) == before


def test_an_untrained_or_mismatched_model_is_one_sentence(run_copy, tmp_path):
    run = run_copy.path
    (run / layout.DIFFUSION).unlink()
    r = vqgen("generate", "--run", run, "--prior", "diffusion", "--out", tmp_path / "out")
    assert r.exit_code == 1
    assert r.stderr == f"error: {run / layout.DIFFUSION} not found; run `dvc repro train_diffusion` first.\n"
    assert "not trained; run `dvc repro train_diffusion`" in vqgen("info", "--run", run).stdout
    model, meta = checkpoint.load(run / layout.VQVAE, *_vqvae())
    meta.pop("config")
    checkpoint.save(run / layout.VQVAE, model, model.cfg, **meta, note="another tokenizer")
    r = vqgen("generate", "--run", run, "--out", tmp_path / "out")
    assert r.exit_code == 1 and "ar.safetensors was trained on the tokens of tokenizer" in r.stderr
    assert "run `vqgen train_ar` again." in r.stderr and not (tmp_path / "out").exists()
    assert "NOT the run's: retrain it" in vqgen("info", "--run", run).stdout
    shutil.rmtree(run / "models")
    r = vqgen("generate", "--run", run, "--out", tmp_path / "out")
    assert r.stderr == f"error: {run / layout.VQVAE} not found; run `dvc repro train_vqvae` first.\n"


def _vqvae():
    from vqgen.models.vqvae import VQVAE, VQVAEConfig

    return VQVAE, VQVAEConfig


def test_info_lists_every_model_with_its_size_grid_tokenizer_and_metrics(trained_run):
    r = vqgen("info", "--run", trained_run.path)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    sha = checkpoint.sha256(trained_run.path / layout.VQVAE)[:12]
    assert lines[0].startswith("tokenizer  models/vqvae.safetensors: VQ-VAE, 32x32 images as 4x4 grids of 32 codes")
    assert f"sha256 {sha}" in r.stdout and "rfd" in r.stdout
    assert "ar         models/ar.safetensors: ar prior, depth 1, width 16" in r.stdout
    assert "diffusion  models/diffusion.safetensors: masked prior, depth 1, width 16" in r.stdout
    assert r.stdout.count(f"trained on the tokens of tokenizer {sha} (the run's)") == 2
    fd = json.loads((trained_run.path / "metrics/sample_ar.json").read_text())["fd"]
    assert f"fd {fd:.3g}" in r.stdout
    on_request = "; on request guidance 2.25, guidance_schedule constant"
    assert (
        f"samples with temperature 0.7, min_p 0.0, steps 3, confidence_noise 4.5, order halton{on_request}" in r.stdout
    )
    assert "judge      models/evaluator.safetensors: attribute classifier" in r.stdout
    assert r.stdout.count("on request: 40 attributes, --attr NAME=0|1") == 2 and "on request: cond_accuracy" in r.stdout
    assert r.stdout.count("without --attr: the attributes of random training images, guidance 1.5") == 2
    assert "mean balanced accuracy" in r.stdout
