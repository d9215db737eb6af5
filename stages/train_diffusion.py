"""Train the discrete-diffusion transformer prior on the token shards (learn to undo corruption)."""

from __future__ import annotations

from vqgen.config import Params
from vqgen.priors import diffusion

from stages import common, prior_training

PARAMS = tuple(f"diffusion.{k}" for k in (*prior_training.TRAINING_KEYS, "extra_noise"))


def run(p: Params) -> None:
    prior_training.run(p, p.diffusion, diffusion, "diffusion",
                       lambda model, x: diffusion.loss(model, x, p.diffusion.extra_noise), common.DIFFUSION)
