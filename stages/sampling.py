"""Sampling shared by every prior: unconditional samples timed at the sampling batch size and at
batch 1, completions of test images from their first token rows, and the judge's measures; for
diffusion priors also inpainting, reverse-diffusion strips at two temperatures, the GIF, and
the speed-quality frontier over the number of steps."""

from __future__ import annotations

import time

import numpy as np
import torch

from stages import common, judging
from vqgen import checkpoint, render
from vqgen.config import Params
from vqgen.data import tokens
from vqgen.models.transformer import Transformer, TransformerConfig
from vqgen.priors import Draw, Prior, prefix_mask, restore

FRONTIER_STEPS = (4, 8, 12, 16, 32)
STRIP_TEMPERATURES = (0.7, 1.2)  # the blog's Figs 5 and 6: a low and a high temperature
SHOWN = 9  # test images completed and inpainted, one 3x3 grid


def load_prior(section: str, dev: torch.device) -> Prior:
    """The section's trained prior, refused unless it was trained on the tokens of the tokenizer in use."""
    path = common.MODELS[section]
    model, meta = checkpoint.load(path, Transformer, TransformerConfig, dev)
    tokenizer = checkpoint.sha256(common.VQVAE)
    if meta.get("tokenizer") != tokenizer:
        raise checkpoint.CheckpointError(
            f"{path} was trained on the tokens of tokenizer {str(meta.get('tokenizer'))[:12]}, not of the one in use "
            f"({tokenizer[:12]}); run `vqgen train_{section}` again."
        )
    return restore(model, meta)


def completions_from_rows(grid: tuple[int, int]) -> list[tuple[str, int, str]]:
    """(name, tokens given, caption) of the completions from the first half, quarter of the rows and the first token."""
    h, w = grid
    half, quarter = max(1, h // 2), max(1, h // 4)  # at least one row on small grids
    return [
        ("half", half * w, f"first {half} of {h} token rows"),
        ("quarter", quarter * w, f"first {quarter} of {h} token rows"),
        ("first_token", 1, "first token only"),
    ]


def draw_all(prior: Prior, n: int, batch_size: int, settings: dict, seed: int, label: str) -> tuple[Draw, float]:
    """n unconditional samples in batches, and the seconds each took (sampling only)."""
    gen = torch.Generator(device=prior.device).manual_seed(seed)
    parts, start = [], time.perf_counter()
    with common.progress(n, label) as advance:
        for i in range(0, n, batch_size):
            parts.append(prior.sample(min(batch_size, n - i), generator=gen, **settings))
            advance(len(parts[-1].tokens))
    seconds = (time.perf_counter() - start) / n
    return Draw(torch.cat([d.tokens.cpu() for d in parts]), torch.cat([d.steps.cpu() for d in parts])), seconds


def latency(prior: Prior, settings: dict, seed: int, repeats: int = 8) -> float:
    """Median seconds to draw one image at batch 1."""
    gen = torch.Generator(device=prior.device).manual_seed(seed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        prior.sample(1, generator=gen, **settings)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def inpainting_masks(grid: tuple[int, int], n: int, seed: int) -> dict[str, torch.Tensor]:
    """(n, h, w) masks, True where a token is given: what an autoregressive prior cannot complete."""
    h, w = grid
    rows, cols = torch.arange(h)[:, None], torch.arange(w)[None, :]
    box = (rows >= h // 4) & (rows < h - h // 4) & (cols >= w // 4) & (cols < w - w // 4)
    scores = torch.rand(n, h * w, generator=torch.Generator().manual_seed(seed))
    random = (scores.argsort(1).argsort(1) < round(0.25 * h * w)).view(n, h, w)
    masks = {
        "bottom half masked": rows < h // 2,
        "left half masked": cols >= w // 2,
        "centre box masked": ~box,
        "random 75% masked": random,
    }
    return {name: m.expand(n, h, w) for name, m in masks.items()}


def measure(prior: Prior, vq, judge: judging.Judge, settings: dict, p: Params) -> dict:
    """{steps: (draw, decoded images, measures)} of unconditional samples at the configured settings and,
    for a diffusion prior, at every number of steps of the frontier (the AR prior's key is None)."""
    runs = {}
    frontier = sorted({*FRONTIER_STEPS, settings["steps"]}) if "steps" in settings else [None]
    for steps in frontier:
        at = settings if steps is None else {**settings, "steps": steps}
        label = f"sampling {prior.name} prior" + ("" if steps is None else f", {steps} steps")
        result, seconds = draw_all(prior, p.evaluate.num_samples, p.sample.batch_size, at, p.sample.seed, label)
        decoded = judging.decode(vq, result.tokens)
        runs[steps] = (
            result,
            decoded,
            {**judge.measure(decoded), "seconds_per_image": seconds, "mean_steps": float(result.steps.float().mean())},
        )
    return runs


def diffusion_figures(prior: Prior, vq, section: str, settings: dict, test: torch.Tensor, recon, seed: int) -> None:
    """Inpainting under four masks, reverse-diffusion strips at a low and a high temperature, the GIF."""
    dev, shown = prior.device, len(test)
    gen = torch.Generator(device=dev).manual_seed(seed)
    rows = []
    for name, known in inpainting_masks(prior.grid, shown, seed).items():
        done = prior.sample(given=test, known=known, generator=gen, **settings)
        rows.append(
            [
                (f"{name}: given", judging.decode(vq, test.masked_fill(~known, -1))),
                ("completions", judging.decode(vq, done.tokens)),
                ("VQ-VAE reconstructions", recon),
            ]
        )
    render.panels(
        common.FIGURES / f"{section}_inpainting.png",
        rows,
        cols=3,
        title=f"Inpainting by the {prior.name} diffusion prior",
    )
    strips = []
    for temperature in STRIP_TEMPERATURES:
        way = prior.sample(
            6,
            generator=torch.Generator(device=dev).manual_seed(seed),
            trajectory=True,
            **{**settings, "temperature": temperature},
        )
        strips.append(
            (
                f"temperature {temperature}: {float(way.steps.float().mean()):.0f} steps",
                render.strip_image([judging.decode(vq, x) for x in way.trajectory]),
            )
        )
    render.side_by_side(
        common.FIGURES / f"{section}_strip.png",
        [strips],
        title="Reverse diffusion, from the start (left) to samples (right)",
    )
    way = prior.sample(16, generator=torch.Generator(device=dev).manual_seed(seed), trajectory=True, **settings)
    render.gif(common.FIGURES / f"{section}.gif", [judging.decode(vq, x) for x in render.pick(way.trajectory, 60)])


def run(p: Params, section: str) -> None:
    s = p.sample
    dev = common.device(p, s.seed)
    judge = judging.Judge(p, dev)  # first: bad Inception weights stop the stage before any work
    vq = judging.tokenizer(dev)
    prior = load_prior(section, dev)
    settings = {k: getattr(getattr(p, section), k) for k in prior.settings}

    runs = measure(prior, vq, judge, settings, p)
    result, decoded, measured = runs[settings.get("steps")]
    measured["seconds_per_image_batch1"] = latency(prior, settings, s.seed)
    render.save_image(common.FIGURES / f"{section}_samples.png", render.grid(decoded[:36], 6, scale=2))
    common.write_json(
        common.METRICS / "frontier" / f"{section}.json",
        [
            {
                "prior": prior.name,
                "steps": steps or m["mean_steps"],
                "mean_steps": m["mean_steps"],
                "fd": m["fd"],
                "seconds_per_image": m["seconds_per_image"],
            }
            for steps, (_, _, m) in runs.items()
        ],
    )

    shards = tokens.read_shards(common.TOKENS, "test", vq.cfg.codebook_size, checkpoint.sha256(common.VQVAE))
    test = torch.from_numpy(shards["tokens"][:SHOWN].astype(np.int64))
    recon = judging.decode(vq, test)
    gen = torch.Generator(device=dev).manual_seed(s.seed)
    completions = {}
    for name, keep, label in completions_from_rows(prior.grid):
        done = prior.sample(given=test, known=prefix_mask(len(test), prior.grid, keep), generator=gen, **settings)
        completions[name] = judging.decode(vq, done.tokens)
        render.panels(
            common.FIGURES / f"{section}_completion_{name}.png",
            [[("transformer completions", completions[name]), ("VQ-VAE reconstructions", recon)]],
            cols=3,
            title=f"Completion from the {label}",
        )
    if not prior.causal:
        diffusion_figures(prior, vq, section, settings, test, recon, s.seed)
    judging.save_samples(
        section,
        {
            "tokens": result.tokens.numpy(),
            "images": decoded,
            "steps": result.steps.numpy(),
            "reconstructions": recon,
            **{f"completion_{k}": v for k, v in completions.items()},
        },
    )
    common.write_metrics(f"sample_{section}", measured)
