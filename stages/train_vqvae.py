"""Train the VQ-VAE tokenizer with its discriminator; write the checkpoint, val metrics and Fig 1."""

from __future__ import annotations

import numpy as np
import torch

from stages import common
from vqgen import checkpoint, distributed, evaluate, layout, render, train, weights
from vqgen.config import Params
from vqgen.data import images
from vqgen.models import vqvae

PARAMS = ("data.image_size", "vqvae")


def run(p: Params) -> None:
    v = p.vqvae
    dev = common.device(p, v.seed)
    data, val = images.Split(layout.IMAGES, "train", common.memory_limit(p)), images.Split(layout.IMAGES, "val")
    fast = dict(device=dev, memory_format=torch.channels_last)  # about 2x faster convolutions on CPU
    model, disc = vqvae.VQVAE(v.model_config()).to(**fast), vqvae.Discriminator().to(**fast)
    features = weights.frozen_vgg(v.perceptual_weights).to(**fast) if v.perceptual_weights else None
    opt_g, opt_d = train.optimizer(model, v), train.optimizer(disc, v)
    mirror = torch.Generator().manual_seed(v.seed + 1)

    def prepare(rows: torch.Tensor) -> torch.Tensor:
        x = images.to_tensor(data[rows.numpy()])
        return images.random_flip(x, mirror) if v.flip else x

    stream = train.Batches(torch.arange(len(data)), v.batch_size, torch.Generator().manual_seed(v.seed), prepare)
    resume = common.resume(
        "train_vqvae", p, [layout.IMAGES], {"model": model, "disc": disc}, {"mirror": mirror}, {"data": stream}
    )
    net, critic = common.compiled(p, model), common.compiled(p, disc)

    def losses(it: int) -> dict[str, torch.Tensor]:
        x, use_disc = next(stream).to(**fast), it >= v.disc_start
        return vqvae.losses(
            net, critic, x, v.perceptual_weight, v.adversarial_weight, use_disc, features, v.edge_weight
        )

    def reconstructions() -> np.ndarray:  # 8 val images over their reconstructions, for the previews
        real = val[:8]
        with common.evaluating(model):
            recon = model.decode(model.encode(images.to_tensor(real).to(**fast)))
        return render.grid(np.concatenate([real, images.to_uint8(recon)]), cols=8)

    with common.live("train_vqvae", v.max_iters, "training VQ-VAE", shown="mse", images=reconstructions) as log:
        objectives = [("loss", opt_g), ("d_loss", opt_d)]
        loop = common.loop(p, v, dev)
        train.fit(losses, objectives, v.max_iters, v.lr, on_step=log, resume=resume, preview=log.preview, **loop)
    if not distributed.is_main():
        return

    model.eval()
    mse, psnr, tokens, first = 0.0, 0.0, [], None
    for real in images.batched(val):
        idx = model.encode(real.to(**fast))
        recon = model.decode(idx).cpu()
        mse += float((recon - real).pow(2).mean()) * len(real)
        psnr += evaluate.psnr(real, recon) * len(real)
        tokens.append(idx.cpu().numpy())
        first = recon[:32] if first is None else first
    n = len(val)
    common.write_metrics(
        "vqvae",
        {
            "val_mse": mse / n,
            "val_psnr": psnr / n,
            **evaluate.codebook_usage(np.concatenate(tokens), v.codebook_size),
            "world_size": distributed.world(),
        },
    )
    checkpoint.save(layout.VQVAE, model, model.cfg, image_size=p.data.image_size)
    render.pairs(layout.FIGURES / "reconstructions.png", val[:32], images.to_uint8(first))
