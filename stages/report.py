"""Write figures/report.md: one table comparing the real floor, the reconstructions and every prior
on every measure; the speed-quality frontier; completions of both priors side by side; the figures."""

from __future__ import annotations

import json

from stages import common
from vqgen import layout, render
from vqgen.config import Params
from vqgen.data import samples

PARAMS = ("evaluate.num_samples",)  # shown in the report's notes
COLUMNS = (
    "fd",
    "precision",
    "recall",
    "attr_tv",
    "inception_fid",
    "bits_per_token",
    "mean_steps",
    "seconds_per_image",
    "seconds_per_image_batch1",
)
PRIORS = tuple(layout.MODELS)  # params.yaml sections of the priors
FIGURES = (
    ("VQ-VAE reconstructions (real | reconstruction)", "reconstructions.png"),
    ("Speed and quality: fd against seconds per image (sampling and decoding)", "frontier.png"),
    ("Completions from the first half of the token rows, by both priors", "completion_half.png"),
    ("Autoregressive samples", "ar_samples.png"),
    ("Completions from the first quarter of the token rows (autoregressive)", "ar_completion_quarter.png"),
    ("Completions from the first token (autoregressive)", "ar_completion_first_token.png"),
    ("Discrete-diffusion samples", "diffusion_samples.png"),
    ("Inpainting by the diffusion prior", "diffusion_inpainting.png"),
    ("Completions from the first quarter of the token rows (diffusion)", "diffusion_completion_quarter.png"),
    ("Reverse diffusion at a low and a high temperature", "diffusion_strip.png"),
    ("Reverse diffusion, animated", "diffusion.gif"),
)


def _metrics(name: str) -> dict[str, float]:
    return json.loads((layout.METRICS / f"{name}.json").read_text())


def run(p: Params) -> None:
    base = _metrics("baselines")
    rows = {
        "real images (val vs test): the floor": {
            k[len("floor_") :]: v for k, v in base.items() if k.startswith("floor_")
        },
        "VQ-VAE reconstructions": {
            "fd": base["rfd"],
            **{k[len("recon_") :]: v for k, v in base.items() if k.startswith("recon_")},
        },
    }
    frontier = {}
    for section in PRIORS:
        points = json.loads((layout.METRICS / "frontier" / f"{section}.json").read_text())
        name = "autoregressive prior" if section == "ar" else f"{points[0]['prior']} diffusion prior"
        rows[name] = {**_metrics(f"sample_{section}"), "bits_per_token": _metrics(section)["val_bits_per_token"]}
        frontier[name] = points
    render.frontier(layout.FIGURES / "frontier.png", frontier)
    ar = samples.read(layout.SAMPLES / "ar.h5", "completion_half", "reconstructions")
    diffusion = samples.read(layout.SAMPLES / "diffusion.h5", "completion_half")
    render.panels(
        layout.FIGURES / "completion_half.png",
        [
            [
                ("autoregressive", ar["completion_half"]),
                ("diffusion", diffusion["completion_half"]),
                ("VQ-VAE reconstructions", ar["reconstructions"]),
            ]
        ],
        cols=3,
        title="Completion from the first half of the token rows",
    )
    vq, judge = _metrics("vqvae"), _metrics("evaluator")
    notes = [
        f"Measured on {p.evaluate.num_samples} images per set against real test images, in the feature "
        f"space of the trained evaluator (validation accuracy {judge['val_accuracy']:.3f}): `fd` is a "
        "Fréchet distance there, not the Inception FID; lower is better, the floor is what real images score.",
        f"Tokenizer: validation PSNR {vq['val_psnr']:.2f} dB, {vq['codebook_usage']:.0%} of the codes used.",
        "Bits per token: validation cross-entropy. Only the autoregressive prior's is a likelihood of the "
        "data; a diffusion prior's is its training loss (masked: the hidden tokens at a random masking "
        "ratio; uniform: g(x_b) against x_a; uniform_x0: the clean grid at every position of a noised "
        "one), not comparable.",
        "Seconds per image: sampling at the sampling batch size, and at batch 1 (latency); mean steps: "
        "network passes per image.",
        "Inception FID: "
        + (
            "Inception-v3 pool features (torch-fidelity's port of the TensorFlow network where "
            "its weights were found, else torchvision's), against the same real test images."
            if "floor_inception_fid" in base
            else "not computed: no Inception-v3 weights on disk "
            "(set evaluate.inception_weights; nothing is ever downloaded)."
        ),
    ]
    render.report(layout.FIGURES / "report.md", "vqgen: comparison report", rows, COLUMNS, notes, FIGURES)
    common.write_metrics("report", {})
