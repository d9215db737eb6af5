"""Write figures/report.md: one table comparing the real floor, the reconstructions and every prior
on every measure, one of the rate of each attribute the judge sees; the speed-quality frontier and,
for priors on request, the guidance curve; completions of both priors side by side; the figures."""

from __future__ import annotations

import json

from stages import common
from vqgen import layout, render
from vqgen.config import Params
from vqgen.data import samples
from vqgen.evaluate import SURE, rates_off, rates_off_by_chance

PARAMS = ("evaluate.num_samples",)  # shown in the report's notes, and the counts behind the rates
COLUMNS = (
    "fd",
    "precision",
    "recall",
    "attr_tv",
    "null_fd",
    "cond_accuracy",
    "cond_fd",
    "rates_off",
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
    ("Faces on request: cond_fd against cond_accuracy over the guidance scale", "guidance.png"),
    ("Autoregressive samples on request", "ar_requests.png"),
    ("Discrete-diffusion samples on request", "diffusion_requests.png"),
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


def _judged(judge: dict[str, float]) -> str:
    """How well the judge does its task, in words."""
    if "balanced_accuracy" in judge:
        return (
            f"mean balanced accuracy {judge['balanced_accuracy']:.3f} on real test images over the "
            f"attributes; it sees {judge['seen_attributes']:.0f} of them"
        )
    return f"rotations told apart with accuracy {judge['val_accuracy']:.3f}"


def _rates(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """{attribute: rate} of the `<prefix>rate_<attribute>` entries of a metrics file."""
    start = f"{prefix}rate_"
    return {k[len(start) :]: v for k, v in metrics.items() if k.startswith(start)}


def run(p: Params) -> None:
    base, vq, judge = _metrics("baselines"), _metrics("vqvae"), _metrics("evaluator")
    rows = {
        "real images (val vs test): the floor": {
            k[len("floor_") :]: v for k, v in base.items() if k.startswith("floor_")
        },
        "VQ-VAE reconstructions": {
            "fd": base["rfd"],
            **{k[len("recon_") :]: v for k, v in base.items() if k.startswith("recon_")},
        },
    }
    rates = {"real test images": _rates(base, "test_"), "their VQ-VAE reconstructions": _rates(base, "recon_")}
    frontier, guidance, off = {}, {}, {}  # off: {section: (name, attributes off, those beyond noise)}
    reachable, n = rates["their VQ-VAE reconstructions"], p.evaluate.num_samples
    chance = rates_off_by_chance(reachable.values(), n, n)  # the count noise alone gives
    for section in PRIORS:
        points = json.loads((layout.METRICS / "frontier" / f"{section}.json").read_text())
        name = "autoregressive prior" if section == "ar" else f"{points[0]['prior']} diffusion prior"
        rows[name] = {**_metrics(f"sample_{section}"), "bits_per_token": _metrics(section)["val_bits_per_token"]}
        rates[name] = _rates(rows[name], "")
        if "balanced_accuracy" in judge:  # a judge of attributes (none seen: none off)
            off[section] = (name, rates_off(rates[name], reachable), rates_off(rates[name], reachable, counts=(n, n)))
            rows[name]["rates_off"] = len(off[section][1])
        frontier[name] = points
        sweep = json.loads((layout.METRICS / "guidance" / f"{section}.json").read_text())
        if sweep and all("cond_accuracy" in q for q in sweep):
            guidance[name] = sweep
    render.frontier(layout.FIGURES / "frontier.png", frontier)
    render.guidance(layout.FIGURES / "guidance.png", guidance)
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
    notes = [
        f"Measured on {p.evaluate.num_samples} images per set against real test images, in the feature "
        f"space of the trained evaluator ({_judged(judge)}): `fd` is a "
        "Fréchet distance there, not the Inception FID; lower is better, the floor is what real images score.",
        f"Tokenizer: validation PSNR {vq['val_psnr']:.2f} dB, {vq['codebook_usage']:.0%} of the codes used.",
        "Bits per token: validation cross-entropy. Only the autoregressive prior's is a likelihood of the "
        "data; a diffusion prior's is its training loss (masked: the hidden tokens at a random masking "
        "ratio; uniform: g(x_b) against x_a; uniform_x0: the clean grid at every position of a noised "
        "one), not comparable.",
        "A prior conditioned on attributes samples each image under the attributes of a random training "
        "image, guided at its `mix_guidance`: the attributes as often as in the data (as class-conditional "
        "models are measured on labels drawn from the data); `null_fd`: its samples under "
        "the empty request, the unconditional model that guidance pushes away from.",
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
    if any(rates.values()):
        notes.append(
            "Attribute rates: the share of each image set in which the judge calls each attribute it sees "
            "(balanced accuracy of at least 0.8 on real test images), unconditional samples; the "
            "reconstructions' rates are what a prior over these tokens can reach; `rates_off` counts a prior's "
            "attributes whose rate is off theirs by more than a third. With "
            f"{n} images a set, a prior drawing exactly the reconstructions' rates would be off in "
            f"{chance:.1f} on average, from sampling noise alone; off by "
            f"a third and by more than {SURE:g} standard errors of the difference (by chance "
            f"{rates_off_by_chance(reachable.values(), n, n, z=SURE):.2f}): "
            + "; ".join(f"{name} {len(surely)} ({', '.join(surely) or 'none'})" for name, _, surely in off.values())
            + "."
        )
    names = tuple(dict.fromkeys(k for r in rates.values() for k in r))
    tables = [(rows, COLUMNS)] + ([(rates, names)] if names else [])
    shown = tuple((caption, f) for caption, f in FIGURES if f != "guidance.png" or guidance)
    render.report(layout.FIGURES / "report.md", "vqgen: comparison report", tables, notes, shown)
    common.write_metrics(
        "report",
        {
            **{f"rates_off_{section}": len(names) for section, (_, names, _) in off.items()},
            **{f"rates_surely_off_{section}": len(surely) for section, (_, _, surely) in off.items()},
            **({"rates_off_chance": chance} if off else {}),
        },
    )
