"""Training in two CPU processes (torchrun, gloo) equals one process with the same global batch."""

import json
import shutil

import pytest
import torch
from test_cli import ROOT, prepared_faces, vqgen, vqgen_process

TINY_VQVAE = ["--vqvae.channels", "8", "--vqvae.codebook_size", "32", "--vqvae.code_dim", "8"]
TINY_VQVAE += ["--vqvae.batch_size", "8", "--vqvae.max_iters", "12", "--vqvae.disc_start", "4"]
TINY_VQVAE += ["--vqvae.adversarial_weight", "0.1", "--vqvae.flip"]
TINY_VQVAE += ["--compute.precision", "fp32"]  # bf16 rounds half a batch otherwise than the whole: compare float32
TINY_AR = ["--ar.n_layer", "1", "--ar.n_head", "2", "--ar.n_embd", "16", "--ar.max_iters", "12", "--ar.batch_size", "8"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    prepared_faces(root)
    return root


def trained(project, stage, args, nproc):
    r = vqgen_process(stage, *args, "--compute.nproc", str(nproc), "--compute.threads", "1", cwd=project)
    assert r.returncode == 0, r.stderr
    name = {"train_vqvae": "vqvae", "train_ar": "ar"}[stage]
    metrics = json.loads((project / "metrics" / f"{name}.json").read_text())
    shutil.copy(project / "models" / f"{name}.safetensors", project / f"{name}-{nproc}.safetensors")
    return project / f"{name}-{nproc}.safetensors", metrics


def test_two_processes_train_the_tokenizer_and_the_ar_prior_as_one_does(project):
    from vqgen import checkpoint
    from vqgen.data import images, tokens
    from vqgen.models import vqvae
    from vqgen.models.transformer import Transformer, TransformerConfig

    one, m1 = trained(project, "train_vqvae", TINY_VQVAE, 1)
    two, m2 = trained(project, "train_vqvae", TINY_VQVAE, 2)
    assert (m1["world_size"], m2["world_size"]) == (1, 2)
    assert m2["val_psnr"] == pytest.approx(m1["val_psnr"], rel=1e-4)
    a, b = (checkpoint.load(path, vqvae.VQVAE, vqvae.VQVAEConfig)[0] for path in (one, two))
    # the codebook follows the EMA statistics of the whole batch in both
    assert torch.allclose(a.quantizer.codebook, b.quantizer.codebook, atol=1e-5)
    # the same function (a bias just before a per-channel GroupNorm has no gradient but rounding
    # noise, which Adam amplifies, so weights are compared through what they compute; the edge-weighted
    # pixel loss scales some pixels' gradients, and their rounding noise, by up to 1 + edge_weight x
    # their contrast over the mean: 5e-4 is a sixteenth of one 8-bit level)
    x = images.to_tensor(images.Split(project / "data/images.h5", "val")[:8])
    assert torch.equal(a.encode(x), b.encode(x))
    assert torch.allclose(a.decode(a.encode(x)), b.decode(a.encode(x)), atol=5e-4)
    r = vqgen("encode", cwd=project)
    assert r.returncode == 0, r.stderr
    # in float32: bf16 rounds the two summation orders' differences far above what is compared here
    fp32 = [*TINY_AR, "--compute.precision", "fp32"]
    one, m1 = trained(project, "train_ar", fp32, 1)
    two, m2 = trained(project, "train_ar", fp32, 2)
    a, b = (checkpoint.load(path, Transformer, TransformerConfig)[0].eval() for path in (one, two))
    # compared through what they compute, as the tokenizers are: the attention's key bias has no
    # gradient but rounding noise (a softmax ignores a shift shared by all of a query's logits), which
    # Adam turns into steps that differ with the CPU's summation order. Logits of about 0.3 agree to
    # 7e-8; training on half the batch moves them by 0.08
    seq = torch.from_numpy(tokens.read_shards(project / "data/tokens", "val")["tokens"][:16]).flatten(1).long()
    idx = torch.cat([torch.full_like(seq[:, :1], a.cfg.vocab_size - 1), seq[:, :-1]], dim=1)  # the start token first
    with torch.no_grad():
        assert torch.allclose(a(idx)[0], b(idx)[0], atol=1e-6)
    assert m2["train_loss"] == pytest.approx(m1["train_loss"], rel=1e-4)  # the whole batch's loss, logged once


def test_a_batch_that_does_not_split_evenly_is_refused(project):
    r = vqgen("train_ar", "--ar.batch_size", "7", "--compute.nproc", "2", cwd=project)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "error: ar.batch_size is 7; use a multiple of the 2 training processes (compute.nproc), "
        "so that each gets the same share of every batch."
    ]
