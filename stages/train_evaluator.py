"""Train the judge of samples on real training images (flipped and shifted): an attribute
classifier, or, for a folder of images without attributes, a classifier of image rotations."""

from __future__ import annotations

import torch

from stages import common
from vqgen import checkpoint, distributed, evaluate, layout, train
from vqgen.config import Params
from vqgen.data import images
from vqgen.models import evaluator
from vqgen.models.evaluator import SEEN, Evaluator, augment, rotate

PARAMS = (
    *(f"evaluate.{k}" for k in ("width", "max_iters", "batch_size", "lr", "weight_decay", "seed")),
    *(f"evaluate.{k}" for k in ("warmup", "lr_floor", "beta1", "beta2", "grad_clip")),
)


def run(p: Params) -> None:
    e = p.evaluate
    dev = common.device(p, e.seed)
    tr, val = images.Split(layout.IMAGES, "train", common.memory_limit(p)), images.Split(layout.IMAGES, "val")
    names, y = tr.attribute_names, torch.from_numpy(tr.attributes).float()
    fast = dict(device=dev, memory_format=torch.channels_last)  # faster convolutions on CPU
    model = Evaluator(e.model_config(len(names)))
    if names:
        model.balance(y)
    model = model.to(**fast)
    opt = train.optimizer(model, e)
    gen = torch.Generator().manual_seed(e.seed)

    def prepare(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb = augment(images.to_tensor(tr[rows.numpy()]), generator=gen)
        return (xb, y[rows]) if names else rotate(xb, gen)

    stream = train.Batches(torch.arange(len(tr)), e.batch_size, gen, prepare)
    resume = common.resume("train_evaluator", p, [layout.IMAGES], {"model": model}, {"gen": gen}, {"data": stream})
    net = common.compiled(p, model)

    def losses(it: int) -> dict[str, torch.Tensor]:
        xb, yb = next(stream)
        return {"loss": evaluator.loss(net, xb.to(**fast), yb.to(dev), gen)}

    with common.live("train_evaluator", e.max_iters, "training evaluator") as log:
        train.fit(losses, [("loss", opt)], e.max_iters, e.lr, on_step=log, resume=resume, **common.loop(p, e, dev))
    if not distributed.is_main():
        return

    model.eval()
    turn = torch.Generator().manual_seed(0)
    meta = {}
    if names:  # each attribute's balanced accuracy on the real test images, which the judge compares with
        test = images.Split(layout.IMAGES, "test")
        called = evaluate.judge(model, images.batched(test))["attributes"]
        accuracy = evaluate.balanced_accuracy(called, test.attributes)
        meta = {"attributes": names, "balanced_accuracy": [float(a) for a in accuracy]}
        metrics = {
            "balanced_accuracy": float(accuracy.mean()),
            "seen_attributes": int((accuracy >= SEEN).sum()),
            **{f"balanced_accuracy_{n}": float(a) for n, a in zip(names, accuracy)},
        }
    else:
        turns, logits = [], []
        with torch.no_grad():
            for xv in images.batched(val):
                xv, k = rotate(xv, turn)
                turns.append(k)
                logits.append(model(xv.to(dev))[0].cpu())
        metrics = {"val_accuracy": float((torch.cat(logits).argmax(1) == torch.cat(turns)).float().mean())}
    common.write_metrics("evaluator", {**metrics, "world_size": distributed.world()})
    checkpoint.save(layout.EVALUATOR, model, model.cfg, **meta)
