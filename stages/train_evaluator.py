"""Train the judge of samples: an attribute classifier on real training images."""

from __future__ import annotations

import torch

from vqgen import checkpoint, train
from vqgen.config import Params
from vqgen.data import images
from vqgen.models.evaluator import Evaluator, EvaluatorConfig

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
        xb = x[rows]
        flip = torch.rand(len(rows), generator=gen) < 0.5  # mirrored faces keep their attributes
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        return {"loss": model(xb.to(dev), y[rows].to(dev))[1]}

    with common.live("train_evaluator") as log, common.progress(e.max_iters, "training evaluator") as advance:
        def on_step(it, m):
            log(it, m)
            advance(info=f"loss {m['loss']:.3f}")
        train.fit(losses, [("loss", opt)], e.max_iters, e.lr, on_step=on_step)

    model.eval()
    with torch.no_grad():
        xv = images.to_tensor(val["images"])
        logits = torch.cat([model(xv[i:i + 256].to(dev))[0].cpu() for i in range(0, len(xv), 256)])
    correct = ((logits > 0).numpy() == (val["attributes"] > 0)).mean(0)
    per_attr = {f"accuracy_{n}": float(a) for n, a in zip(names, correct)}
    common.write_metrics("evaluator", {"val_accuracy": float(correct.mean()), **per_attr})
    checkpoint.save(common.EVALUATOR, model, model.cfg)
