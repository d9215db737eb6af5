"""Reference points for every measure: real val images against the real test images (the floor,
what a perfect model would score) and VQ-VAE reconstructions of val images (the best any prior
over these tokens can reach, `rfd`)."""

from __future__ import annotations

import numpy as np

from stages import common, judging
from vqgen.config import Params
from vqgen.data import images

PARAMS = judging.PARAMS


def run(p: Params) -> None:
    dev = common.device(p, 0)
    judge = judging.Judge(p, dev)
    val = images.Split(common.IMAGES, "val")
    floor = judge.measure(val)
    vq = judging.tokenizer(dev)
    recon = np.concatenate([judging.decode(vq, vq.encode(x.to(dev))) for x in images.batched(val[: judge.n])])
    rec = judge.measure(recon)
    common.write_metrics(
        "baselines",
        {
            **{f"floor_{k}": v for k, v in floor.items()},
            "rfd": rec.pop("fd"),
            **{f"recon_{k}": v for k, v in rec.items()},
        },
    )
