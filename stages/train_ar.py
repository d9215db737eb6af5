"""Train the autoregressive transformer prior on the token shards (next-token prediction)."""

from __future__ import annotations

from stages import prior_training
from vqgen.config import Params

PARAMS = tuple(f"ar.{k}" for k in prior_training.TRAINING_KEYS)


def run(p: Params) -> None:
    prior_training.run(p, "ar", "ar")
