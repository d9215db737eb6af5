"""Train the discrete-diffusion transformer prior of `diffusion.process` on the token shards:
`masked` learns to fill in hidden tokens, `uniform` (the blog's) to undo uniform resampling."""

from __future__ import annotations

from stages import prior_training
from vqgen.config import Params

PARAMS = ("diffusion.process", *(f"diffusion.{k}" for k in prior_training.TRAINING_KEYS), "diffusion.extra_noise")


def run(p: Params) -> None:
    d = p.diffusion
    prior_training.run(p, "diffusion", d.process, {"extra_noise": d.extra_noise} if d.process == "uniform" else {})
