"""Training shared by every prior: token shards in, checkpoint, DVCLive curves and val loss out."""

from __future__ import annotations

import math

import torch

from stages import common
from vqgen import checkpoint, distributed, layout, render, tokenizer, train
from vqgen.config import Params
from vqgen.data import images, tokens
from vqgen.priors import PRIORS, Prior
from vqgen.priors.guidance import dropped

TRAINING_KEYS = (
    *("n_layer", "n_head", "n_embd", "dropout", "max_iters", "batch_size", "lr", "weight_decay", "seed"),
    *("warmup", "lr_floor", "beta1", "beta2", "grad_clip", "condition", "cond_drop", "attr_drop"),
)


def load_split(split: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A split's token grids (N, h, w) as int64, checked against the tokenizer checkpoint, their
    attributes (N, A) and the codebook size."""
    k = checkpoint.metadata(layout.VQVAE)["config"]["codebook_size"]
    shards = tokens.read_shards(layout.TOKENS, split, k, checkpoint.sha256(layout.VQVAE))
    return torch.from_numpy(shards["tokens"].astype("int64")), torch.from_numpy(shards["attributes"]).long(), k


def samples(prior: Prior, dev: torch.device, count: int = 16):
    """A function making a grid of `count` samples of `prior` as it stands, drawn at the sampler's
    defaults from a fixed seed (so previews at different steps compare), decoded by the tokenizer."""
    vq = tokenizer.load(layout.VQVAE, dev)

    def make():
        with common.evaluating(prior.model):
            draw = prior.sample(count, generator=torch.Generator(dev).manual_seed(0))
            return render.grid(tokenizer.decode(vq, draw.tokens), cols=8)

    return make


def run(p: Params, section: str, prior_name: str, options: dict | None = None) -> None:
    """Train the prior `prior_name` with the hyperparameters of params.yaml's `section`; metrics,
    curves and checkpoint go under the section's name."""
    s = getattr(p, section)
    dev = common.device(p, s.seed)
    data, attrs, k = load_split("train")
    val, val_attrs, _ = load_split("val")
    names = images.Split(layout.IMAGES, "val", memory_limit=0).attribute_names if s.condition else []
    prior = PRIORS[prior_name].create(k, tuple(data.shape[1:]), options, names, **s.sizes())
    prior.data_attributes = attrs.to(torch.int8) if names else None
    model = prior.model.to(dev)
    opt = train.optimizer(model, s)
    order = torch.Generator().manual_seed(s.seed)  # of the batches and of the requests' dropout

    def batch(rows: torch.Tensor) -> tuple[torch.Tensor, ...]:  # the whole batch's, before torchrun's share
        return (data[rows], dropped(attrs[rows], s.cond_drop, s.attr_drop, order)) if names else (data[rows],)

    stream = train.Batches(torch.arange(len(data)), s.batch_size, order, batch)

    def loss() -> torch.Tensor:
        grids, *request = (b.to(dev) for b in next(stream))
        return prior.loss(grids, request[0] if request else None)

    resume = common.resume(
        f"train_{section}", p, [layout.VQVAE, layout.TOKENS], {"model": model}, streams={"data": stream}
    )

    shown = samples(PRIORS[prior_name](model, prior.grid, **prior.options()), dev) if distributed.is_main() else None
    prior.model = common.compiled(p, model)  # for training only: `model` holds the same weights
    with common.live(f"train_{section}", s.max_iters, f"training {prior_name} prior", images=shown) as log:
        last = train.fit(
            lambda it: {"loss": loss()},
            [("loss", opt)],
            s.max_iters,
            s.lr,
            on_step=log,
            resume=resume,
            preview=log.preview,
            **common.loop(p, s, dev),
        )

    if not distributed.is_main():
        return
    prior.model = model.eval()

    def val_loss(requested: bool) -> float:  # of the unconditional model, or of each grid's own attributes
        with torch.no_grad():  # diffusion losses are random: fix their noise so runs compare
            state = torch.random.get_rng_state()
            torch.manual_seed(1234)
            total = 0.0
            for i in range(0, len(val), 256):
                request = val_attrs[i : i + 256].to(dev) if requested else None
                total += float(prior.loss(val[i : i + 256].to(dev), request)) * len(val[i : i + 256])
            torch.random.set_rng_state(state)
        return total / max(1, len(val))

    unconditional = val_loss(False)
    conditional = {"val_loss_requested": val_loss(True)} if names else {}
    common.write_metrics(
        section,
        {
            "val_loss": unconditional,
            "val_bits_per_token": unconditional / math.log(2),
            **conditional,
            "train_loss": last["loss"],
            "world_size": distributed.world(),
        },
    )
    checkpoint.save(
        layout.MODELS[section],
        model,
        model.cfg,
        prior.extras(),
        **prior.metadata(),
        tokenizer=checkpoint.sha256(layout.VQVAE),
    )
