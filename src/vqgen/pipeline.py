"""A trained run as one object: its tokenizer and whichever priors are trained, checked against each
other, generating images, completing them under any mask, encoding and decoding them.

    from vqgen.pipeline import Pipeline

    pipe = Pipeline.from_run(".")                      # the run in this directory
    out = pipe.generate(16, prior="diffusion", seed=0, temperature=1.0)
    out.images                                         # uint8 (16, 64, 64, 3); out.tokens: (16, 8, 8)
    glasses = pipe.generate(16, attributes={"Eyeglasses": 1, "Male": 0}, guidance=3)

A sampler setting comes from one place: the defaults of `vqgen.config` (which the samplers' own
keyword defaults are), then what the prior's checkpoint records, then the run's params.yaml, then
the keyword arguments of the call. The sampling stages, `vqgen generate` and `vqgen inpaint` all
draw through this class.
"""

from __future__ import annotations

import difflib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vqgen import checkpoint, config, layout, masks, train
from vqgen.config import ConfigError, Params
from vqgen.data.folder import load_photo
from vqgen.models.transformer import UNSPECIFIED, Transformer, TransformerConfig
from vqgen.priors import PRIORS as PRIOR_CLASSES
from vqgen.priors import Prior, restore
from vqgen.tokenizer import decode as decode_grids
from vqgen.tokenizer import encode as encode_images
from vqgen.tokenizer import load as load_tokenizer

PRIORS = tuple(layout.MODELS)  # a run's priors, by their params.yaml section: ar, diffusion


class MaskWarning(UserWarning):
    """A completion the prior cannot do exactly: the AR prior under a mask that is not a top-rows mask."""


@dataclass
class Generation:
    images: np.ndarray  # (B, S, S, 3) uint8
    tokens: torch.Tensor  # (B, h, w) int64 on the CPU
    steps: torch.Tensor  # (B,) network passes each grid took
    seconds: float  # spent sampling (not decoding), per image
    trajectory: list[torch.Tensor] | None = None  # (B, h, w) grids from start to end, -1 where undecided


def _stage(path: Path) -> str:
    """The stage that writes a run's checkpoint `path` (`models/<name>.safetensors`)."""
    return layout.TRAINED_BY.get(Path(*path.parts[-2:]), "the stage that trains it")


def missing(path: Path) -> FileNotFoundError:
    return FileNotFoundError(f"{path} not found; run `dvc repro {_stage(path)}` first.")


def load_prior(path: str | Path, tokenizer_sha: str, device: str | torch.device = "cpu") -> Prior:
    """The prior of a checkpoint, refused unless it was trained on the tokens of the tokenizer whose
    checkpoint has the sha256 `tokenizer_sha`."""
    path = Path(path)
    if not path.is_file():
        raise missing(path)
    model, meta = checkpoint.load(path, Transformer, TransformerConfig, device)
    if meta.get("tokenizer") != tokenizer_sha:
        raise checkpoint.CheckpointError(
            f"{path} was trained on the tokens of tokenizer {str(meta.get('tokenizer'))[:12]}, not of the one in "
            f"use ({tokenizer_sha[:12]}); run `vqgen {_stage(path)}` again."
        )
    return restore(model, meta, checkpoint.extras(path))


def _validated(section: str, values: dict):
    """The params.yaml section `section` (ar or diffusion) with `values` set over its defaults, validated:
    a bad value is refused in one sentence."""
    checked = Params()
    for key, value in values.items():
        checked.set(f"{section}.{key}", value)
    getattr(checked, section).validate()
    return getattr(checked, section)


def sample(prior: Prior, precision: torch.dtype | None, device: torch.device, *args, **kwargs):
    """`prior.sample(*args, **kwargs)`, a diffusion prior's passes in the autocast type `precision`
    (`compute.precision`'s: bf16 where the device computes it natively): they are whole grids at a
    time. The AR prior's steps stay float32: one token each, bf16 would only add casts to them."""
    if precision is None or prior.causal:
        return prior.sample(*args, **kwargs)
    with torch.autocast(device.type, precision):
        return prior.sample(*args, **kwargs)


class Pipeline:
    """A tokenizer checkpoint and the prior checkpoints trained on its tokens (`ar`, `diffusion`,
    either may be None), on `device` ('auto': CUDA, then MPS, then the CPU). `params` (a Params or the
    path of a params.yaml) gives the sampler settings, the sampling batch size and the precision of the
    diffusion samplers (`compute.precision`); None: defaults."""

    def __init__(
        self,
        tokenizer: str | Path,
        ar: str | Path | None = None,
        diffusion: str | Path | None = None,
        *,
        params: Params | str | Path | None = None,
        device: str | torch.device = "auto",
    ):
        self.device = device if isinstance(device, torch.device) else train.pick_device(device)
        path = Path(tokenizer)
        if not path.is_file():
            raise missing(path)
        self.tokenizer_path, self.tokenizer_sha = path, checkpoint.sha256(path)
        self.tokenizer = load_tokenizer(path, self.device)
        self.image_size = int(checkpoint.metadata(path)["image_size"])
        self.grid = (self.image_size // self.tokenizer.cfg.downsample,) * 2
        self.codebook_size = self.tokenizer.cfg.codebook_size
        self.params = config.load_params(params) if isinstance(params, (str, Path)) else params
        self.precision = train.pick_precision((self.params or Params()).compute.precision, self.device)
        self.paths = {name: Path(p) for name, p in (("ar", ar), ("diffusion", diffusion)) if p is not None}
        self.priors = {name: load_prior(p, self.tokenizer_sha, self.device) for name, p in self.paths.items()}

    @classmethod
    def from_run(
        cls,
        directory: str | Path = ".",
        device: str | torch.device = "auto",
        params: Params | None = None,
        priors: tuple[str, ...] = PRIORS,
    ) -> Pipeline:
        """The run in `directory`: its tokenizer, those of `priors` that are trained, and its params.yaml
        (or `params`) if it has one."""
        root = Path(directory)
        if params is None and (root / "params.yaml").is_file():
            params = config.load_params(root / "params.yaml")
        trained = {name: root / layout.MODELS[name] for name in priors if (root / layout.MODELS[name]).is_file()}
        return cls(root / layout.VQVAE, **trained, params=params, device=device)

    def __repr__(self) -> str:
        priors = ", ".join(f"{name}: {p.name}" for name, p in self.priors.items()) or "none"
        return (
            f"Pipeline({self.image_size}x{self.image_size} images as {self.grid[0]}x{self.grid[1]} grids of "
            f"{self.codebook_size} codes; priors {priors}; on {self.device})"
        )

    def prior(self, name: str) -> Prior:
        """The prior of a params.yaml section: `ar` or `diffusion`."""
        if name not in PRIORS:
            raise ConfigError(f"prior {name!r} is not one of {', '.join(PRIORS)}; use one of those.")
        if name not in self.priors:
            raise missing(self.tokenizer_path.parent / layout.MODELS[name].name)
        return self.priors[name]

    def settings(self, name: str, **overrides) -> dict:
        """The sampler settings of the prior `name`: its checkpoint's, then params.yaml's, then `overrides`
        (None leaves a setting as it is); a setting it has not or a bad value is refused."""
        prior = self.prior(name)
        values = dict(prior.sampling)
        if self.params is not None:
            values.update(getattr(self.params, name).sampling(prior.settings))
        unknown = sorted(set(overrides) - set(prior.settings))
        if unknown:
            raise ConfigError(
                f"{unknown[0]} is not a setting of the {prior.name} prior; "
                f"its settings are {', '.join(prior.settings)}."
            )
        given = {k: v for k, v in overrides.items() if v is not None}
        return _validated(name, {**values, **given}).sampling(prior.settings)

    def mix_guidance(self, prior: str, value: float | None = None) -> float:
        """The guidance of samples without a request (each requesting the attributes of a training image):
        `value` if given, else the prior's `mix_guidance` of params.yaml (or of `vqgen.config`)."""
        self.prior(prior)
        if value is None:
            return getattr(self.params or Params(), prior).mix_guidance
        return _validated(prior, {"mix_guidance": value}).mix_guidance

    def _unrequested(self, prior: str, n: int, gen: torch.Generator, at: dict, mix: float):
        """(requests, settings) of n draws without a request: of a prior that keeps its training
        attributes, n of them drawn at random (`unrequested_settings`); else nothing asked."""
        chosen = self.priors[prior]
        if chosen.data_attributes is None:
            return None, at
        return chosen.data_requests(n, gen), self.unrequested_settings(prior, at, mix)

    def unrequested_settings(self, prior: str, at: dict, mix: float) -> dict:
        """The settings `at` as draws without a request use them: of a prior that keeps its training
        attributes, guided at `mix` (constant) and unfiltered (`min_p` 0: a filter thins out the rare
        attributes these draws are to keep); of another, without the guidance, which needs a request."""
        if self.priors[prior].data_attributes is None:
            return {k: v for k, v in at.items() if not k.startswith("guidance")}
        mixed = {**at, "guidance": mix, "guidance_schedule": "constant"}
        return mixed | ({"min_p": 0.0} if "min_p" in at else {})

    def batch_size(self, batch_size: int | None = None) -> int:
        return batch_size or (self.params.sample.batch_size if self.params is not None else config.Sample.batch_size)

    def request(self, prior: str, attributes) -> torch.Tensor | None:
        """The request of `attributes` to the prior `prior`: a mapping of attribute names to 1 (present)
        or 0 (absent), the others unspecified; or an array (A,) or (N, A) of 0, 1 and -1 (unspecified)
        in the order of the prior's attributes. None or an empty mapping: the empty request (see
        `generate` for None there)."""
        chosen = self.prior(prior)
        if attributes is None or (isinstance(attributes, dict) and not attributes):
            return None
        names = chosen.attributes
        if not names:
            raise ConfigError(
                f"the {prior} prior of this run was trained without attributes (a folder source, or "
                f"{prior}.condition false), so it takes no request; leave the attributes out."
            )
        if not isinstance(attributes, dict):
            request = torch.as_tensor(np.asarray(attributes)).long()
            if (
                request.shape[-1] != len(names)
                or request.dim() not in (1, 2)
                or not bool(((request >= UNSPECIFIED) & (request <= 1)).all())
            ):
                raise ConfigError(
                    f"attributes of shape {tuple(request.shape)}; give a mapping of names to 0 or 1, or an "
                    f"array of 0, 1 and -1 (unspecified) of shape ({len(names)},) or (N, {len(names)})."
                )
            return request
        request = torch.full((len(names),), UNSPECIFIED, dtype=torch.long)
        for name, value in attributes.items():
            if name not in names:
                close = (
                    difflib.get_close_matches(name, names, n=3, cutoff=0.5)
                    or [n for n in names if name.lower() in n.lower()][:3]
                )
                hint = f"did you mean {' or '.join(close)}?" if close else f"the attributes are {', '.join(names)}."
                raise ConfigError(f"{name!r} is not an attribute of this run's data; {hint}")
            if value not in (0, 1):
                raise ConfigError(f"attribute {name} is {value!r}; use 1 (present) or 0 (absent).")
            request[names.index(name)] = int(value)
        return request

    def _generator(self, seed: int | torch.Generator) -> torch.Generator:
        if isinstance(seed, torch.Generator):
            return seed
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def generate(
        self,
        n: int,
        prior: str = "ar",
        *,
        seed: int | torch.Generator = 0,
        batch_size: int | None = None,
        trajectory: bool = False,
        progress=None,
        attributes=None,
        mix_guidance: float | None = None,
        **settings,
    ) -> Generation:
        """n images from nothing, drawn in batches of `batch_size` (params.yaml's `sample.batch_size`) from
        one generator seeded with `seed` (or the generator itself); with `trajectory`, in one batch, with
        every step's grids. `progress(k)` is called after each batch of k. With `attributes` (see
        `request`; an array (n, A) gives each image its own), guided by the settings `guidance` and
        `guidance_schedule`. Without `attributes`, a conditioned prior asks each image for the attributes
        of a random training image, so that they come as often as in the data, guided at `mix_guidance`
        (default: params.yaml's), constant over the steps and unfiltered (`guidance`,
        `guidance_schedule` and `min_p` are the settings of requests);
        `attributes={}` asks for nothing (the unconditional model, the null of guidance). A conditioned
        prior whose checkpoint keeps no training attributes (written before they were kept) draws the
        empty request here too."""
        if n < 1:
            raise ConfigError(f"n is {n}; ask for 1 image or more.")
        chosen, at = self.prior(prior), self.settings(prior, **settings)
        size, gen = n if trajectory else self.batch_size(batch_size), self._generator(seed)
        mix = self.mix_guidance(prior, mix_guidance)
        request = self._rows(self.request(prior, attributes), n)
        if attributes is None:
            request, at = self._unrequested(prior, n, gen, at, mix)
        parts, start = [], time.perf_counter()
        for i in range(0, n, size):
            part = None if request is None else request[i : i + size]
            parts.append(self._draw(chosen, min(size, n - i), request=part, generator=gen, trajectory=trajectory, **at))
            if progress:
                progress(len(parts[-1].tokens))
        seconds = (time.perf_counter() - start) / n
        grids = torch.cat([d.tokens.cpu() for d in parts])
        steps = torch.cat([d.steps.cpu() for d in parts])
        frames = [x.cpu() for x in parts[0].trajectory] if trajectory else None
        return Generation(self.decode(grids), grids, steps, seconds, frames)

    def complete(
        self,
        inputs,
        known,
        prior: str = "diffusion",
        *,
        n: int = 1,
        seed: int | torch.Generator = 0,
        batch_size: int | None = None,
        attributes=None,
        **settings,
    ) -> Generation:
        """n completions of each input, input after input: the tokens where `known` is False are drawn,
        the others kept. `inputs` are uint8 images (N, S, S, 3), encoded first, or token grids (N, h, w);
        `known` is True where given, per token (h, w) or (N, h, w), or per pixel (S, S) or (N, S, S), a
        token given only where all its pixels are. The AR prior draws in raster order and cannot look
        ahead at given tokens: under a mask other than the first tokens it warns (`MaskWarning`).
        `attributes` (see `request`; an array (N, A) gives each input its own) condition the completions."""
        if n < 1:
            raise ConfigError(f"n is {n}; ask for 1 completion or more.")
        grids = self._grids(inputs)
        known = self._known(known, len(grids))
        chosen, at = self.prior(prior), self.settings(prior, **settings)
        if chosen.causal and not masks.is_prefix(known):
            warnings.warn(
                MaskWarning(
                    "the AR prior draws tokens in raster order and does not see the given tokens after a "
                    "hidden one: the completion keeps them but may not join them; use --prior diffusion."
                ),
                stacklevel=2,
            )
        request = self._rows(self.request(prior, attributes), len(grids))
        grids, known = grids.repeat_interleave(n, 0), known.repeat_interleave(n, 0)
        request = None if request is None else request.repeat_interleave(n, 0)
        size, gen = self.batch_size(batch_size), self._generator(seed)
        parts, start = [], time.perf_counter()
        for i in range(0, len(grids), size):
            part = None if request is None else request[i : i + size]
            parts.append(
                self._draw(
                    chosen, given=grids[i : i + size], known=known[i : i + size], request=part, generator=gen, **at
                )
            )
        seconds = (time.perf_counter() - start) / len(grids)
        out = torch.cat([d.tokens.cpu() for d in parts])
        return Generation(self.decode(out), out, torch.cat([d.steps.cpu() for d in parts]), seconds)

    def photo_crop(self, crop: float | None = None) -> float:
        """The share of a photo's shorter side its centre square keeps: `crop`, else as the run frames
        its training images (`config.Data.photo_crop`; all of it without a params.yaml)."""
        return crop if crop is not None else (self.params.data.photo_crop if self.params is not None else 1.0)

    def load_photo(self, path: str | Path, crop: float | None = None) -> np.ndarray:
        """A photograph as `encode` takes it, uint8 (S, S, 3): decoded as the folder source decodes
        images, its centre square (`photo_crop`) resized to the tokenizer's size."""
        min_size = (self.params or Params()).data.min_size
        return load_photo(path, self.image_size, min_size, self.photo_crop(crop))[0]

    def encode(self, imgs) -> torch.Tensor:
        """uint8 images (N, S, S, 3) or one (S, S, 3), at the tokenizer's size -> token grids (N, h, w)."""
        if not hasattr(imgs, "shape"):
            imgs = np.asarray(imgs)
        imgs = imgs[None] if len(imgs.shape) == 3 else imgs
        s = self.image_size
        if len(imgs.shape) != 4 or tuple(imgs.shape[1:]) != (s, s, 3) or imgs.dtype != np.uint8:
            raise ConfigError(
                f"images of shape {tuple(imgs.shape)} and type {imgs.dtype}; this tokenizer takes uint8 images "
                f"of shape (N, {s}, {s}, 3)."
            )
        return encode_images(self.tokenizer, imgs)

    def decode(self, grids) -> np.ndarray:
        """Token grids (N, h, w) -> uint8 images (N, S, S, 3); negative ids (hidden, undecided) are grey."""
        return decode_grids(self.tokenizer, torch.as_tensor(grids))

    def latency(self, prior: str, seed: int = 0, repeats: int = 8, **settings) -> float:
        """Median seconds to draw one image at batch 1 as `generate` draws it without a request (sampling
        only)."""
        chosen, at, gen = self.prior(prior), self.settings(prior, **settings), self._generator(seed)
        times, mix = [], self.mix_guidance(prior)
        for _ in range(repeats):
            request, drawn = self._unrequested(prior, 1, gen, at, mix)
            start = time.perf_counter()
            self._draw(chosen, 1, request=request, generator=gen, **drawn)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    def _draw(self, chosen: Prior, *args, **kwargs):
        return sample(chosen, self.precision, self.device, *args, **kwargs)

    @staticmethod
    def _rows(request: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """A request (A,) or (n, A) as (n, A)."""
        if request is None or request.dim() == 1:
            return None if request is None else request.expand(n, -1)
        if len(request) != n:
            raise ConfigError(f"attributes for {len(request)} images; give one row for each of the {n}.")
        return request

    def _grids(self, inputs) -> torch.Tensor:
        shape = tuple(inputs.shape)
        if len(shape) == 4 or shape == (self.image_size, self.image_size, 3):
            return self.encode(inputs)
        grids = torch.as_tensor(np.asarray(inputs) if not torch.is_tensor(inputs) else inputs).long()
        grids = grids[None] if grids.dim() == 2 else grids
        if tuple(grids.shape[1:]) != self.grid:
            raise ConfigError(
                f"inputs of shape {shape}; give uint8 images (N, {self.image_size}, {self.image_size}, 3) or token "
                f"grids (N, {self.grid[0]}, {self.grid[1]})."
            )
        if len(grids) and (grids.min() < 0 or grids.max() >= self.codebook_size):
            raise ConfigError(f"token grids hold codes outside 0 to {self.codebook_size - 1}, this tokenizer's.")
        return grids

    def _known(self, known, n: int) -> torch.Tensor:
        known = torch.as_tensor(np.asarray(known) if not torch.is_tensor(known) else known).bool()
        known = known[None] if known.dim() == 2 else known
        side = known.shape[-1]
        if tuple(known.shape[1:]) == (self.image_size, self.image_size) and side != self.grid[1]:
            known = masks.known_tokens(~known, self.grid)
        if tuple(known.shape[1:]) != self.grid or len(known) not in (1, n):
            raise ConfigError(
                f"a mask of shape {tuple(known.shape)}; give one of {self.grid[0]}x{self.grid[1]} tokens or "
                f"{self.image_size}x{self.image_size} pixels, one for all inputs or one for each of the {n}."
            )
        return known.expand(n, *self.grid).cpu()


def inventory(directory: str | Path = ".") -> list[dict]:
    """What is trained in the run in `directory`, one entry per model (tokenizer, ar, diffusion, judge):
    its file and whether it exists, what it is, its parameters, grid and codebook, the tokenizer a
    prior was trained with and whether that is the run's, and the metrics its stages wrote."""
    import json

    root = Path(directory)

    def metrics(name: str) -> dict:
        path = root / layout.METRICS / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    entries, sha = [], None
    for name, path in (("tokenizer", layout.VQVAE), *layout.MODELS.items(), ("judge", layout.EVALUATOR)):
        entry = {"name": name, "path": path, "trained": (root / path).is_file(), "stage": layout.TRAINED_BY[path]}
        entries.append(entry)
        if not entry["trained"]:
            continue
        meta = checkpoint.metadata(root / path)
        entry["parameters"] = checkpoint.parameters(root / path)
        cfg = meta["config"]
        if name == "tokenizer":
            sha = checkpoint.sha256(root / path)
            side = int(meta["image_size"]) // cfg["downsample"]
            entry.update(kind="VQ-VAE", image_size=int(meta["image_size"]), grid=(side, side), sha=sha)
            entry.update(codebook_size=cfg["codebook_size"], metrics={**metrics("vqvae"), **metrics("baselines")})
        elif name in layout.MODELS:
            entry.update(kind=meta["prior"], grid=tuple(meta["grid"]), codebook_size=cfg["out_size"])
            recorded = meta.get("sampling", {})
            order = PRIOR_CLASSES[meta["prior"]].settings  # JSON metadata is sorted: the sampler's order
            entry.update(layers=cfg["n_layer"], width=cfg["n_embd"], attributes=list(meta.get("attributes", [])))
            entry["data_attributes"] = "data_attributes" in checkpoint.extras(root / path)
            entry["sampling"] = {k: recorded[k] for k in order if k in recorded}
            entry.update(tokenizer=meta.get("tokenizer"), matches=sha is not None and meta.get("tokenizer") == sha)
            entry["metrics"] = {**metrics(name), **metrics(f"sample_{name}")}
        else:
            kind = "attribute classifier" if cfg["num_attributes"] else "rotation classifier"
            entry.update(kind=kind, metrics=metrics("evaluator"))
    return entries
