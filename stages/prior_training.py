"""Training shared by both priors: token shards in, checkpoint, DVCLive curves and val loss out."""

from __future__ import annotations

import math

import torch

from vqgen import checkpoint, train
from vqgen.config import Params, Prior
from vqgen.data import tokens

from stages import common

TRAINING_KEYS = ("n_layer", "n_head", "n_embd", "dropout", "max_iters", "batch_size", "lr", "weight_decay", "seed")


def load_split(split: str) -> tuple[torch.Tensor, int]:
    """A split's token grids (N, h, w) as int64, checked against the tokenizer checkpoint, and the codebook size."""
    k = checkpoint.metadata(common.VQVAE)["config"]["codebook_size"]
    shards = tokens.read_shards(common.TOKENS, split, k, checkpoint.sha256(common.VQVAE))
    return torch.from_numpy(shards["tokens"].astype("int64")), k


def run(p: Params, s: Prior, prior, name: str, loss_fn, path) -> None:
    dev = common.device(p, s.seed)
    data, k = load_split("train")
    val, _ = load_split("val")
    grid = tuple(data.shape[1:])
    model = prior.make_model(k, grid, n_layer=s.n_layer, n_head=s.n_head, n_embd=s.n_embd,
                             dropout=s.dropout).to(dev)
    opt = train.adamw(model, s.lr, s.weight_decay)
    stream = train.batches(data, s.batch_size, torch.Generator().manual_seed(s.seed))

    with common.live(f"train_{name}", s.max_iters, f"training {name} prior") as on_step:
        last = train.fit(lambda it: {"loss": loss_fn(model, next(stream).to(dev))}, [("loss", opt)],
                         s.max_iters, s.lr, on_step=on_step)

    model.eval()
    with torch.no_grad():  # the diffusion loss is random: fix its noise so runs compare
        state = torch.random.get_rng_state()
        torch.manual_seed(1234)
        val_loss = sum(float(loss_fn(model, val[i:i + 256].to(dev))) * len(val[i:i + 256])
                       for i in range(0, len(val), 256)) / max(1, len(val))
        torch.random.set_rng_state(state)
    bits = val_loss / math.log(2)
    common.write_metrics(name, {"val_loss": val_loss, "val_bits_per_token": bits, "train_loss": last["loss"]})
    checkpoint.save(path, model, model.cfg, grid=list(grid))
