"""Train the judge of samples on real training images: an attribute classifier, or, for a
folder of images without attributes, a classifier of image rotations."""

from __future__ import annotations

import torch

from vqgen import checkpoint, train
from vqgen.config import Params
from vqgen.data import images
from vqgen.models.evaluator import Evaluator, EvaluatorConfig, rotate

from stages import common

PARAMS = ("evaluate.width", "evaluate.max_iters", "evaluate.batch_size", "evaluate.lr", "evaluate.seed")


def run(p: Params) -> None:
    e = p.evaluate
    dev = common.device(p, e.seed)
    tr, val = images.read_split(common.IMAGES, "train"), images.read_split(common.IMAGES, "val")
    names = tr["attribute_names"]
    x, y = images.to_tensor(tr["images"]), torch.from_numpy(tr["attributes"]).float()
    model = Evaluator(EvaluatorConfig(num_attributes=len(names), width=e.width)).to(dev)
    opt = train.adamw(model, e.lr, 1e-4)
    gen = torch.Generator().manual_seed(e.seed)
    stream = train.batches(torch.arange(len(x)), e.batch_size, gen)

    def losses(it: int) -> dict[str, torch.Tensor]:
        rows = next(stream)
        xb, yb = x[rows], y[rows]
        flip = torch.rand(len(rows), generator=gen) < 0.5  # mirrored images keep their attributes
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        if not names:
            xb, yb = rotate(xb, gen)
        return {"loss": model(xb.to(dev), yb.to(dev))[1]}

    with common.live("train_evaluator") as log, common.progress(e.max_iters, "training evaluator") as advance:
        def on_step(it, m):
            log(it, m)
            advance(info=f"loss {m['loss']:.3f}")
        train.fit(losses, [("loss", opt)], e.max_iters, e.lr, on_step=on_step)

    model.eval()
    xv, yv = images.to_tensor(val["images"]), val["attributes"] > 0
    if not names:
        xv, yv = rotate(xv, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = torch.cat([model(xv[i:i + 256].to(dev))[0].cpu() for i in range(0, len(xv), 256)])
    if names:
        correct = ((logits > 0).numpy() == yv).mean(0)
        metrics = {"val_accuracy": float(correct.mean()), **{f"accuracy_{n}": float(a) for n, a in zip(names, correct)}}
    else:
        metrics = {"val_accuracy": float((logits.argmax(1) == yv).float().mean())}
    common.write_metrics("evaluator", metrics)
    checkpoint.save(common.EVALUATOR, model, model.cfg)
