"""Training shared by every prior: token shards in, checkpoint, DVCLive curves and val loss out."""

from __future__ import annotations

import math

import torch

from stages import common
from vqgen import checkpoint, distributed, layout, render, tokenizer, train
from vqgen.config import Params
from vqgen.data import tokens
from vqgen.priors import PRIORS, Prior

TRAINING_KEYS = (
    *("n_layer", "n_head", "n_embd", "dropout", "max_iters", "batch_size", "lr", "weight_decay", "seed"),
    *("warmup", "lr_floor", "beta1", "beta2", "grad_clip"),
)


def load_split(split: str) -> tuple[torch.Tensor, int]:
    """A split's token grids (N, h, w) as int64, checked against the tokenizer checkpoint, and the codebook size."""
    k = checkpoint.metadata(layout.VQVAE)["config"]["codebook_size"]
    shards = tokens.read_shards(layout.TOKENS, split, k, checkpoint.sha256(layout.VQVAE))
    return torch.from_numpy(shards["tokens"].astype("int64")), k


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
    data, k = load_split("train")
    val, _ = load_split("val")
    prior = PRIORS[prior_name].create(k, tuple(data.shape[1:]), options, **s.sizes())
    model = prior.model.to(dev)
    opt = train.optimizer(model, s)
    stream = train.Batches(data, s.batch_size, torch.Generator().manual_seed(s.seed))
    resume = common.resume(
        f"train_{section}", p, [layout.VQVAE, layout.TOKENS], {"model": model}, streams={"data": stream}
    )

    shown = samples(PRIORS[prior_name](model, prior.grid, **prior.options()), dev) if distributed.is_main() else None
    prior.model = common.compiled(p, model)  # for training only: `model` holds the same weights
    with common.live(f"train_{section}", s.max_iters, f"training {prior_name} prior", images=shown) as log:
        last = train.fit(
            lambda it: {"loss": prior.loss(next(stream).to(dev))},
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
    with torch.no_grad():  # diffusion losses are random: fix their noise so runs compare
        state = torch.random.get_rng_state()
        torch.manual_seed(1234)
        val_loss = sum(
            float(prior.loss(val[i : i + 256].to(dev))) * len(val[i : i + 256]) for i in range(0, len(val), 256)
        ) / max(1, len(val))
        torch.random.set_rng_state(state)
    common.write_metrics(
        section,
        {
            "val_loss": val_loss,
            "val_bits_per_token": val_loss / math.log(2),
            "train_loss": last["loss"],
            "world_size": distributed.world(),
        },
    )
    checkpoint.save(
        layout.MODELS[section], model, model.cfg, **prior.metadata(), tokenizer=checkpoint.sha256(layout.VQVAE)
    )
