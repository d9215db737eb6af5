"""Reference points for every measure: real val images against the real test images (the floor,
what a perfect model would score) and VQ-VAE reconstructions of val images (the best any prior
over these tokens can reach, `rfd`); and the rate of each attribute the judge sees in the real test
images and in their reconstructions (the rates a prior's samples can reach), and how many of them
the reconstructions of the val images miss by more than a third (`recon_rates_off`: what a prior
drawing exactly the reconstructions' distribution would score, sampling noise alone)."""

from __future__ import annotations

from stages import common
from vqgen import judge, layout
from vqgen.config import Params
from vqgen.data import images
from vqgen.evaluate import rates_off
from vqgen.pipeline import Pipeline

PARAMS = judge.PARAMS


def run(p: Params) -> None:
    dev = common.device(p, 0)
    critic = judge.Judge.of_run(p, dev)
    val = images.Split(layout.IMAGES, "val")
    floor = critic.measure(val)
    pipe = Pipeline.from_run(".", dev, params=p, priors=())
    val_recon = pipe.decode(pipe.encode(val[: critic.n]))
    rec = critic.measure(val_recon)
    test = images.Split(layout.IMAGES, "test")[: critic.n]
    rates = critic.rates(critic.real) if critic.attributes else {}
    recon_rates = critic.rates(critic.view(pipe.decode(pipe.encode(test)))) if critic.attributes else {}
    if critic.attributes:
        rec["rates_off"] = len(rates_off(critic.rates(critic.view(val_recon)), recon_rates))
    common.write_metrics(
        "baselines",
        {
            **{f"floor_{k}": v for k, v in floor.items()},
            "rfd": rec.pop("fd"),
            **{f"recon_{k}": v for k, v in rec.items()},
            **{f"test_{k}": v for k, v in rates.items()},
            **{f"recon_{k}": v for k, v in recon_rates.items()},
        },
    )
