"""Sampling shared by every prior: unconditional samples (of a conditioned prior: each requesting the
attributes of a random training image, guided at `mix_guidance`; and under the empty request) timed
at the sampling batch size and at batch 1, completions of test images from their first token rows,
and the judge's measures; for diffusion priors also inpainting, reverse-diffusion strips at two
temperatures, the GIF, and the speed-quality frontier over the number of steps; for a prior
conditioned on attributes, the figure of requests and cond_accuracy and cond_fd over a sweep of
guidance scales."""

from __future__ import annotations

import numpy as np
import torch

from stages import common
from vqgen import layout, masks, render, requests
from vqgen.config import Params
from vqgen.data import samples, tokens
from vqgen.judge import Judge
from vqgen.pipeline import Pipeline

FRONTIER_STEPS = (4, 8, 12, 16)
STRIP_TEMPERATURES = (0.7, 1.2)  # the blog's Figs 5 and 6: a low and a high temperature
SHOWN = 9  # test images completed and inpainted, one 3x3 grid


def measure(pipe: Pipeline, section: str, judge: Judge, settings: dict, p: Params) -> dict:
    """{steps: (generation, measures)} of unconditional samples at the configured settings and, for a
    diffusion prior, at every number of steps of the frontier (the AR prior's key is None). A
    conditioned prior's samples request the attributes of random training images (`Pipeline.generate`)."""
    runs, n = {}, p.evaluate.num_samples
    frontier = sorted({*FRONTIER_STEPS, settings["steps"]}) if "steps" in settings else [None]
    for steps in frontier:
        at = settings if steps is None else {**settings, "steps": steps}
        label = f"sampling {pipe.priors[section].name} prior" + ("" if steps is None else f", {steps} steps")
        with common.progress(n, label) as advance:
            out = pipe.generate(n, section, seed=p.sample.seed, progress=advance, **at)
        mean_steps = float(out.steps.float().mean())
        runs[steps] = (out, {**judge.measure(out.images), "seconds_per_image": out.seconds, "mean_steps": mean_steps})
    return runs


def diffusion_figures(pipe: Pipeline, section: str, settings: dict, test: torch.Tensor, recon, seed: int) -> None:
    """Inpainting under four masks, reverse-diffusion strips at a low and a high temperature, the GIF."""
    prior, dev = pipe.priors[section], pipe.device
    gen = torch.Generator(device=dev).manual_seed(seed)
    rows = []
    for name, known in masks.figure_masks(prior.grid, len(test), seed).items():
        done = pipe.complete(test, known, section, seed=gen, **settings)
        given = (f"{name}: given", pipe.decode(test.masked_fill(~known, -1)))
        rows.append([given, ("completions", done.images), ("VQ-VAE reconstructions", recon)])
    render.panels(
        layout.FIGURES / f"{section}_inpainting.png",
        rows,
        cols=3,
        title=f"Inpainting by the {prior.name} diffusion prior",
    )
    strips = []
    for temperature in STRIP_TEMPERATURES:
        way = pipe.generate(6, section, seed=seed, trajectory=True, **{**settings, "temperature": temperature})
        strips.append(
            (
                f"temperature {temperature}: {float(way.steps.float().mean()):.0f} steps",
                render.strip_image([pipe.decode(x) for x in way.trajectory]),
            )
        )
    render.side_by_side(
        layout.FIGURES / f"{section}_strip.png",
        [strips],
        title="Reverse diffusion, from the start (left) to samples (right)",
    )
    way = pipe.generate(16, section, seed=seed, trajectory=True, **settings)
    render.gif(layout.FIGURES / f"{section}.gif", [pipe.decode(x) for x in render.pick(way.trajectory, 60)])


def on_request(pipe: Pipeline, section: str, judge: Judge, settings: dict, seed: int) -> dict:
    """The figure of requests (of a prior without attributes: its row of no request), and cond_accuracy
    and cond_fd at every guidance scale of the sweep: the metrics at the configured scale and at 1
    (unguided); the sweep goes to metrics/guidance/ (empty without attributes)."""
    prior = pipe.priors[section]
    rows = requests.figure_rows(pipe, section, 8, seed, **settings)
    render.labelled_rows(
        layout.FIGURES / f"{section}_requests.png",
        rows,
        title=f"The {prior.name} prior on request (guidance {settings['guidance']:g}, {settings['guidance_schedule']})",
    )
    if not prior.attributes:
        common.write_json(layout.METRICS / "guidance" / f"{section}.json", [])
        return {}
    sweep, scales = {}, sorted({*requests.SWEEP, settings["guidance"]})
    with common.progress(len(scales), f"requests to the {prior.name} prior, guidance {scales}") as advance:
        for scale in scales:
            at = {**settings, "guidance": scale}
            sweep[scale] = {
                **requests.cond_accuracy(pipe, section, judge, requests.per_class(judge.n), seed, **at),
                "cond_fd": requests.cond_fd(pipe, section, judge, seed, **at),
            }
            advance()
    common.write_json(
        layout.METRICS / "guidance" / f"{section}.json",
        [
            {"prior": prior.name, "guidance": g, **{k: m[k] for k in ("cond_fd", "cond_accuracy") if k in m}}
            for g, m in sweep.items()
        ],
    )
    unguided = {f"{k}_guidance1": v for k, v in sweep[1.0].items() if k in ("cond_accuracy", "cond_fd")}
    return {**sweep[settings["guidance"]], **unguided}


def run(p: Params, section: str) -> None:
    s = p.sample
    dev = common.device(p, s.seed)
    judge = Judge.of_run(p, dev)  # first: bad Inception weights stop the stage before any work
    pipe = Pipeline.from_run(".", dev, params=p, priors=(section,))
    prior, settings = pipe.prior(section), pipe.settings(section)

    runs = measure(pipe, section, judge, settings, p)
    result, measured = runs[settings.get("steps")]
    measured |= judge.rates(judge.view(result.images))
    if prior.attributes:  # and under the empty request, the null of guidance
        with common.progress(p.evaluate.num_samples, f"sampling {prior.name} prior, no request") as advance:
            null = pipe.generate(
                p.evaluate.num_samples, section, seed=s.seed, progress=advance, attributes={}, **settings
            )
        measured |= {f"null_{k}": v for k, v in judge.measure(null.images).items() if k in ("fd", "recall")}
    measured["seconds_per_image_batch1"] = pipe.latency(section, s.seed, **settings)
    measured |= on_request(pipe, section, judge, settings, s.seed)
    render.save_image(layout.FIGURES / f"{section}_samples.png", render.grid(result.images[:36], 6, scale=2))
    common.write_json(
        layout.METRICS / "frontier" / f"{section}.json",
        [
            {
                "prior": prior.name,
                "steps": steps or m["mean_steps"],
                "mean_steps": m["mean_steps"],
                "fd": m["fd"],
                "seconds_per_image": m["seconds_per_image"],
            }
            for steps, (_, m) in runs.items()
        ],
    )

    shards = tokens.read_shards(layout.TOKENS, "test", pipe.codebook_size, pipe.tokenizer_sha)
    test = torch.from_numpy(shards["tokens"][:SHOWN].astype(np.int64))
    recon = pipe.decode(test)
    gen = torch.Generator(device=dev).manual_seed(s.seed)
    completions = {}
    for name, keep, label in masks.from_rows(prior.grid):
        done = pipe.complete(test, masks.prefix_mask(len(test), prior.grid, keep), section, seed=gen, **settings)
        completions[name] = done.images
        render.panels(
            layout.FIGURES / f"{section}_completion_{name}.png",
            [[("transformer completions", completions[name]), ("VQ-VAE reconstructions", recon)]],
            cols=3,
            title=f"Completion from the {label}",
        )
    if not prior.causal:
        diffusion_figures(pipe, section, settings, test, recon, s.seed)
    arrays = {"tokens": result.tokens.numpy(), "images": result.images, "steps": result.steps.numpy()}
    arrays |= {"reconstructions": recon, **{f"completion_{k}": v for k, v in completions.items()}}
    samples.write(layout.SAMPLES / f"{section}.h5", arrays)
    common.write_metrics(f"sample_{section}", measured)
