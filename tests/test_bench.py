"""Benchmarks still run: the tiny CPU version of bench/gpu.py, whose FLOP count MFU rests on, and the
measurement of the attributes a tokenizer keeps; the width benchmark's peer is the default tokenizer."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vqgen import checkpoint, config
from vqgen.data import images
from vqgen.models import vqvae
from vqgen.priors import PRIORS

ROOT = Path(__file__).resolve().parents[1]


def bench_json(script: str, *args: str) -> dict:
    """What `python bench/{script}.py args` prints, parsed; it must exit 0."""
    r = subprocess.run([sys.executable, f"bench/{script}.py", *args], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def study(run, script: str, *args: str) -> subprocess.CompletedProcess:
    """`python bench/{script}.py args --run <the trained run>`, finished, its output captured."""
    command = [sys.executable, f"bench/{script}.py", *args, "--run", str(run.path)]
    return subprocess.run(command, cwd=ROOT, env=run.env, capture_output=True, text=True)


def study_rows(run, script: str, *args: str) -> list[dict]:
    """The JSON rows a study on the trained run prints; it must exit 0."""
    r = study(run, script, *args)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_the_gpu_benchmark_runs_tiny_on_a_cpu_and_counts_the_transformers_flops_exactly():
    out = bench_json("gpu", "--tiny", "--device", "cpu", "--steps", "2")
    assert out["tiny"] and set(out["models"]) == {"vqvae", "ar", "diffusion", "evaluator"}
    layers, width, codes, batch, tokens = 2, 32, 64, 4, 16 * 16  # bench/gpu.py's tiny celeba64
    forward = 2 * (12 * layers * width**2 + width * codes) * batch * tokens + 4 * layers * batch * tokens**2 * width
    for name in ("ar", "diffusion"):
        model = out["models"][name]
        assert model["flops_per_step"] == 3 * forward, name  # backward costs twice the forward
        assert model["tokens_per_second"] == model["tokens_per_step"] / model["seconds_per_step"]
    for name, model in out["models"].items():  # the tokenizer's and the judge's share of the chip too
        assert model["of_matmul"] == model["flop_per_second"] / out["matmul_flop_per_second"], name


def test_the_gpu_benchmark_trains_the_convolutional_models_as_their_stages_do():
    gpu = load_bench("gpu")
    work = gpu.workloads(gpu.preset_params("celeba64", tiny=True), torch.device("cpu"))
    for name in ("vqvae", "evaluator"):
        kernels = [w for w in work[name][0].parameters() if w.dim() == 4]
        assert kernels and all(w.is_contiguous(memory_format=torch.channels_last) for w in kernels), name
    tokenizer, losses, *_ = work["vqvae"]
    assert {"perceptual", "adversarial", "d_loss"} <= set(losses(tokenizer))  # the discriminator on


def test_the_shared_discriminator_pass_saves_at_least_one_discriminator_forward_a_step():
    out = bench_json("discriminator_pass", "--steps", "1", "--rounds", "1")
    p = config.Params()
    x = torch.rand(p.vqvae.batch_size, 3, p.data.image_size, p.data.image_size)
    with FlopCounterMode(display=False) as counter:
        vqvae.Discriminator()(x)
    saved = out["former_gflop_per_step"] - out["shared_gflop_per_step"]
    assert saved * 1e9 >= counter.get_total_flops() > 0
    assert out["speedup"] == out["former_seconds_per_step"] / out["shared_seconds_per_step"]
    # one pass over both batches: the same passes, but a backward through the images' half too
    assert out["one_pass_gflop_per_step"] > out["shared_gflop_per_step"]
    assert out["one_pass_speedup"] == out["shared_seconds_per_step"] / out["one_pass_seconds_per_step"]


def load_bench(name: str):
    """bench/{name}.py as a module, importing its sibling modules as it does when run as a script."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


def test_an_attribute_is_kept_where_the_image_has_it_the_probe_sees_it_and_still_sees_it_after():
    kept = load_bench("kept_attributes").kept
    y = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0], [0, 0, 0]], bool)  # glasses, earrings, beard
    on_real = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]], bool)  # image 2's glasses unseen
    on_recon = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0], [1, 0, 1]], bool)
    out = kept(y, on_real, on_recon)
    assert out["glasses"] == {"kept": 0.5, "false_alarms": 1.0}  # of images 0 and 1; image 3 has none
    assert out["earrings"] == {"kept": 1.0, "false_alarms": 0.0}
    assert out["beard"] == {"kept": 0.0, "false_alarms": 1 / 3}


def test_the_kept_attributes_measurement_runs_on_a_store_and_reports_every_tokenizer(tmp_path):
    names = ["Eyeglasses", "Wearing_Earrings", "No_Beard"]
    rng = np.random.default_rng(0)
    split = np.array([0] * 24 + [1] * 16 + [2] * 4, np.uint8)
    attrs = rng.integers(0, 2, (len(split), 3)).astype(np.int8)
    writer = images.ImageStoreWriter(tmp_path / "images.h5", len(split), 16, names)
    writer.append(rng.integers(0, 256, (len(split), 16, 16, 3), np.uint8), attrs, split, np.arange(len(split)))
    writer.close()
    tokenizers = []
    for i, k in enumerate((16, 32)):
        torch.manual_seed(i)
        model = vqvae.VQVAE(vqvae.VQVAEConfig(channels=8, downsample=4, codebook_size=k, code_dim=8))
        tokenizers.append(str(tmp_path / f"tok{k}.safetensors"))
        checkpoint.save(tokenizers[-1], model, model.cfg, image_size=16)
    out = bench_json("kept_attributes", *tokenizers, "--store", str(tmp_path / "images.h5"), "--steps", "2")
    val = attrs[split == 1] > 0
    assert out["val_images"] == 16
    assert out["with_attribute"] == {
        "glasses": val[:, 0].sum(),
        "earrings": val[:, 1].sum(),
        "beard": (~val[:, 2]).sum(),
    }
    assert list(out["tokenizers"]) == tokenizers
    assert all(set(t) == {"glasses", "earrings", "beard"} for t in out["tokenizers"].values())


def test_the_width_benchmark_times_the_pipelines_default_tokenizer_and_the_widths_it_names():
    bench = load_bench("tokenizer_width")
    default = vqvae.VQVAE(config.Params().vqvae.model_config())  # as `train_vqvae` builds it from params.yaml
    assert tuple(default.cfg.width(level) for level in range(default.cfg.levels + 1)) == bench.DEFAULT
    assert bench.tokenizer(bench.DEFAULT).state_dict().keys() == default.state_dict().keys()
    assert all(
        a.shape == b.shape
        for a, b in zip(bench.tokenizer(bench.DEFAULT).state_dict().values(), default.state_dict().values())
    )
    for widths, _ in bench.ROWS:
        encoder = bench.tokenizer(widths).encoder.net
        convs = [m for m in encoder if isinstance(m, torch.nn.Conv2d)]  # the stem, then one per downsampling
        assert tuple(c.out_channels for c in convs[: len(widths)]) == widths


def test_the_ar_benchmark_checks_its_sampler_against_recomputation_and_both_draw_alike():
    bench = load_bench("ar_sampling")
    torch.manual_seed(0)
    prior = PRIORS["ar"].create(64, (4, 4), n_layer=2, n_head=2, n_embd=32)
    prior.model.eval()
    ours = prior.sample(5, generator=torch.Generator().manual_seed(0), temperature=1.0).tokens
    theirs = bench.recompute(prior.model, (4, 4), 5, torch.Generator().manual_seed(0))
    assert torch.equal(ours, theirs)  # bench/ar_sampling.py's same_tokens is 1
    other = bench.recompute(prior.model, (4, 4), 5, torch.Generator().manual_seed(1))
    assert not torch.equal(ours, other)


@pytest.mark.e2e
@pytest.mark.xdist_group("trained_run")
def test_the_conditioning_study_trains_the_runs_prior_again_to_the_same_samples_and_its_unconditioned_peer(trained_run):
    before = checkpoint.sha256(trained_run.path / "models/ar.safetensors")
    rows = study_rows(trained_run, "conditioning", "--prior", "ar", "--seeds", "0")
    assert [(row["seed"], row["condition"]) for row in rows] == [(0, True), (0, False)]
    run = json.loads((trained_run.path / "metrics/sample_ar.json").read_text())
    report = json.loads((trained_run.path / "metrics/report.json").read_text())
    conditioned, plain = rows
    # the run's own prior (seed 0, conditioned), trained again: the same samples, so the same measures
    assert [conditioned[k] for k in ("fd", "recall", "null_fd")] == [run[k] for k in ("fd", "recall", "null_fd")]
    assert conditioned["rates_off"] == report["rates_off_ar"] == len(conditioned["off"])
    assert "null_fd" not in plain and plain["val_loss"] != conditioned["val_loss"]
    assert checkpoint.sha256(trained_run.path / "models/ar.safetensors") == before  # arms train in scratch copies


@pytest.mark.e2e
@pytest.mark.xdist_group("trained_run")
def test_the_mix_guidance_study_reproduces_the_runs_samples_at_its_scale_and_under_the_empty_request(trained_run):
    rows = study_rows(trained_run, "mix_guidance", "--scales", "1.5", "3")
    assert [(row["prior"], row["seed"], row["mix_guidance"]) for row in rows] == [
        (prior, seed, scale) for prior in ("ar", "diffusion") for seed in (0, 1) for scale in (None, 1.5, 3.0)
    ]
    report = json.loads((trained_run.path / "metrics/report.json").read_text())
    for prior in ("ar", "diffusion"):
        run = json.loads((trained_run.path / f"metrics/sample_{prior}.json").read_text())
        null, default, stronger = (row for row in rows if row["prior"] == prior and row["seed"] == 0)
        assert (default["fd"], default["recall"]) == (run["fd"], run["recall"])  # sample.seed 0 at mix_guidance 1.5
        assert default["rates_off"] == report[f"rates_off_{prior}"]
        assert (null["fd"], null["recall"]) == (run["null_fd"], run["null_recall"])
        assert stronger["fd"] != default["fd"]
        other = next(row for row in rows if row["prior"] == prior and row["seed"] == 1 and row["mix_guidance"] == 1.5)
        assert other["fd"] != default["fd"]  # another sampling seed, other samples


def test_the_attention_benchmark_times_the_fused_kernel_and_the_written_out_product_which_agree():
    rows = bench_json("attention", "--batch", "2", "--tokens", "9", "--repeats", "1")["rows"]
    assert [(w["work"], w["precision"]) for w in rows][::2] == [
        ("training, bidirectional", "fp32"),
        ("training, causal", "fp32"),
        ("sampling step", "fp32"),
    ]
    assert all(w["max_difference"] < (1e-5 if w["precision"] == "fp32" else 0.05) for w in rows)


def test_the_group_norm_benchmark_times_torchs_norm_and_ours_at_each_shape_and_the_whole_step():
    rows = bench_json("group_norm", "--batch", "2", "--repeats", "1")["rows"]
    for precision in ("fp32", "bf16"):
        mine = [w for w in rows if w["precision"] == precision]
        assert mine[-1]["work"] == "tokenizer step"
        ops = mine[:-1]
        # among them the tokenizer's first level and its deepest
        assert {w["work"] for w in ops} >= {"GroupNorm [2, 16, 64, 64]", "GroupNorm [2, 64, 8, 8]"}
        assert all(w["max_difference"] < (1e-5 if precision == "fp32" else 0.05) for w in ops)


def test_the_precision_benchmark_times_each_kind_of_work_in_fp32_and_in_bf16():
    report = bench_json("precision", "--repeats", "1", "--batch", "8")
    assert [w["work"] for w in report["rows"]] == [
        "tokenizer training step",
        "judge training step",
        "ar prior training step",
        "masked prior training step",
        "ar sampling batch",
        "masked sampling batch",
    ]
    assert all(w["bf16_speedup"] == pytest.approx(w["fp32_s"] / w["bf16_s"]) for w in report["rows"])


@pytest.mark.e2e
@pytest.mark.xdist_group("trained_run")
def test_the_prior_arms_study_retrains_the_runs_prior_to_its_measures_and_an_arm_with_other_settings(trained_run):
    arms = ("--arm", "", "--arm", "lr=0.01 max_iters=2")
    rows = study_rows(trained_run, "prior_arms", "--prior", "ar", *arms, "--seeds", "0", "1")
    assert [(row["arm"], row.get("seed")) for row in rows] == [
        ("", 0),
        ("", 1),
        ("", None),
        ("lr=0.01 max_iters=2", 0),
        ("lr=0.01 max_iters=2", 1),
        ("lr=0.01 max_iters=2", None),
    ]
    own, other, mean = rows[:3]
    run = json.loads((trained_run.path / "metrics/sample_ar.json").read_text())
    # the run's own settings train its prior again: its samples and requests measure as the sampling stage's
    assert [own[k] for k in ("fd", "recall", "cond_accuracy", "cond_fd")] == [
        run[k] for k in ("fd", "recall", "cond_accuracy", "cond_fd")
    ]
    assert mean["fd"] == pytest.approx((own["fd"] + other["fd"]) / 2)
    assert mean["fd_se"] == pytest.approx(abs(own["fd"] - other["fd"]) / 2)  # the standard error of two
    assert mean["rates_off"] == pytest.approx((len(own["off"]) + len(other["off"])) / 2)
    assert rows[5]["val_loss"] != mean["val_loss"]

    bad = study(trained_run, "prior_arms", "--prior", "ar", "--arm", "lr")
    assert bad.returncode != 0 and "'lr' is not key=value" in bad.stderr


def test_the_shares_of_called_images_are_taken_among_those_asked_present_and_absent():
    shares = load_bench("followed_attributes").shares
    assert shares(np.array([1, 0, 1, 1]), np.array([1, 1, 0, 0])) == (0.5, 1.0)
    present, absent = shares(np.array([1, 0]), np.array([0, 0]))
    assert np.isnan(present) and absent == 0.5  # nobody asked for it: no share


@pytest.mark.e2e
@pytest.mark.xdist_group("trained_run")
def test_the_followed_attributes_study_draws_the_sampling_stages_samples_and_rows_for_the_seen_attributes(trained_run):
    rows = study_rows(trained_run, "followed_attributes", "--seeds", "0", "1")
    assert [(row["prior"], row["seed"]) for row in rows] == [(p, s) for p in ("ar", "diffusion") for s in (0, 1)]
    seen = json.loads((trained_run.path / "metrics/evaluator.json").read_text())["seen_attributes"]
    for row in rows:
        assert len(row["attributes"]) == seen
        for a in row["attributes"]:
            reachable = a["recon_present"] - a["recon_absent"]
            gap = (a["asked_present"] - a["asked_absent"]) / reachable if reachable else float("nan")
            assert a["followed"] == pytest.approx(gap, nan_ok=True)
    for prior in ("ar", "diffusion"):  # sample.seed 0: the requests and draws of the sampling stage
        run = json.loads((trained_run.path / f"metrics/sample_{prior}.json").read_text())
        first, other = (row for row in rows if row["prior"] == prior)
        assert first["fd"] == run["fd"] and other["fd"] != run["fd"]
