"""Typed parameter sections of params.yaml, their defaults and their validation.

Each top-level section of params.yaml is one dataclass here; `load_params` reads the
file, refuses unknown sections and keys, and checks every value before any work starts.
Field metadata carries the one-line help shown by `vqgen <stage> --help`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A parameter value the pipeline cannot use; the message says what would be accepted."""


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _positive(section, name: str, *keys: str) -> None:
    for key in keys:
        value = getattr(section, key)
        _check(value > 0, f"{name}.{key} is {value}; use a positive number.")


def _not_negative(section, name: str, *keys: str) -> None:
    for key in keys:
        value = getattr(section, key)
        _check(value >= 0, f"{name}.{key} is {value}; use 0 or more.")


SEED_LIMIT = 2**32  # numpy's seeds are 32-bit


def _synthetic_needed(test_images: int) -> int:
    """The fewest synthetic faces whose test split holds `test_images` and val at least 2."""
    from vqgen.data.splits import split_sizes

    count = 10
    while split_sizes(count)[1] < 2 or split_sizes(count)[2] < test_images:
        count += 1
    return count


ALIGNED_WIDTH = 178  # CelebA's aligned faces are 178x218


def _power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


@dataclass
class Data:
    source: str = _f("synthetic", "where images come from: synthetic, celeba or folder")
    synthetic_count: int = _f(8000, "number of synthetic faces to draw")
    seed: int = _f(0, "seed of the synthetic faces")
    celeba_dir: str = _f("", "directory holding CelebA files you already have (empty: download)")
    folder: str = _f("", "directory of images for source=folder (searched recursively)")
    min_size: int = _f(32, "folder images whose shorter side is below this many pixels are skipped")
    val_fraction: float = _f(0.05, "share of folder images in the val split (by a hash of their path)")
    test_fraction: float = _f(0.05, "share of folder images in the test split (by a hash of their path)")
    crop_size: int = _f(140, "centre crop of the 178x218 aligned face before resizing (not for folder)")
    image_size: int = _f(64, "side of the square training images, in pixels")

    def validate(self) -> None:
        sources = ("synthetic", "celeba", "folder")
        _check(self.source in sources, f"data.source is {self.source!r}; use one of {', '.join(sources)}.")
        _check(self.synthetic_count >= 10, f"data.synthetic_count is {self.synthetic_count}; use at least 10.")
        _check(16 <= self.image_size <= 1024, f"data.image_size is {self.image_size}; use 16 to 1024 pixels.")
        _check(
            self.crop_size >= self.image_size or self.source == "folder",
            f"data.crop_size is {self.crop_size}; use at least data.image_size ({self.image_size}).",
        )
        _check(
            self.source != "folder" or self.folder != "",
            "data.folder is empty; with data.source: folder, set it to a directory of images.",
        )
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            _check(0.0 < value < 0.5, f"data.{name} is {value}; use a fraction above 0 and below 0.5.")
        _check(self.min_size >= 1, f"data.min_size is {self.min_size}; use at least 1 pixel.")
        _check(
            self.crop_size <= ALIGNED_WIDTH,
            f"data.crop_size is {self.crop_size}; the aligned faces are {ALIGNED_WIDTH} wide, use at most "
            f"{ALIGNED_WIDTH}.",
        )

    @property
    def photo_crop(self) -> float:
        """The share of a photo's shorter side that its centre square keeps, so that a face framed as
        CelebA frames them is framed as the training images are: crop_size of the aligned faces' 178
        pixels; all of it for a folder source, whose images are not cropped."""
        return 1.0 if self.source == "folder" else self.crop_size / ALIGNED_WIDTH


@dataclass
class Optimised:
    """The training loop's settings, shared by every section that trains a model."""

    warmup: int = _f(100, "steps of linear learning-rate warmup (at most max_iters / 10 + 1)")
    lr_floor: float = _f(0.1, "learning rate at the end of the cosine decay, as a fraction of lr")
    beta1: float = _f(0.9, "Adam's first-moment decay")
    beta2: float = _f(0.95, "Adam's second-moment decay")
    grad_clip: float = _f(1.0, "largest gradient norm per optimizer step (0: no clipping)")
    weight_decay: float = _f(0.0, "AdamW weight decay on matrices and kernels")

    def validate_training(self, name: str) -> None:
        _not_negative(self, name, "warmup", "grad_clip", "weight_decay")
        _check(0 <= self.lr_floor <= 1, f"{name}.lr_floor is {self.lr_floor}; use a fraction from 0 to 1.")
        for key in ("beta1", "beta2"):
            value = getattr(self, key)
            _check(0 <= value < 1, f"{name}.{key} is {value}; use 0 up to below 1.")


@dataclass
class VQVAE(Optimised):
    channels: int = _f(16, "channels at full resolution; doubled at each downsampling, at most 4x")
    downsample: int = _f(8, "image side / token grid side (a power of two)")
    res_blocks: int = _f(1, "residual blocks per resolution level")
    codebook_size: int = _f(256, "number of codes")
    code_dim: int = _f(32, "dimension of each code vector")
    factor_dim: int = _f(0, "search codes in this lower dimension, projected in and out (0: off; ViT-VQGAN)")
    l2_codes: bool = _f(False, "search and look up l2-normalised codes, by cosine similarity (ViT-VQGAN)")
    flip: bool = _f(False, "train on randomly mirrored images (left to right)")
    dead_code_fraction: float = _f(
        0.0625,
        "restart a code whose EMA use falls below this share of the "
        "expected use per code (vectors per step / codebook size)",
    )
    beta: float = _f(0.25, "commitment loss weight (van den Oord et al. 2017)")
    ema_decay: float = _f(0.99, "EMA codebook decay (Razavi et al. 2019); 0 learns codes by gradient")
    edge_weight: float = _f(
        4.0,
        "pixel loss weighted to the image's edges: each pixel's squared error times 1 + edge_weight x its "
        "local contrast over the batch's mean contrast (0: plain MSE)",
    )
    perceptual_weight: float = _f(0.1, "weight of the perceptual loss (unit-normalised feature distance)")
    perceptual_weights: str = _f(
        "",
        "VGG16 weights on disk (torchvision's state dict, .pth or .safetensors) whose frozen features "
        "give the perceptual loss (empty: the discriminator's features; never downloaded)",
    )
    adversarial_weight: float = _f(
        0.0, "weight of the adversarial (hinge) loss, times VQGAN's adaptive gradient-norm ratio; 0: off"
    )
    disc_start: int = _f(300, "iteration at which the discriminator losses switch on")
    max_iters: int = _f(3000, "training iterations")
    batch_size: int = _f(16, "images per iteration")
    lr: float = _f(1e-3, "peak learning rate (Adam, cosine decay)")
    beta1: float = _f(0.5, "Adam's first-moment decay (low, as GANs are trained)")
    beta2: float = _f(0.9, "Adam's second-moment decay")
    seed: int = _f(0, "training seed")

    def model_config(self):
        """The tokenizer's `VQVAEConfig` from this section."""
        from vqgen.models.vqvae import VQVAEConfig

        names = {f.name for f in dataclasses.fields(VQVAEConfig)}
        return VQVAEConfig(**{name: getattr(self, name) for name in sorted(names)})

    def validate(self) -> None:
        self.validate_training("vqvae")
        _check(
            _power_of_two(self.downsample) and self.downsample >= 2,
            f"vqvae.downsample is {self.downsample}; use a power of two of at least 2.",
        )
        _check(self.codebook_size >= 2, f"vqvae.codebook_size is {self.codebook_size}; use at least 2.")
        _check(0.0 <= self.ema_decay < 1.0, f"vqvae.ema_decay is {self.ema_decay}; use 0 (off) up to below 1.")
        _positive(self, "vqvae", "channels", "code_dim", "max_iters", "batch_size", "lr")
        _not_negative(self, "vqvae", "beta", "edge_weight", "perceptual_weight", "adversarial_weight", "disc_start")
        _check(self.res_blocks >= 0, f"vqvae.res_blocks is {self.res_blocks}; use 0 or more.")
        _check(
            not self.perceptual_weights or Path(self.perceptual_weights).is_file(),
            f"vqvae.perceptual_weights is {self.perceptual_weights!r}, which is not a file; give the path "
            "of torchvision's VGG16 weights, or leave it empty.",
        )
        _check(
            0 <= self.dead_code_fraction < 1,
            f"vqvae.dead_code_fraction is {self.dead_code_fraction}; use 0 (never restart) up to below 1.",
        )
        _check(
            0 <= self.factor_dim < self.code_dim,
            f"vqvae.factor_dim is {self.factor_dim}; use 0 (off) or 1 to {self.code_dim - 1} (below vqvae.code_dim).",
        )


@dataclass
class Encode:
    batch_size: int = _f(64, "images per encoder batch")
    shard_size: int = _f(4096, "token grids per HDF5 shard")
    mirror: bool = _f(
        True, "also encode each train image mirrored (left to right): the priors train on twice the grids"
    )

    def validate(self) -> None:
        _check(self.shard_size >= 1, f"encode.shard_size is {self.shard_size}; use at least 1.")
        _check(self.batch_size >= 1, f"encode.batch_size is {self.batch_size}; use at least 1.")


SCHEDULES = ("constant", "linear")  # ar/diffusion.guidance_schedule: as in vqgen.priors.guidance


def _guidance(default: float):
    return _f(default, "classifier-free guidance scale s of a request, logits u + s (c - u) (1: off)")


def _min_p(default: float):
    return _f(default, "guided draws only among codes at least min_p times as likely as the likeliest under c (0: all)")


@dataclass
class Prior(Optimised):
    """A transformer over token grids: shared by the autoregressive and diffusion sections."""

    n_layer: int = _f(4, "transformer blocks")
    n_head: int = _f(4, "attention heads")
    n_embd: int = _f(128, "embedding width")
    dropout: float = _f(0.0, "dropout probability")
    max_iters: int = _f(600, "training iterations")
    batch_size: int = _f(64, "token grids per iteration")
    lr: float = _f(1e-3, "peak learning rate (AdamW, cosine decay)")
    weight_decay: float = _f(0.01, "AdamW weight decay on matrices")
    seed: int = _f(0, "training seed")
    temperature: float = _f(1.0, "sampling temperature")
    min_p: float = _min_p(0.0)  # of the AR and masked priors only
    condition: bool = _f(True, "condition the prior on the data's attributes (a folder source has none: unconditional)")
    cond_drop: float = _f(0.1, "share of training grids whose attributes are all dropped (the unconditional model)")
    attr_drop: float = _f(
        0.5, "share of the other training grids that keep each attribute with a chance drawn uniformly for the grid"
    )
    guidance_schedule: str = _f("constant", "guidance over the steps or tokens: constant, or linear from 1 to s")
    mix_guidance: float = _f(
        1.5, "guidance scale s of samples without a request, which request the attributes of random training images"
    )  # as few attributes' rates off as unguided, at a lower fd, for both priors (docs/priors.md)

    def sizes(self) -> dict[str, Any]:
        """The transformer's size (`TransformerConfig` fields) from this section."""
        return {"n_layer": self.n_layer, "n_head": self.n_head, "n_embd": self.n_embd, "dropout": self.dropout}

    def sampling(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The sampler settings `names` (a prior's `settings`) from this section."""
        return {name: getattr(self, name) for name in names}

    def validate(self) -> None:
        name = type(self).__name__.lower()
        self.validate_training(name)
        _positive(self, name, "n_layer", "n_head", "n_embd", "max_iters", "batch_size", "lr")
        _check(
            self.n_embd % self.n_head == 0,
            f"{name}.n_embd is {self.n_embd}; use a multiple of {name}.n_head ({self.n_head}).",
        )
        _check(self.temperature > 0, f"{name}.temperature is {self.temperature}; use a positive number.")
        _check(0.0 <= self.min_p <= 1.0, f"{name}.min_p is {self.min_p}; use 0 (off) up to 1 (the likeliest only).")
        _check(0.0 <= self.dropout < 1.0, f"{name}.dropout is {self.dropout}; use 0 up to below 1.")
        for key in ("cond_drop", "attr_drop"):
            value = getattr(self, key)
            _check(0.0 <= value <= 1.0, f"{name}.{key} is {value}; use a probability from 0 to 1.")
        for key in ("guidance", "mix_guidance"):
            value = getattr(self, key)
            _check(value >= 0, f"{name}.{key} is {value}; use a scale of 0 or more (1: off).")
        _check(
            self.guidance_schedule in SCHEDULES,
            f"{name}.guidance_schedule is {self.guidance_schedule!r}; use one of {', '.join(SCHEDULES)}.",
        )


@dataclass
class AR(Prior):
    temperature: float = _f(0.9, "sampling temperature")  # lower fd, fewer attributes off than 1.0 (docs/priors.md)
    top_k: int = _f(0, "sample only among the k most likely tokens (0: all)")
    min_p: float = _min_p(0.1)  # cond_fd 66 -> 46 at equal cond_accuracy (docs/priors.md)
    guidance: float = _guidance(5.5)  # cond_accuracy >= 0.9 at every seed, lowest cond_fd, with min_p (docs/priors.md)

    def validate(self) -> None:
        super().validate()
        _check(self.top_k >= 0, f"ar.top_k is {self.top_k}; use 0 (off) or a positive number.")


PROCESSES = ("masked", "uniform", "uniform_x0")  # diffusion.process: names of registered priors
ORDERS = ("halton", "confidence")  # diffusion.order: as in vqgen.priors.masked


@dataclass
class Diffusion(Prior):
    max_iters: int = _f(1200, "training iterations (a masked model learns from the hidden tokens only)")
    guidance: float = _guidance(2.25)  # cond_accuracy >= 0.9 at every seed at the lowest cond_fd (docs/priors.md)
    process: str = _f(
        "masked",
        "masked (absorbing [MASK], parallel decoding), uniform (the blog's "
        "process) or uniform_x0 (uniform noise, clean grid predicted, decoded by confidence)",
    )
    extra_noise: float = _f(0.1, "uniform: fraction of tokens re-randomised between x_a and x_b")
    steps: int = _f(
        4, "reverse steps (uniform: at most, it stops earlier when settled; it needs tens of them)"
    )  # masked, 8x8 grid: as good as 12 on every measure, 3x faster (docs/priors.md); the presets' 16x16: 12
    temperature: float = _f(
        0.7, "sampling temperature of the new tokens (masked, uniform_x0: at the last step, rising from 1)"
    )
    tolerance: float = _f(0.02, "uniform: a grid is settled once a step changes fewer than this share of tokens")
    order: str = _f(
        "halton",
        "masked: the order in which positions are decided, halton (a fixed order spread over the grid) "
        "or confidence (the most confident draws first, MaskGIT)",
    )
    confidence_noise: float = _f(
        4.5,
        "masked (order confidence), uniform_x0: scale of the Gumbel noise on confidences, divided by "
        "the temperature and annealed to 0 (MaskGIT)",
    )

    def validate(self) -> None:
        super().validate()
        _check(self.process in PROCESSES, f"diffusion.process is {self.process!r}; use one of {', '.join(PROCESSES)}.")
        _check(0.0 < self.extra_noise < 1.0, f"diffusion.extra_noise is {self.extra_noise}; use a fraction in (0, 1).")
        _check(self.steps >= 1, f"diffusion.steps is {self.steps}; use at least 1.")
        _check(0.0 <= self.tolerance < 1.0, f"diffusion.tolerance is {self.tolerance}; use a fraction in [0, 1).")
        _check(self.order in ORDERS, f"diffusion.order is {self.order!r}; use one of {', '.join(ORDERS)}.")
        _check(self.confidence_noise >= 0, f"diffusion.confidence_noise is {self.confidence_noise}; use 0 or more.")


@dataclass
class Sample:
    batch_size: int = _f(128, "samples generated at once")
    seed: int = _f(0, "sampling seed")

    def validate(self) -> None:
        _check(self.batch_size >= 1, f"sample.batch_size is {self.batch_size}; use at least 1.")


@dataclass
class Evaluate(Optimised):
    width: int = _f(16, "channels of the evaluator's first layer")
    max_iters: int = _f(1200, "evaluator training iterations (the balanced attribute head needs them: docs/judge.md)")
    batch_size: int = _f(64, "images per iteration")
    lr: float = _f(2e-3, "peak learning rate (AdamW, cosine decay)")
    weight_decay: float = _f(1e-4, "AdamW weight decay on matrices and kernels")
    seed: int = _f(0, "training seed")
    num_samples: int = _f(400, "images per set compared (samples, real, reconstructions); 10k-50k on a GPU")
    k: int = _f(3, "neighbours defining the manifolds of k-NN precision and recall")
    inception_weights: str = _f(
        "",
        "Inception-v3 weights on disk for the true FID, torch-fidelity's or "
        "torchvision's (empty: the torch hub cache if present; never downloaded)",
    )

    def model_config(self, num_attributes: int):
        """The judge's `EvaluatorConfig`, for data with `num_attributes` attributes (0: a folder's)."""
        from vqgen.models.evaluator import EvaluatorConfig

        return EvaluatorConfig(num_attributes=num_attributes, width=self.width)

    def validate(self) -> None:
        self.validate_training("evaluate")
        _positive(self, "evaluate", "width", "max_iters", "batch_size", "lr")
        _check(self.num_samples >= 9, f"evaluate.num_samples is {self.num_samples}; use at least 9 (one 3x3 grid).")
        _check(
            1 <= self.k < self.num_samples - 1,
            f"evaluate.k is {self.k}; use 1 to {self.num_samples - 2} "
            f"(below evaluate.num_samples - 1, or every ball holds the whole set).",
        )
        _check(
            not self.inception_weights or Path(self.inception_weights).is_file(),
            f"evaluate.inception_weights is {self.inception_weights!r}, which is not a file; give the path "
            "of Inception-v3 weights (torch-fidelity's or torchvision's), or leave it empty.",
        )


@dataclass
class Compute:
    device: str = _f("auto", "cpu, cuda, mps or auto")
    threads: int = _f(0, "CPU threads for torch (0: all cores)")
    workers: int = _f(0, "worker processes for image decoding and drawing (0: all cores)")
    memory_gb: float = _f(
        1.0, "GiB of images a training split may take in memory (a larger one is read from disk, slower)"
    )
    nproc: int = _f(1, "processes a training stage runs in, under torchrun (one per GPU; gloo on a CPU)")
    precision: str = _f(
        "auto",
        "fp32, or bf16 autocast in training and in the diffusion samplers (auto: bf16 where "
        "the device computes it natively: a CUDA GPU that supports it; a CPU with AVX512-BF16 or AMX)",
    )
    compile: bool = _f(False, "compile the models for training with torch.compile (slow to start; for long runs)")
    checkpoint_every: int = _f(
        100, "training steps between saves of a run's whole state, from which a killed run resumes (0: never)"
    )
    preview_every: int = _f(
        250, "training steps between grids of samples (or reconstructions) logged to DVCLive (0: never)"
    )

    def validate(self) -> None:
        ok = re.fullmatch(r"auto|cpu|mps|cuda(:[0-9]+)?", self.device)
        _check(bool(ok), f"compute.device is {self.device!r}; use auto, cpu, cuda, cuda:N or mps.")
        _check(self.threads >= 0, f"compute.threads is {self.threads}; use 0 (all cores) or more.")
        _check(self.workers >= 0, f"compute.workers is {self.workers}; use 0 (all cores) or more.")
        _check(self.memory_gb >= 0, f"compute.memory_gb is {self.memory_gb}; use 0 (always read from disk) or more.")
        _check(self.nproc >= 1, f"compute.nproc is {self.nproc}; use 1 or more processes.")
        _check(
            self.precision in ("auto", "fp32", "bf16"),
            f"compute.precision is {self.precision!r}; use auto, fp32 or bf16.",
        )
        _check(
            self.checkpoint_every >= 0,
            f"compute.checkpoint_every is {self.checkpoint_every}; use 0 (never) or more steps.",
        )
        _check(
            self.preview_every >= 0,
            f"compute.preview_every is {self.preview_every}; use 0 (never) or more steps.",
        )


SECTIONS: dict[str, type] = {
    "data": Data,
    "vqvae": VQVAE,
    "encode": Encode,
    "ar": AR,
    "diffusion": Diffusion,
    "sample": Sample,
    "evaluate": Evaluate,
    "compute": Compute,
}


@dataclass
class Params:
    data: Data = field(default_factory=Data)
    vqvae: VQVAE = field(default_factory=VQVAE)
    encode: Encode = field(default_factory=Encode)
    ar: AR = field(default_factory=AR)
    diffusion: Diffusion = field(default_factory=Diffusion)
    sample: Sample = field(default_factory=Sample)
    evaluate: Evaluate = field(default_factory=Evaluate)
    compute: Compute = field(default_factory=Compute)

    def validate(self) -> Params:
        for name in SECTIONS:
            section = getattr(self, name)
            for f in dataclasses.fields(section):
                value = getattr(section, f.name)
                _check(
                    not isinstance(value, float) or math.isfinite(value),
                    f"{name}.{f.name} is {value}; use a finite number.",
                )
                _check(
                    f.name != "seed" or 0 <= value < SEED_LIMIT,
                    f"{name}.seed is {value}; use 0 up to {SEED_LIMIT - 1}.",
                )
            section.validate()
        if self.data.source == "synthetic":
            from vqgen.data.splits import split_sizes

            _, val, test = split_sizes(self.data.synthetic_count)
            _check(
                val >= 2 and test >= self.evaluate.num_samples,
                f"data.synthetic_count is {self.data.synthetic_count}, which leaves {val} val and {test} test images; "
                f"use at least {_synthetic_needed(self.evaluate.num_samples)} for evaluate.num_samples "
                f"({self.evaluate.num_samples}), or lower evaluate.num_samples.",
            )
        _check(
            self.data.image_size % self.vqvae.downsample == 0,
            f"data.image_size is {self.data.image_size}; use a multiple of vqvae.downsample ({self.vqvae.downsample}).",
        )
        return self

    def set(self, key: str, value: Any) -> None:
        """Set one dotted key, e.g. `params.set("ar.lr", 3e-4)`, converting to the field's type."""
        section, _, name = key.partition(".")
        obj = getattr(self, section, None)
        fields = {f.name: f for f in dataclasses.fields(obj)} if obj is not None else {}
        _check(name in fields, f"{key!r} is not a parameter; see `vqgen --help` for the accepted keys.")
        setattr(obj, name, _coerce(key, value, field_type(type(obj), name)))


def _coerce(key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    _check(
        isinstance(value, kind) and not (kind is int and isinstance(value, bool)),
        f"{key} is {value!r}; use a value of type {kind.__name__}.",
    )
    return value


def field_type(cls: type, name: str) -> type:
    """The Python type of one dataclass field (annotations here are strings)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return {"int": int, "float": float, "str": str, "bool": bool}[str(f.type)]


def keys(selection: tuple[str, ...] | list[str]) -> list[str]:
    """Expand a selection such as ("data.image_size", "vqvae") into dotted keys."""
    out = []
    for item in selection:
        section, _, name = item.partition(".")
        if section not in SECTIONS:
            raise ConfigError(f"{item!r} names no section; use one of {', '.join(SECTIONS)}.")
        names = [f.name for f in dataclasses.fields(SECTIONS[section])]
        out += [f"{section}.{n}" for n in names] if not name else [item]
    return out


def parse_params(raw: dict[str, Any] | None) -> Params:
    """Params from a parsed params.yaml; unknown sections or keys are errors."""
    params = Params()
    for section, values in (raw or {}).items():
        if section not in SECTIONS:
            raise ConfigError(f"params.yaml has an unknown section {section!r}; use {', '.join(SECTIONS)}.")
        if not isinstance(values, dict):
            raise ConfigError(f"params.yaml section {section!r} is not a mapping of keys to values.")
        for name, value in values.items():
            params.set(f"{section}.{name}", value)
    return params.validate()


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump([value], default_flow_style=True).strip()[1:-1]


def dotted(sections: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """{"section.key": value} of a params.yaml-shaped mapping (a preset), as `rewrite` and `-S` take them."""
    return {f"{section}.{key}": value for section, values in (sections or {}).items() for key, value in values.items()}


def rewrite(text: str, changes: dict[str, Any]) -> str:
    """The text of a params.yaml with each dotted key of `changes` set to its value, keeping the
    file's comments and order; a key it lacks is added at the end of its section (or a new section)."""
    lines, section, ends, done = text.splitlines(), None, {}, set()
    for i, line in enumerate(lines):
        head = re.match(r"([A-Za-z_]\w*):\s*(#.*)?$", line)
        if head:
            section = head.group(1)
            ends[section] = i
        entry = re.match(r"(\s+)([A-Za-z_]\w*):\s*(?:'[^']*'|\"[^\"]*\"|[^#\s]*)(\s*#.*)?$", line)
        if entry and section:
            ends[section] = i
            key = f"{section}.{entry.group(2)}"
            if key in changes:
                lines[i] = f"{entry.group(1)}{entry.group(2)}: {_yaml_scalar(changes[key])}{entry.group(3) or ''}"
                done.add(key)
    added: dict[str, list[str]] = {}
    for key, value in changes.items():
        if key not in done:
            name, _, field = key.partition(".")
            added.setdefault(name, []).append(f"  {field}: {_yaml_scalar(value)}")
    for name in sorted(added, key=lambda n: -ends.get(n, len(lines))):  # from the bottom, so indices hold
        if name in ends:
            lines[ends[name] + 1 : ends[name] + 1] = added[name]
        else:
            lines += ["", f"{name}:", *added[name]]
    return "\n".join(lines) + "\n"


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist; run from the project root or pass --params PATH.")
    with path.open() as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML ({str(e).splitlines()[0]}); fix the file.") from e
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path} is not a mapping of sections; see params.yaml in the repository.")
    return parse_params(raw)
