"""The commands for a trained run, which write nothing into the pipeline's outputs: `generate` draws
new images, `inpaint` completes the user's own photographs under a mask, `info` lists what is trained."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
import typer

from stages import common
from vqgen import config, layout, masks, render, train
from vqgen.config import ConfigError
from vqgen.data import folder
from vqgen.pipeline import PRIORS, MaskWarning, Pipeline, inventory

RUN = typer.Option(Path("."), "--run", help="the run directory: its models/ and params.yaml")
SEED = typer.Option(0, help="sampling seed: the same seed and settings draw the same images")
DEVICE = typer.Option(None, help="cpu, cuda, cuda:N, mps or auto  [default: compute.device of params.yaml]")
BATCH = typer.Option(None, "--batch-size", help="images drawn at once  [default: sample.batch_size]")
TEMPERATURE = typer.Option(None, help="sampling temperature  [default: ar.temperature or diffusion.temperature]")
TOP_K = typer.Option(None, "--top-k", help="ar: draw among the k most likely codes (0: all)")
MIN_P = typer.Option(
    None,
    "--min-p",
    help="ar, masked: guided draws only among codes at least this share as likely as the likeliest (0: all)",
)
STEPS = typer.Option(None, help="diffusion: reverse steps  [default: diffusion.steps]")
ORDER = typer.Option(None, help="masked diffusion: halton or confidence  [default: diffusion.order]")
NOISE = typer.Option(None, "--confidence-noise", help="masked (confidence order), uniform_x0: Gumbel noise scale")
TOLERANCE = typer.Option(None, help="uniform diffusion: share of changed tokens at which a grid has settled")
ATTR = typer.Option(
    None, "--attr", metavar="NAME=0|1", help="ask for an attribute present (1) or absent (0); repeat for more"
)
GUIDANCE = typer.Option(None, help="classifier-free guidance scale of a request (1: off)  [default: params.yaml]")
DRAWN_GUIDANCE = typer.Option(
    None,
    help="classifier-free guidance scale of a request (1: off); without --attr, of the attributes drawn for each "
    "image  [default: guidance, without --attr mix_guidance, of params.yaml]",
)
SCHEDULE = typer.Option(None, "--guidance-schedule", help="guidance over the steps: constant, or linear from 1")


SETTINGS = (
    "temperature",
    "top_k",
    "min_p",
    "steps",
    "order",
    "confidence_noise",
    "tolerance",
    "guidance",
    "guidance_schedule",
)


def _settings(options: dict) -> dict:
    """The sampler settings among a command's options that were given."""
    return {key: options[key] for key in SETTINGS if options[key] is not None}


def _attributes(given: list[str] | None) -> dict[str, int]:
    """{name: 0 or 1} of the --attr options NAME=0 or NAME=1."""
    out = {}
    for item in given or []:
        name, sep, value = item.partition("=")
        if not sep or value.strip() not in ("0", "1") or not name.strip():
            raise ConfigError(f"--attr {item!r} is not NAME=1 or NAME=0; write e.g. --attr Eyeglasses=1.")
        out[name.strip()] = int(value)
    return out


def _start(run: Path, prior: str, n: int, out: Path, device: str | None) -> tuple[Pipeline, config.Params]:
    """The run's pipeline with the prior asked for, after checking the arguments that need no model."""
    if prior not in PRIORS:
        raise ConfigError(f"--prior is {prior!r}; use {' or '.join(PRIORS)}.")
    if n < 1:
        raise ConfigError(f"--n is {n}; use 1 or more.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory (it is made if missing).")
    for owned in layout.OUTPUTS:
        if out.resolve().is_relative_to((run / owned).resolve()):
            raise ConfigError(
                f"--out {out} lies in {owned}/, which the pipeline writes and DVC replaces; choose another directory."
            )
    p = config.load_params(run / "params.yaml") if (run / "params.yaml").is_file() else config.Params()
    dev = train.pick_device(device or p.compute.device)
    torch.set_num_threads(p.compute.threads or torch.get_num_threads())
    return Pipeline.from_run(run, dev, params=p, priors=(prior,)), p


def _described(pipe: Pipeline, prior: str, settings: dict, attributes: dict, drawn: bool = False) -> str:
    """The prior, the request and the settings, in words; `drawn`: without a request, the attributes are
    drawn from the training images'."""
    at = pipe.settings(prior, **settings)
    asked = ", ".join(f"{k}={v}" for k, v in attributes.items())
    if asked:
        asked = f" asked for {asked}"
    elif drawn:
        at = pipe.unrequested_settings(prior, at, pipe.mix_guidance(prior, settings.get("guidance")))
        if pipe.priors[prior].data_attributes is not None:
            asked = " with the attributes of random training images"
    else:  # the request guidance applies to requests only
        at = {k: v for k, v in at.items() if not k.startswith("guidance")}
    return f"the {pipe.priors[prior].name} prior{asked}, " + ", ".join(f"{k} {v}" for k, v in at.items())


def generate(
    prior: str = typer.Option("ar", help="the prior to draw from: ar or diffusion"),
    n: int = typer.Option(16, "--n", "-n", help="images to draw"),
    out: Path = typer.Option(Path("generated"), help="directory to write the images to"),
    seed: int = SEED,
    temperature: float | None = TEMPERATURE,
    top_k: int | None = TOP_K,
    min_p: float | None = MIN_P,
    steps: int | None = STEPS,
    order: str | None = ORDER,
    confidence_noise: float | None = NOISE,
    tolerance: float | None = TOLERANCE,
    attr: list[str] | None = ATTR,
    guidance: float | None = DRAWN_GUIDANCE,
    guidance_schedule: str | None = SCHEDULE,
    batch_size: int | None = BATCH,
    device: str | None = DEVICE,
    run: Path = RUN,
) -> None:
    """Draw new images from a trained prior, on request with --attr (without it, a prior trained on
    attributes draws each image's from those of a random training image): one PNG per image and one
    PNG of them all in a grid."""
    settings = _settings(locals())
    with common.reported():
        attributes = _attributes(attr)
        if min_p is not None and not attributes:
            raise ConfigError(
                f"--min-p {min_p} filters the draws of a request, and without --attr there is none; "
                "add --attr NAME=1 or NAME=0."
            )
        pipe, _ = _start(run, prior, n, out, device)
        pipe.request(prior, attributes)  # a bad request stops us before any drawing
        described = _described(pipe, prior, settings, attributes, drawn=True)
        mix = None if attributes else settings.pop("guidance", None)  # without --attr, the guidance of the mix
        with common.progress(n, f"sampling the {prior} prior") as advance:
            drawn = pipe.generate(
                n,
                prior,
                seed=seed,
                batch_size=batch_size,
                progress=advance,
                attributes=attributes or None,
                mix_guidance=mix,
                **settings,
            )
        stem = f"{prior}-seed{seed}"
        for i, image in enumerate(drawn.images):
            render.save_image(out / f"{stem}-{i:03d}.png", image)
        render.save_image(out / f"{stem}-grid.png", render.grid(drawn.images, math.ceil(math.sqrt(n)), scale=2))
        typer.echo(
            f"wrote {n} images of {described} to {out}/: {stem}-000.png to {stem}-{n - 1:03d}.png, "
            f"and all of them in {stem}-grid.png"
        )


def inpaint(
    photos: list[Path] = typer.Argument(
        ..., metavar="PHOTO...", help="photographs, in any format the folder source reads"
    ),
    mask: str = typer.Option("bottom", help=f"what to regenerate: {masks.SPECS}"),
    prior: str = typer.Option("diffusion", help="the prior to complete with: diffusion or ar"),
    n: int = typer.Option(4, "--n", "-n", help="completions of each photo"),
    crop: float | None = typer.Option(
        None,
        help="share of each photo's shorter side its centre square keeps  [default: as the run frames its "
        "faces: data.crop_size/178 for celeba and synthetic, 1 for folder]",
    ),
    out: Path = typer.Option(Path("inpainted"), help="directory to write the panels and completions to"),
    seed: int = SEED,
    temperature: float | None = TEMPERATURE,
    top_k: int | None = TOP_K,
    min_p: float | None = MIN_P,
    steps: int | None = STEPS,
    order: str | None = ORDER,
    confidence_noise: float | None = NOISE,
    tolerance: float | None = TOLERANCE,
    attr: list[str] | None = ATTR,
    guidance: float | None = GUIDANCE,
    guidance_schedule: str | None = SCHEDULE,
    batch_size: int | None = BATCH,
    device: str | None = DEVICE,
    run: Path = RUN,
) -> None:
    """Complete photographs: each is decoded as the folder source decodes images, its centre square
    (--crop) resized to the model's size, encoded, and the tokens under the mask are drawn again; for
    each photo, a panel of the input, the masked input, its reconstruction and the completions, and
    each completion as a PNG."""
    settings = _settings(locals())
    with common.reported():
        attributes = _attributes(attr)
        pipe, p = _start(run, prior, n, out, device)
        pipe.request(prior, attributes)
        described = _described(pipe, prior, settings, attributes)
        share = pipe.photo_crop(crop)
        read = [folder.load_photo(photo, pipe.image_size, p.data.min_size, share) for photo in photos]
        hidden = np.stack([masks.pixels(mask, pipe.image_size, size, share) for _, size in read])
        known = masks.known_tokens(hidden, pipe.grid)
        if known.all():
            raise ConfigError(f"--mask {mask} covers no token of the {pipe.grid[0]}x{pipe.grid[1]} grid; mask more.")
        imgs = np.stack([img for img, _ in read])
        grids = pipe.encode(imgs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MaskWarning)
            done = pipe.complete(
                grids, known, prior, n=n, seed=seed, batch_size=batch_size, attributes=attributes, **settings
            )
        for message in dict.fromkeys(str(w.message) for w in caught):
            typer.echo(f"warning: {message}", err=True)
        recon, f = pipe.decode(grids), pipe.image_size // pipe.grid[0]
        given = known.numpy().repeat(f, 1).repeat(f, 2)
        stems = _stems(photos)
        for i, stem in enumerate(stems):
            masked = np.where(given[i][..., None], imgs[i], 128).astype(np.uint8)
            completions = done.images[i * n : (i + 1) * n]
            for j, image in enumerate(completions):
                render.save_image(out / f"{stem}-{j}.png", image)
            shown = [("input", imgs[i]), ("masked", masked), ("reconstruction", recon[i])]
            render.row(out / f"{stem}-panel.png", shown + [(f"completion {j}", c) for j, c in enumerate(completions)])
        typer.echo(
            f"wrote {_count(len(photos), 'panel')} and {_count(len(photos) * n, 'completion')} by {described} "
            f"to {out}/: " + ", ".join(f"{stem}-panel.png" for stem in stems[:3]) + (", ..." if len(stems) > 3 else "")
        )


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" + "s" * (n != 1)


def _stems(photos: list[Path]) -> list[str]:
    """One output name per photo: its stem, numbered where two photos share one."""
    stems, seen = [], {}
    for photo in photos:
        seen[photo.stem] = seen.get(photo.stem, 0) + 1
        stems.append(photo.stem if seen[photo.stem] == 1 else f"{photo.stem}_{seen[photo.stem]}")
    return stems


def info(run: Path = RUN) -> None:
    """What is trained in the run directory: each model, its size, grid and codebook, the tokenizer a
    prior was trained on and whether it is the run's, its metrics and its sampler settings."""
    with common.reported():
        p = config.load_params(run / "params.yaml") if (run / "params.yaml").is_file() else config.Params()
        for entry in inventory(run):
            head = f"{entry['name']:<10} {entry['path']}"
            if not entry["trained"]:
                typer.echo(f"{head}: not trained; run `dvc repro {entry['stage']}`")
                continue
            first, *rest = _lines(entry, p)
            typer.echo(f"{head}: {first}")
            for line in rest:
                typer.echo(f"{'':<11}{line}")


def _lines(entry: dict, p: config.Params) -> list[str]:
    m, size = entry["metrics"], f"{entry['parameters']:,} parameters"
    if entry["name"] == "tokenizer":
        side, (h, w) = entry["image_size"], entry["grid"]
        out = [f"VQ-VAE, {side}x{side} images as {h}x{w} grids of {entry['codebook_size']} codes, {size}"]
        out.append(f"sha256 {entry['sha'][:12]}")
        if m:
            out.append(
                f"val PSNR {m.get('val_psnr', math.nan):.2f} dB, {m.get('codebook_usage', math.nan):.0%} of the codes "
                f"used, rfd {m.get('rfd', math.nan):.3g} (real images: {m.get('floor_fd', math.nan):.3g})"
            )
        return out
    if entry["name"] == "judge":
        if "balanced_accuracy" in m:
            seen = f"sees {m['seen_attributes']:.0f} attributes (balanced accuracy of 0.8 or more on real test images)"
            return [f"{entry['kind']}, {size}", f"mean balanced accuracy {m['balanced_accuracy']:.3f}; {seen}"]
        return [f"{entry['kind']}, {size}", f"val accuracy {m.get('val_accuracy', math.nan):.3f}"]
    h, w = entry["grid"]
    out = [f"{entry['kind']} prior, depth {entry['layers']}, width {entry['width']}, {size}, {h}x{w} grids"]
    state = "the run's" if entry["matches"] else "NOT the run's: retrain it"
    out.append(f"trained on the tokens of tokenizer {str(entry['tokenizer'])[:12]} ({state})")
    names = entry["attributes"]
    out.append(f"on request: {len(names)} attributes, --attr NAME=0|1" if names else "unconditional: takes no --attr")
    if entry["data_attributes"]:
        mix = getattr(p, entry["name"]).mix_guidance
        out.append(f"without --attr: the attributes of random training images, guidance {mix}")
    elif names:
        out.append("without --attr: the empty request (this checkpoint keeps no training attributes; retrain it)")
    if m:
        out.append(
            f"val {m.get('val_bits_per_token', math.nan):.3f} bits/token; fd {m.get('fd', math.nan):.3g}, "
            f"recall {m.get('recall', math.nan):.2f}, {1000 * m.get('seconds_per_image', math.nan):.1f} ms/image"
        )
        if "cond_accuracy" in m:
            out.append(f"on request: cond_accuracy {m['cond_accuracy']:.3f}, cond_fd {m['cond_fd']:.3g}")
    settings = {**entry["sampling"], **getattr(p, entry["name"]).sampling(tuple(entry["sampling"]))}
    plain = ", ".join(f"{k} {v}" for k, v in settings.items() if not k.startswith("guidance"))
    guided = ", ".join(f"{k} {v}" for k, v in settings.items() if k.startswith("guidance"))
    out.append(f"samples with {plain}" + (f"; on request {guided}" if names and guided else ""))
    return out
