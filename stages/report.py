"""Write figures/report.md: one table comparing the real floor, the reconstructions and both
priors on every measure, and the figures."""

from __future__ import annotations

import json

from vqgen import render
from vqgen.config import Params

from stages import common

PARAMS = ("evaluate.num_samples",)  # shown in the report's notes
COLUMNS = ("fd", "precision", "recall", "attr_tv", "inception_fid", "bits_per_token", "seconds_per_image")
FIGURES = (("VQ-VAE reconstructions (real | reconstruction)", "reconstructions.png"),
           ("Autoregressive samples", "ar_samples.png"),
           ("Completions from the first half of the token rows", "ar_completion_half.png"),
           ("Completions from the first quarter of the token rows", "ar_completion_quarter.png"),
           ("Completions from the first token", "ar_completion_first_token.png"),
           ("Discrete-diffusion samples", "diffusion_samples.png"),
           ("Reverse diffusion, from uniform random tokens (left) to samples (right)", "diffusion_strip.png"),
           ("Reverse diffusion, animated", "diffusion.gif"))


def _metrics(name: str) -> dict[str, float]:
    return json.loads((common.METRICS / f"{name}.json").read_text())


def run(p: Params) -> None:
    base = _metrics("baselines")
    rows = {
        "real images (val vs test): the floor": {k[len("floor_"):]: v for k, v in base.items() if k.startswith("floor_")},
        "VQ-VAE reconstructions": {"fd": base["rfd"], **{k[len("recon_"):]: v for k, v in base.items()
                                                          if k.startswith("recon_")}},
        "autoregressive prior": {**_metrics("sample_ar"), "bits_per_token": _metrics("ar")["val_bits_per_token"]},
        "discrete-diffusion prior": {**_metrics("sample_diffusion"),
                                     "bits_per_token": _metrics("diffusion")["val_bits_per_token"]},
    }
    vq, judge = _metrics("vqvae"), _metrics("evaluator")
    notes = [f"Measured on {p.evaluate.num_samples} images per set against real test images, in the feature "
             f"space of the trained evaluator (validation accuracy {judge['val_accuracy']:.3f}): `fd` is a "
             "Fréchet distance there, not the Inception FID; lower is better, the floor is what real images score.",
             f"Tokenizer: validation PSNR {vq['val_psnr']:.2f} dB, {vq['codebook_usage']:.0%} of the codes used.",
             "Bits per token: validation cross-entropy; for the diffusion prior it is that of g(x_b) against "
             "x_a, not a likelihood of the data, so the two are not comparable.",
             "Inception FID: " + ("Inception-v3 pool features (torch-fidelity's port of the TensorFlow network where "
                                  "its weights were found, else torchvision's), against the same real test images."
                                  if "floor_inception_fid" in base else "not computed: no Inception-v3 weights on disk "
                                  "(set evaluate.inception_weights; nothing is ever downloaded).")]
    render.report(common.FIGURES / "report.md", "vqgen: comparison report", rows, COLUMNS, notes, FIGURES)
